"""RECORDS / SoLar end to end on the embedded digits: resume restores the confidence table (and everything else)
bit-exactly, 1 device equals 8, SoLar's second stage restarts model/optimizer/table; main.py on mock CIFAR-100-LT-NU
reports the official figures."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import records_digits
from tests.cfgutil import override
from tests.e2e.test_main import ROOT
from tests.train.test_train import params_of

from ltjax.train import loop, run as run_lib


def cfg_for(row, **over):
  c = records_digits.get_config(f"row={row}")
  c.train.progress_bar = False
  c.train.log_every = 4
  if row == "solar":
    c.solar.est_epochs = 1
    c.optim.restart_epoch = 1
    c.solar.queue_length = 2
    c.solar.warmup_epoch = 2
    c.solar.tau = 0.9
    c.train.epochs = 3
  else:
    c.train.epochs = 2
  c.train.eval_every = c.train.epochs  # one evaluation, at the end
  return override(c, **over)


@pytest.mark.slow
@pytest.mark.parametrize("row,per_call", [("corr_records_mixup", 1), ("solar", 1), ("solar", 3)])
def test_resume_restores_tables_exactly(tmp_path, row, per_call):
  cfg = cfg_for(row, **{"train.steps_per_call": per_call})  # 3: the per-example tables updated inside the scan
  spe = run_lib.setup(cfg).train_input.steps_per_epoch
  full = tmp_path / "full"
  res = loop.train_and_evaluate(cfg, str(full))
  assert "top1_batch_mean" in res["final"] and "many_rank" in res["final"]
  part = tmp_path / "part"
  stop = spe + spe // 2  # inside epoch 1 (SoLar: after the stage-2 reset at its start)
  with pytest.raises(loop.Preempted):
    loop.train_and_evaluate(cfg, str(part), stop_at_step=stop)
  mid, _ = params_of(str(part), cfg)
  assert int(mid.step) == stop
  loop.train_and_evaluate(cfg, str(part))
  a, _ = params_of(str(full), cfg)
  b, _ = params_of(str(part), cfg)
  assert int(a.step) == int(b.step) == cfg.train.epochs * spe
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  conf = np.asarray(a.method_state["confidence"])
  cand = np.asarray(a.method_state["candidates"])
  assert np.all(conf[cand == 0] == 0) and np.allclose(conf.sum(1), 1, atol=1e-4)
  assert not np.allclose(conf, cand / cand.sum(1, keepdims=True))  # the table was disambiguated
  if row == "solar":
    prior = np.asarray(a.method_state["prior"])
    assert int(a.method_state["prior_epoch"]) == 2 and abs(prior.sum() - 1) < 1e-5 and prior.std() > 0
    # stage 2 restarted the table: a fresh table gets PRODEN rows only for the examples seen since the restart
    lines = [json.loads(l) for l in (full / "metrics.jsonl").read_text().splitlines()]
    lrs = [l["lr"] for l in lines if l["split"] == "train"]
    assert lrs[0] == pytest.approx(0.1) and max(lrs[len(lrs) // 3:]) == pytest.approx(0.1)  # schedule restart


@pytest.mark.multidevice
@pytest.mark.slow
@pytest.mark.parametrize("row", ["corr_records_mixup", "solar"])
def test_one_device_equals_eight(tmp_path, row):
  assert jax.device_count() == 8
  out = []
  for n in (1, 8):
    extra = {} if row == "solar" else {"records.upd_start": 0}  # RECORDS: updates and the mixed term from step 0
    cfg = cfg_for(row, **{"mesh.num_devices": n, **extra})
    spe = run_lib.setup(cfg).train_input.steps_per_epoch
    stop = 3 if row != "solar" else spe + 3  # SoLar: its full loss starts with the second epoch
    with pytest.raises(loop.Preempted):
      loop.train_and_evaluate(cfg, str(tmp_path / f"d{n}"), stop_at_step=stop)
    out.append(params_of(str(tmp_path / f"d{n}"), cfg)[0])
  for part in ("params", "batch_stats", "method_state"):
    for x, y in zip(jax.tree.leaves(getattr(out[0], part)), jax.tree.leaves(getattr(out[1], part))):
      np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-3, atol=1e-4)


@pytest.mark.slow
@pytest.mark.tensorflow
def test_main_on_mock_cifar100_nu_with_records_views(tmp_path):
  """main.py on TFDS-mocked CIFAR-100 (balanced, real-format ids) as CIFAR-100-LT-NU: Python-shuffled class sizes,
  superclass-aware candidates, the weak/strong RandomAugment views in the tf.data pipeline."""
  from tests.e2e.test_main import MOCK_MAIN
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("XLA_FLAGS", None)
  r = subprocess.run(
      [sys.executable, "-c", MOCK_MAIN, "--config",
       "configs/records_cifar.py:dataset=cifar100,imb=0.1,q=0.03,row=corr_records_mixup,nu=1",
       "--workdir", str(tmp_path), "--config.model.name=resnet8", "--config.train.epochs=1",
       "--config.train.batch_size=64", "--config.train.progress_bar=False", "--config.train.log_every=4"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  res = json.loads((tmp_path / "results.json").read_text())
  import random

  from ltjax.data import imbalance
  expect = [int(x) for x in imbalance.class_counts(20, 100, "exp", 0.1)]
  random.Random(123).shuffle(expect)
  assert res["train_counts"] == expect
  assert "mean size" in r.stderr and "expected 4.810" in r.stderr  # 1 + 32q + 95q at q = 0.03
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  train = [l for l in lines if l["split"] == "train"]
  assert train and all(np.isfinite(l["loss"]) and "loss_mix" in l for l in train)
  assert res["method"] == "records" and res["final"]["num_examples"] == 500
  for k in ("top1", "top1_batch_mean", "many_rank", "medium_rank", "few_rank", "many_thr"):
    assert k in res["final"], k
