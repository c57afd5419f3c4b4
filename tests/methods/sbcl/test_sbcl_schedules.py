"""SBCL learning-rate schedules (SBCL `SimCLR/main.py` stage 1, SBCL `SimCLR/linear_classify.py` stage 2)."""

import math

import numpy as np
import pytest

from ltjax import config as config_lib
from ltjax.train import optim


def _official_stage1(E=1000, nb=11, lr=0.5, warm=10):
  """SimCLR/main.py: adjust_learning_rate per epoch, then warmup_learning_rate per step for epoch <= warm."""
  out = np.zeros((E, nb))
  for e in range(E):
    eta_min = lr * 0.1 ** 4
    per_epoch = eta_min + (lr - eta_min) * (1 + math.cos(math.pi * e / E)) / 2
    for b in range(nb):
      v = per_epoch
      if e <= warm:
        mn = lr * 0.1 ** 3
        to = mn + (lr - mn) * (1 + math.cos(math.pi * warm / E)) / 2
        p = (b + (e - 1) * nb) / (warm * nb)
        v = 0.01 + p * (to - 0.01)
      out[e, b] = v
  return out


def test_stage1_schedule_reproduces_the_negative_warmup():
  t = optim.lr_table("sbcl_cosine", 0.5, 1000, steps_per_epoch=11, warmup=10)
  assert t.shape == (1000, 11)
  np.testing.assert_allclose(t, _official_stage1(), rtol=1e-12)
  # SBCL `SimCLR/main.py`: p ∈ [−0.1, 0) in epoch 0, so 0.01 + p·(η_w − 0.01) < 0 for its first 9 of 11 steps
  assert t[0, 0] == pytest.approx(-0.039, abs=5e-4) and (t[0, :9] < 0).all() and (t[0, 9:] > 0).all()
  assert t[10, -1] == pytest.approx(0.4955, abs=1e-4)
  assert t[11, 0] == pytest.approx(0.49985, abs=1e-5)
  assert t[-1, 0] == pytest.approx(5e-5 + (0.5 - 5e-5) * (1 + math.cos(math.pi * 999 / 1000)) / 2)


def test_stage1_schedule_fixed_warmup():
  t = optim.lr_table("sbcl_cosine", 0.5, 1000, steps_per_epoch=11, warmup=10, fix_negative_warmup=True)
  off = _official_stage1()
  assert t[0, 0] == pytest.approx(0.01) and (t > 0).all()
  np.testing.assert_allclose(t[:10].reshape(-1), off[1:11].reshape(-1), rtol=1e-12)  # the ramp, one epoch earlier
  eta_min = 0.5e-4
  np.testing.assert_allclose(t[10], eta_min + (0.5 - eta_min) * (1 + math.cos(math.pi * 10 / 1000)) / 2)
  np.testing.assert_allclose(t[11:], off[11:], rtol=1e-12)
  # No warm-up at all.
  t0 = optim.lr_table("sbcl_cosine", 0.5, 100, steps_per_epoch=3, warmup=0)
  assert t0[0, 0] == pytest.approx(0.5)


def test_per_step_table_drives_the_optax_schedule():
  t = optim.lr_table("sbcl_cosine", 0.5, 20, steps_per_epoch=4, warmup=3)
  sched = optim.epoch_schedule(t, 4)
  got = np.array([float(sched(s)) for s in range(80)])
  np.testing.assert_allclose(got, t.reshape(-1).astype(np.float32), rtol=0)
  assert float(sched(10_000)) == np.float32(t[-1, -1])
  with pytest.raises(ValueError, match="steps per epoch"):
    optim.epoch_schedule(t, 5)
  with pytest.raises(ValueError, match="pass steps_per_epoch"):
    optim.lr_table("sbcl_cosine", 0.5, 20)


def test_config_path_passes_the_flag_and_steps():
  c = config_lib.default()
  c.optim.schedule, c.optim.lr, c.optim.warmup_epochs, c.train.epochs = "sbcl_cosine", 0.5, 10, 1000
  np.testing.assert_allclose(optim.lr_table_from_config(c, steps_per_epoch=11), _official_stage1(), rtol=1e-12)
  c.optim.fix_negative_warmup = True
  assert optim.lr_table_from_config(c, steps_per_epoch=11)[0, 0] == pytest.approx(0.01)
  tx, sched, table = optim.from_config(c, 11)
  assert table.shape == (1000, 11) and float(sched(0)) == pytest.approx(0.01)


def test_stage2_schedules():
  d = optim.lr_table("sbcl_linear_step", 0.1, 200)
  np.testing.assert_allclose(d[:5], [0.02, 0.04, 0.06, 0.08, 0.1], rtol=1e-15)
  np.testing.assert_allclose(d[5:140], 0.1)
  np.testing.assert_allclose(d[140:180], 0.01, rtol=1e-12)
  np.testing.assert_allclose(d[180:], 0.001, rtol=1e-12)
  c = optim.lr_table("sbcl_linear_cosine", 0.1, 45)
  np.testing.assert_allclose(c[:5], [0.02, 0.04, 0.06, 0.08, 0.1], rtol=1e-15)
  ref = [0.5 * 0.1 * (1 + math.cos(3.1415926535 * (e + 1 - 5) / 40)) for e in range(5, 45)]  # the official π
  np.testing.assert_allclose(c[5:], ref, rtol=1e-12, atol=1e-18)
  assert c[-1] == pytest.approx(0.0, abs=1e-18)
