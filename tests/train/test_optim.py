"""LR schedules (ARB `train_stage1.py`, imbalanced-semi-self `train.py`, imbalanced-semi-self `imagenet_inat/main.py`,
imbalanced-semi-self `pretrain_moco.py`) and PyTorch-SGD equivalence (the official SGD settings)."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from ltjax.train import optim

# ------------------------------------------------------------------ schedules


def test_arb_step_values():
  t = optim.lr_table("arb_step", 0.1, 200)
  assert t.dtype == np.float64 and t.shape == (200,)
  np.testing.assert_allclose(t[:5], [0.02, 0.04, 0.06, 0.08, 0.1], rtol=1e-15)
  np.testing.assert_allclose(t[5:160], 0.1, rtol=1e-15)
  np.testing.assert_allclose(t[160:200], 0.01, rtol=1e-15)
  assert not np.any(np.isclose(t, 0.001))
  # With 300 epochs the ×0.01 branch is reached after e' > 240 (index 240).
  t3 = optim.lr_table("arb_step", 0.1, 300)
  np.testing.assert_allclose(t3[160:240], 0.01, rtol=1e-15)
  np.testing.assert_allclose(t3[240:], 0.001, rtol=1e-15)


def test_ss_step_values_and_legacy_order():
  t = optim.lr_table("ss_step", 0.1, 200)
  np.testing.assert_allclose(t[:5], [0.02, 0.04, 0.06, 0.08, 0.1], rtol=1e-15)
  np.testing.assert_allclose(t[5:160], 0.1, rtol=1e-15)
  np.testing.assert_allclose(t[160:180], 0.001, rtol=1e-12)
  np.testing.assert_allclose(t[180:200], 1e-5, rtol=1e-12)
  legacy = optim.lr_table("ss_step", 0.1, 200, legacy_order=True)
  np.testing.assert_allclose(legacy[:160], t[:160], rtol=0)
  np.testing.assert_allclose(legacy[160:], 0.001, rtol=1e-12)
  np.testing.assert_array_equal(optim.lr_table("ldam_drw_step", 0.1, 200), t)


def test_arb_cosine_uses_truncated_pi():
  t = optim.lr_table("arb_cosine", 0.2, 90)
  assert t[0] == 0.2
  pi_t = 3.1415926535
  assert t[-1] == 0.5 * 0.2 * (1 + math.cos(pi_t * 89 / 90))
  assert 0 < t[-1] < 1e-3
  assert np.all(np.diff(t) < 0)
  # the truncation is visible where cos is steep: E = 2, e = 1 (cos(π̃/2) ≈ 4.6e-11 vs cos(π/2) ≈ 6e-17)
  t2 = optim.lr_table("arb_cosine", 1.0, 2)
  assert t2[1] == 0.5 * (1 + math.cos(pi_t / 2))
  assert abs(t2[1] - 0.5 * (1 + math.cos(math.pi / 2))) > 1e-11


def test_decoupling_cosine_is_one_based():
  t = optim.lr_table("decoupling_cosine", 0.2, 90)
  assert t[-1] == 0.0
  assert t[0] < 0.2 and t[0] == pytest.approx(0.1 * (1 + math.cos(math.pi / 90)), rel=1e-15)
  t_min = optim.lr_table("decoupling_cosine", 0.2, 10, eta_min=0.01)
  assert t_min[-1] == pytest.approx(0.01, rel=1e-15)
  assert t_min[4] == pytest.approx(0.01 + 0.5 * 0.19 * (1 + math.cos(math.pi * 5 / 10)), rel=1e-15)


def test_moco_schedules():
  t = optim.lr_table("moco_cosine", 0.015, 200)
  assert t[0] == 0.015
  assert t[100] == pytest.approx(0.0075, rel=1e-12)
  s = optim.lr_table("moco_step", 0.015, 200)
  np.testing.assert_allclose(s[[0, 119, 120, 159, 160, 199]], [0.015, 0.015, 0.0015, 0.0015, 0.00015, 0.00015],
                             rtol=1e-12)


def test_lr_table_errors_and_config():
  with pytest.raises(ValueError, match="arb_step"):
    optim.lr_table("nope", 0.1, 10)
  with pytest.raises(ValueError, match="legacy_order"):
    optim.lr_table("arb_step", 0.1, 10, legacy_order=True)
  cfg = ml_collections.ConfigDict({
      "optim": {"schedule": "ss_step", "lr": 0.1, "warmup_epochs": 5, "legacy_order": True},
      "train": {"epochs": 200}})
  np.testing.assert_array_equal(optim.lr_table(cfg), optim.lr_table("ss_step", 0.1, 200, legacy_order=True))
  cfg.optim.schedule = "arb_cosine"  # warmup/legacy fields ignored by schedules that do not take them
  np.testing.assert_array_equal(optim.lr_table_from_config(cfg, num_epochs=7), optim.lr_table("arb_cosine", 0.1, 7))


def test_epoch_schedule_constant_within_epoch():
  table = np.array([0.5, 0.25, 0.125])
  sched = optim.epoch_schedule(table, 4)
  got = [float(sched(s)) for s in range(16)]
  assert got == [0.5] * 4 + [0.25] * 4 + [0.125] * 8  # past the end: the last value
  jitted = jax.jit(sched)
  assert float(jitted(jnp.int32(5))) == 0.25


# ------------------------------------------------------------------ SGD


def _params():
  return {
      "conv": {"kernel": jnp.asarray(np.linspace(-1, 1, 12).reshape(3, 4), jnp.float32)},
      "bn": {"scale": jnp.ones((4,), jnp.float32), "bias": jnp.full((4,), 0.3, jnp.float32)},
      "fc": {"bias": jnp.asarray([0.5, -0.25], jnp.float32)},
  }


def _grads(num_steps, params):
  rng = np.random.default_rng(0)
  return [jax.tree.map(lambda p: rng.normal(size=p.shape), params) for _ in range(num_steps)]


def _torch_sgd_reference(params, grads, lrs, momentum, wd, nesterov=False, decay=None, frozen=None,
                         lr_in_buffer=False):
  """PyTorch SGD (dampening 0) written from its update rule, float64, leaf by leaf."""
  flat, treedef = jax.tree.flatten(params)
  theta = [np.asarray(p, np.float64) for p in flat]
  decay = [True] * len(theta) if decay is None else decay
  frozen = [False] * len(theta) if frozen is None else frozen
  bufs = [None] * len(theta)
  for g_tree, lr in zip(grads, lrs):
    for i, g in enumerate(jax.tree.leaves(g_tree)):
      if frozen[i]:
        continue
      d = g + wd * theta[i] if decay[i] else g.copy()
      if lr_in_buffer:  # a WRONG variant (lr folded into the momentum), used to show the test discriminates
        d = lr * d
      bufs[i] = d.copy() if bufs[i] is None else momentum * bufs[i] + d
      step = d + momentum * bufs[i] if nesterov else bufs[i]
      theta[i] = theta[i] - (1.0 if lr_in_buffer else lr) * step
  return jax.tree.unflatten(treedef, theta)


def _run(tx, params, grads):
  state = tx.init(params)
  update = jax.jit(tx.update)
  for g in grads:
    g = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), g)
    updates, state = update(g, state, params)
    params = optax.apply_updates(params, updates)
  return params


def _max_diff(a, b):
  return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_matches_pytorch_formula_with_epoch_schedule(nesterov):
  params = _params()
  grads = _grads(5, params)
  table = optim.lr_table("arb_step", 0.1, 10)  # 0.02, 0.04, 0.06, ...: the LR changes every 2 steps
  sched = optim.epoch_schedule(table, steps_per_epoch=2)
  lrs = [table[s // 2] for s in range(5)]
  assert len(set(lrs)) == 3
  wd = 5e-2
  tx = optim.sgd(sched, momentum=0.9, weight_decay=wd, nesterov=nesterov)
  got = _run(tx, params, grads)
  ref = _torch_sgd_reference(params, grads, lrs, 0.9, wd, nesterov=nesterov)
  assert _max_diff(got, ref) < 1e-6
  # the comparison is sharp enough to reject a plausible wrong implementation
  wrong = _torch_sgd_reference(params, grads, lrs, 0.9, wd, nesterov=nesterov, lr_in_buffer=True)
  assert _max_diff(got, wrong) > 1e-4
  no_wd = _torch_sgd_reference(params, grads, lrs, 0.9, 0.0, nesterov=nesterov)
  assert _max_diff(got, no_wd) > 1e-4


def test_sgd_weight_decay_mask_excludes_leaves():
  params = _params()
  grads = _grads(5, params)
  lrs = [0.1] * 5
  mask = {"conv": {"kernel": True}, "bn": {"scale": False, "bias": False}, "fc": {"bias": True}}
  got = _run(optim.sgd(0.1, momentum=0.9, weight_decay=0.1, mask=mask), params, grads)
  # leaf order of the flattened dict: bn/bias, bn/scale, conv/kernel, fc/bias
  ref = _torch_sgd_reference(params, grads, lrs, 0.9, 0.1, decay=[False, False, True, True])
  assert _max_diff(got, ref) < 1e-6
  # callable mask by path gives the same
  by_path = optim.mask_by_path(lambda p: not p.startswith("bn/"))
  got2 = _run(optim.sgd(0.1, momentum=0.9, weight_decay=0.1, mask=by_path), params, grads)
  assert _max_diff(got2, ref) < 1e-6
  # zero gradients: only the decayed leaves move
  zeros = [jax.tree.map(np.zeros_like, grads[0])] * 3
  moved = _run(optim.sgd(0.1, momentum=0.9, weight_decay=0.1, mask=mask), params, zeros)
  np.testing.assert_array_equal(moved["bn"]["scale"], params["bn"]["scale"])
  assert np.all(np.abs(np.asarray(moved["fc"]["bias"])) < np.abs(np.asarray(params["fc"]["bias"])))


def test_sgd_frozen_leaves_do_not_move():
  params = _params()
  grads = _grads(5, params)
  sched = optim.epoch_schedule(optim.lr_table("ss_step", 0.1, 10), 2)
  lrs = [float(sched(s)) for s in range(5)]
  frozen = optim.mask_by_path(lambda p: not p.startswith("fc/"))  # cRT-like: only the head trains
  got = _run(optim.sgd(sched, momentum=0.9, weight_decay=5e-2, frozen=frozen), params, grads)
  for path in (("conv", "kernel"), ("bn", "scale"), ("bn", "bias")):
    np.testing.assert_array_equal(got[path[0]][path[1]], params[path[0]][path[1]])
  ref = _torch_sgd_reference(params, grads, lrs, 0.9, 5e-2, frozen=[True, True, True, False])
  assert _max_diff(got, ref) < 1e-6
  assert _max_diff(got["fc"], params["fc"]) > 1e-3
  # a prefix pytree works too
  got2 = _run(optim.sgd(sched, 0.9, 5e-2, frozen={"conv": True, "bn": True, "fc": False}), params, grads)
  assert _max_diff(got2, got) == 0.0


def test_sgd_no_momentum_and_from_config():
  params = _params()
  grads = _grads(3, params)
  got = _run(optim.sgd(0.05, momentum=0.0, weight_decay=1e-2), params, grads)
  ref = _torch_sgd_reference(params, grads, [0.05] * 3, 0.0, 1e-2)
  assert _max_diff(got, ref) < 1e-6
  cfg = ml_collections.ConfigDict({
      "optim": {"schedule": "arb_step", "lr": 0.1, "momentum": 0.9, "weight_decay": 2e-4, "nesterov": False,
                "warmup_epochs": 5, "legacy_order": False},
      "train": {"epochs": 200}})
  tx, sched, table = optim.from_config(cfg, steps_per_epoch=3)
  assert table.shape == (200,) and float(sched(3)) == pytest.approx(0.04)
  got = _run(tx, params, grads)
  ref = _torch_sgd_reference(params, grads, [0.02] * 3, 0.9, 2e-4)
  assert _max_diff(got, ref) < 1e-6
