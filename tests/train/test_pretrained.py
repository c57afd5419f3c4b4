"""Initialising from a pre-trained run, freezing, inference-mode encoders, evaluation off, class-aware sampling,
method epoch orders and the projection head."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.train.test_train import params_of, tiny

from ltjax import config as config_lib, methods
from ltjax.data import pipeline, samplers
from ltjax.data.dataset import Split
from ltjax.errors import ConfigError
from ltjax.models import create_model
from ltjax.train import loop, pretrained, run as run_lib

# ---------------------------------------------------------------------------------------------------------------
# merge / load
# ---------------------------------------------------------------------------------------------------------------

def _vars(**shapes):
  params = {}
  for path, shape in shapes.items():
    node = params
    *parents, leaf = path.split("__")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = np.full(shape, 1.0, np.float32)
  return {"params": params, "batch_stats": {}}


def test_merge_copies_all_but_excluded_and_ignores_extra_source_leaves():
  fresh = _vars(conv__kernel=(3, 3, 1, 4), fc__kernel=(4, 10), fc__bias=(10,))
  src = _vars(conv__kernel=(3, 3, 1, 4), fc__kernel=(4, 4), fc__bias=(4,), proj__Dense_0__kernel=(4, 8))
  src["params"]["conv"]["kernel"] *= 7.0
  merged, report = pretrained.merge(fresh, src, exclude=("^fc/",))
  np.testing.assert_array_equal(merged["params"]["conv"]["kernel"], 7.0)
  np.testing.assert_array_equal(merged["params"]["fc"]["kernel"], fresh["params"]["fc"]["kernel"])
  assert "proj" not in merged["params"]
  assert report == {"copied": 1, "fresh": 2}


def test_merge_names_the_mismatch():
  fresh = _vars(conv__kernel=(3, 3, 1, 8), fc__kernel=(8, 10))
  src = _vars(conv__kernel=(3, 3, 1, 4), fc__kernel=(4, 10))
  with pytest.raises(ConfigError, match=r"params/conv/kernel with shape \(3, 3, 1, 4\).*needs \(3, 3, 1, 8\)"):
    pretrained.merge(fresh, src)
  with pytest.raises(ConfigError, match=r"has no params/extra/kernel"):
    pretrained.merge(_vars(extra__kernel=(2,), fc__kernel=(8, 10)), src)
  merged, report = pretrained.merge(_vars(extra__kernel=(2,), fc__kernel=(8, 10)), src, strict=False)
  assert report == {"copied": 0, "fresh": 2}


def test_npz_source_round_trip(tmp_path):
  path = str(tmp_path / "w.npz")
  np.savez(path, **{"params/conv/kernel": np.arange(6.0).reshape(2, 3), "batch_stats/bn/mean": np.ones(3)})
  v = pretrained.load_variables(path)
  np.testing.assert_array_equal(v["params"]["conv"]["kernel"], np.arange(6.0).reshape(2, 3))
  np.testing.assert_array_equal(v["batch_stats"]["bn"]["mean"], np.ones(3))
  np.savez(str(tmp_path / "bad.npz"), **{"conv/kernel": np.ones(2)})
  with pytest.raises(ConfigError, match="must start with 'params/'"):
    pretrained.load_variables(str(tmp_path / "bad.npz"))
  with pytest.raises(ConfigError, match="no such .npz"):
    pretrained.check_source(str(tmp_path / "missing.npz"))


# ---------------------------------------------------------------------------------------------------------------
# end to end: stage 1 → frozen stage 2
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
  d = tmp_path_factory.mktemp("stage1")
  cfg = tiny(**{"train.epochs": 1, "loss.name": "ce"})
  loop.train_and_evaluate(cfg, str(d))
  state, _ = params_of(str(d), cfg)
  return str(d), state


def _leaves(tree, exclude_fc=True):
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(p): np.asarray(v) for p, v in flat if not (exclude_fc and "'fc'" in jax.tree_util.keystr(p))}


@pytest.mark.slow
@pytest.mark.parametrize("frozen_bn", ["eval", "train"])
def test_frozen_encoder_stage2_trains_only_the_head(stage1, tmp_path, frozen_bn):
  src, s1 = stage1
  cfg = tiny(**{"train.epochs": 1, "loss.name": "ce", "init.workdir": src, "train.trainable": "^fc/",
                "train.frozen_bn": frozen_bn, "optim.weight_decay": 5e-4})
  loop.train_and_evaluate(cfg, str(tmp_path))
  s2, _ = params_of(str(tmp_path), cfg)
  before, after = _leaves(s1.params), _leaves(s2.params)
  assert before.keys() == after.keys() and len(before) > 10
  for k in before:  # the encoder is bit-identical: no gradient step, no weight decay
    np.testing.assert_array_equal(before[k], after[k], err_msg=k)
  fc1, fc2 = s1.params["fc"]["kernel"], s2.params["fc"]["kernel"]
  assert fc1.shape == fc2.shape and not np.allclose(fc1, fc2)
  bs1, bs2 = _leaves(s1.batch_stats, False), _leaves(s2.batch_stats, False)
  same = all(np.array_equal(bs1[k], bs2[k]) for k in bs1)
  assert same == (frozen_bn == "eval")  # train mode keeps re-estimating BN running statistics


@pytest.mark.slow
def test_init_copies_the_encoder_and_refreshes_the_head(stage1, tmp_path):
  src, s1 = stage1
  cfg = tiny(**{"train.epochs": 1, "loss.name": "ce", "init.workdir": src, "seed": 3})
  run = run_lib.setup(cfg)
  fresh = jax.device_get(run_lib.create_state(run, cfg.seed))
  init = jax.device_get(run_lib.create_state(run, cfg.seed, pretrained=True))
  for k, v in _leaves(s1.params).items():
    np.testing.assert_array_equal(_leaves(init.params)[k], v)
  for k, v in _leaves(s1.batch_stats, False).items():
    np.testing.assert_array_equal(_leaves(init.batch_stats, False)[k], v)
  np.testing.assert_array_equal(init.params["fc"]["kernel"], fresh.params["fc"]["kernel"])


@pytest.mark.slow
def test_init_from_another_architecture_is_a_clear_error(stage1, tmp_path):
  src, _ = stage1
  cfg = tiny(**{"model.name": "resnet20", "init.workdir": src})
  with pytest.raises(ConfigError, match=r"'resnet8' run.*another architecture"):
    loop.train_and_evaluate(cfg, str(tmp_path))
  assert not (tmp_path / "checkpoints" / "last").exists() or not list((tmp_path / "checkpoints" / "last").iterdir())


def test_init_source_errors_are_early(tmp_path):
  cfg = tiny(**{"init.workdir": str(tmp_path / "nope")})
  with pytest.raises(ConfigError, match="does not exist"):
    loop.train_and_evaluate(cfg, str(tmp_path / "run"))
  (tmp_path / "empty").mkdir()
  cfg = tiny(**{"init.workdir": str(tmp_path / "empty"), "init.checkpoint": "best"})
  with pytest.raises(ConfigError, match="no 'best' checkpoint.*init.checkpoint = 'last'"):
    loop.train_and_evaluate(cfg, str(tmp_path / "run2"))


def test_config_validation_of_new_fields():
  for over, msg in [({"train.frozen_bn": "eval"}, "only makes sense"), ({"train.trainable": "("}, "not a valid regex"),
                    ({"train.eval_every": 0}, "select_on = 'last'"), ({"init.checkpoint": "x"}, "init.checkpoint"),
                    ({"init.exclude": ("[",)}, "not a valid regex")]:
    with pytest.raises(ConfigError, match=msg):
      config_lib.validate(tiny(**over))
  config_lib.validate(tiny(**{"train.eval_every": 0, "train.select_on": "last"}))


@pytest.mark.slow
def test_no_evaluation_run(tmp_path):
  cfg = tiny(**{"train.epochs": 1, "train.eval_every": 0, "train.select_on": "last"})
  res = loop.train_and_evaluate(cfg, str(tmp_path))
  assert res["best"] is None and res["final"] is None
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert lines and all(l["split"] == "train" for l in lines)
  assert list((tmp_path / "checkpoints" / "last").iterdir())


# ---------------------------------------------------------------------------------------------------------------
# class-aware sampler and method epoch orders
# ---------------------------------------------------------------------------------------------------------------

def test_class_aware_order_follows_the_cycles():
  labels = np.repeat(np.arange(5), [20, 9, 5, 2, 1])
  order = samplers.class_aware_order(labels, 5, seed=1, epoch=0, per_class=4)
  assert order.shape == (20 * 5,)
  visits = labels[order].reshape(-1, 4)
  assert np.all(visits == visits[:, :1])  # 4 consecutive items of one class per visit
  seq = visits[:, 0]
  for k in range(len(seq) // 5):  # the class list is a fresh permutation in every cycle
    assert sorted(seq[5 * k:5 * k + 5]) == [0, 1, 2, 3, 4]
  for c in range(5):  # each class's items cycle through all its members before any repeats
    members = np.flatnonzero(labels == c)
    drawn = order[labels[order] == c]
    for k in range(len(drawn) // len(members)):
      assert sorted(drawn[k * len(members):(k + 1) * len(members)]) == list(members)
  np.testing.assert_array_equal(order, samplers.class_aware_order(labels, 5, seed=1, epoch=0))
  assert not np.array_equal(order, samplers.class_aware_order(labels, 5, seed=1, epoch=1))
  assert len(samplers.class_aware_order(labels, 5, 1, 0, length=37)) == 37


class _CB(methods.Supervised):
  name = "test_class_aware"

  def epoch_order(self, epoch, seed):
    return samplers.class_aware_order(self.train_labels, self.stats.num_classes, seed, epoch, length=128)


@pytest.mark.slow
def test_method_epoch_order_drives_the_pipeline(tmp_path):
  methods.register(_CB)
  try:
    cfg = tiny(**{"method": "test_class_aware", "train.epochs": 1})
    run = run_lib.setup(cfg)
    assert run.train_input.steps_per_epoch == 2
    batches = list(run.train_input.epoch(0))
    idx = np.concatenate([b["index"] for b in batches])
    np.testing.assert_array_equal(idx, _CB.epoch_order(run.method, 0, cfg.seed))
    counts = np.bincount(run.data.train.labels[idx], minlength=10)
    assert counts.max() - counts.min() <= 4  # balanced, unlike the long-tailed split
    loop.train_and_evaluate(cfg, str(tmp_path))
  finally:
    methods.REGISTRY.pop("test_class_aware")


def test_epoch_order_of_wrong_length_is_an_error():
  split = Split(np.zeros([10, 2, 2, 1], np.uint8), np.zeros([10], np.int32), np.arange(10))
  ti = pipeline.TrainInput(split, pipeline.Batches(10, 5), seed=0, mean=(0.0,), std=(1.0,), crop_padding=0,
                           flip=False, order_fn=lambda e: np.arange(8))
  with pytest.raises(ValueError, match="same length every epoch"):
    ti.order(0)


# ---------------------------------------------------------------------------------------------------------------
# projection head
# ---------------------------------------------------------------------------------------------------------------

def test_projection_head_matches_numpy():
  model = create_model("resnet8", 10, projection=(64, 128))
  x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 8, 8, 3)), jnp.float32)
  v = model.init(jax.random.key(0), x)
  out = model.apply(v, x)
  assert out["projection"].shape == (3, 128) and out["logits"].shape == (3, 10)
  p = jax.tree.map(np.asarray, v["params"]["proj"])
  w0, b0, w1, b1 = p["Dense_0"]["kernel"], p["Dense_0"]["bias"], p["Dense_1"]["kernel"], p["Dense_1"]["bias"]
  assert w0.shape == (64, 64) and w1.shape == (64, 128)
  for a in (w0, b0, w1, b1):  # nn.Linear's default init: U(±1/√64)
    assert np.abs(a).max() <= 1 / 8 and np.abs(a).max() > 0.9 / 8
  f = np.asarray(out["features"], np.float64)
  ref = np.maximum(f @ w0 + b0, 0) @ w1 + b1
  np.testing.assert_allclose(np.asarray(out["projection"]), ref, rtol=1e-5, atol=1e-5)
  assert "projection" not in create_model("resnet8", 10).apply(
      create_model("resnet8", 10).init(jax.random.key(0), x), x)
