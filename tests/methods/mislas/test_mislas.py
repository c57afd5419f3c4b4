"""MiSLAS stage 2: per-group learning rates against a PyTorch-SGD reference written out in numpy, the LWS head, the
epoch length of the official loop, the config's checks, and the recipe end to end on digits (frozen backbone bitwise
unchanged; BN statistics moving only with shift BN)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mislas_stage2
from ltjax import config as config_lib
from ltjax.errors import ConfigError
from ltjax.methods.mislas.method import epoch_length
from ltjax.train import optim


def torch_sgd_groups(params, grads_seq, lrs, mom, wd):
  """PyTorch SGD with param groups (dampening 0): per group g ← g + wd·θ; v ← μ·v + g (v = g first); θ ← θ − lr_g·v."""
  theta = {k: np.array(v, np.float64) for k, v in params.items()}
  buf = {}
  for grads in grads_seq:
    for k in theta:
      g = np.asarray(grads[k], np.float64) + wd * theta[k]
      buf[k] = g if k not in buf else mom * buf[k] + g
      theta[k] = theta[k] - lrs[k] * buf[k]
  return theta


def test_lr_mults_are_pytorch_param_groups():
  rng = np.random.default_rng(0)
  params = {"fc": {"kernel": rng.normal(size=(3, 2)), "bias": rng.normal(size=2), "lws": np.ones(2)}}
  grads = [{"fc": {k: rng.normal(size=v.shape) for k, v in params["fc"].items()}} for _ in range(3)]
  lr = 0.1
  tx = optim.sgd(lr, momentum=0.9, weight_decay=2e-4, lr_mults=("^fc/(kernel|bias)$=0.5",))
  p = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
  state = tx.init(p)
  for g in grads:
    upd, state = tx.update(jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), g), state, p)
    p = jax.tree.map(lambda a, b: a + b, p, upd)
  want = torch_sgd_groups(params["fc"], [g["fc"] for g in grads], {"kernel": 0.05, "bias": 0.05, "lws": 0.1},
                          0.9, 2e-4)
  for k in want:
    np.testing.assert_allclose(np.asarray(p["fc"][k]), want[k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", ["fc=", "=0.5", "(=1", "fc=nan", "fc=-1"])
def test_bad_lr_mults_are_refused(bad):
  c = config_lib.default()
  c.optim.lr_mults = (bad,)
  with pytest.raises(ConfigError, match="config.optim.lr_mults"):
    config_lib.validate(c)


def test_lws_head_starts_as_the_linear_head():
  from ltjax.models.heads import LinearHead, LinearLWSHead
  f = jax.random.normal(jax.random.PRNGKey(0), (4, 8))
  v = LinearLWSHead(5).init(jax.random.PRNGKey(1), f)
  assert sorted(v["params"]) == ["bias", "kernel", "lws"]
  lin = {"params": {k: v["params"][k] for k in ("kernel", "bias")}}
  np.testing.assert_allclose(LinearLWSHead(5).apply(v, f), LinearHead(5).apply(lin, f), rtol=1e-6)
  s = jnp.arange(1.0, 6.0)
  v2 = {"params": dict(v["params"], lws=s)}
  np.testing.assert_allclose(LinearLWSHead(5).apply(v2, f), LinearHead(5).apply(lin, f) * s, rtol=1e-6)


def test_epoch_length_follows_the_official_loop():
  # CIFAR-10-LT ρ = 0.01: N = 12,406, B = 128 → end_steps = 97, batches i = 0..97 → 98 batches.
  assert epoch_length(12406, 128) == 98 * 128
  assert epoch_length(585, 64) == 11 * 64
  assert epoch_length(640, 64) == 11 * 64


def test_configs_carry_the_official_settings():
  c = mislas_stage2.get_config("dataset=cifar100,imb=0.01")
  assert (c.loss.las_head, c.loss.las_tail, c.train.frozen_bn) == (0.4, 0.1, "train")
  assert c.optim.lr_mults == ("^fc/(kernel|bias)$=0.2",)
  c10 = mislas_stage2.get_config("dataset=cifar10,imb=0.01")
  assert (c10.loss.las_head, c10.train.frozen_bn, c10.optim.lr_mults) == (0.3, "eval", ("^fc/(kernel|bias)$=0.5",))
  assert [optim.lr_table("arb_cosine", 0.1, 10)[e] for e in (0, 5)] == pytest.approx(
      [0.1, 0.05 * (1 + math.cos(3.1415926535 * 0.5))])
  with pytest.raises(ConfigError, match="init.workdir"):
    config_lib.validate(c10)
  c10.init.workdir = "runs/x"
  config_lib.validate(c10)
  c10.model.head = "linear"
  with pytest.raises(ConfigError, match="linear_lws"):
    config_lib.validate(c10)


def _flat(tree):
  return {jax.tree_util.keystr(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.mark.slow
@pytest.mark.parametrize("shift_bn", [False, True])
def test_stage2_on_digits_trains_only_the_classifier(tmp_path, shift_bn):
  from ltjax.train import loop
  from tests.cfgutil import override
  from tests.train.test_train import params_of, tiny
  s1 = tiny(**{"loss.name": "ce", "train.epochs": 2})
  loop.train_and_evaluate(s1, str(tmp_path / "s1"))
  c = mislas_stage2.get_config("dataset=digits,imb=0.1")
  c = override(c, **{"model.name": "resnet8", "train.epochs": 2, "train.progress_bar": False,
                     "init.workdir": str(tmp_path / "s1"), "train.frozen_bn": "train" if shift_bn else "eval"})
  res = loop.train_and_evaluate(c, str(tmp_path / "s2"))
  assert res["steps"] == 2 * 11  # (⌈585/64⌉ + 1) batches per epoch
  from ltjax.tools.open_run import open_run
  before = open_run(str(tmp_path / "s1"), "best").state
  after, _ = params_of(str(tmp_path / "s2"), c)
  p0, p1 = _flat(before.params), _flat(after.params)
  for k in p0:
    if "'fc'" in k:
      assert not np.array_equal(p0[k], p1[k]), k  # the classifier trains
    else:
      np.testing.assert_array_equal(p0[k], p1[k], err_msg=k)  # the backbone is frozen bitwise
  assert not np.array_equal(p1["['fc']['lws']"], np.ones(10))
  b0, b1 = _flat(before.batch_stats), _flat(after.batch_stats)
  moved = [k for k in b0 if not np.array_equal(b0[k], b1[k])]
  assert (len(moved) == len(b0)) if shift_bn else not moved
