"""Decoupling-style runs (ltjax/methods/semi_self/decouple.py): epoch orders of ⌊N/B⌋·B indices, the class-aware
sampler, the in-batch shuffle, the SBCL N(0, 0.01²) classifier, and cRT on MoCo weights: only the classifier changes, BN
running statistics update in 'train' mode and stay put in 'eval' mode (the MoCo → cRT chain on digits)."""

import jax
import numpy as np
import pytest

from configs import moco_digits
from tests.cfgutil import labels_dataset, override

from ltjax import config as config_lib
from ltjax.data.stats import ClassStats
from ltjax.methods.semi_self.decouple import Decouple
from ltjax.train import loop, run as run_lib
from ltjax.train.checkpoint import Checkpointer


def dcfg(**over):
  c = moco_digits.get_config("stage=crt")
  return override(c, **over)


def _method(labels, C, **over):
  cfg = dcfg(**over)
  return Decouple(cfg, labels_dataset(labels, C), ClassStats.from_labels(labels, C))


def test_epoch_orders_have_floor_n_over_b_batches():
  labels = np.repeat(np.arange(5), [50, 30, 10, 5, 2])  # N = 97
  for sampler in ("uniform", "class_aware"):
    m = _method(labels, 5, **{"decouple.sampler": sampler, "train.batch_size": 16})
    o0, o1 = m.epoch_order(0, 0), m.epoch_order(1, 0)
    assert len(o0) == len(o1) == (97 // 16) * 16 == 96
    assert not np.array_equal(o0, o1)
    np.testing.assert_array_equal(o0, m.epoch_order(0, 0))  # a function of (seed, epoch)
  uni = _method(labels, 5, **{"decouple.sampler": "uniform", "train.batch_size": 16}).epoch_order(0, 0)
  assert len(np.unique(uni)) == 96  # a truncated permutation
  ca = _method(labels, 5, **{"decouple.sampler": "class_aware", "train.batch_size": 16}).epoch_order(0, 0)
  # 4 consecutive items of one class per visit; every class visited about equally often
  runs = labels[ca].reshape(-1, 4)
  assert np.all(runs == runs[:, :1])
  visits = np.bincount(runs[:, 0], minlength=5)
  assert visits.max() - visits.min() <= 1


def test_in_batch_shuffle_permutes_inside_each_batch_only():
  labels = np.repeat(np.arange(4), [40, 20, 10, 6])
  kw = {"decouple.sampler": "class_aware", "train.batch_size": 8}
  plain = _method(labels, 4, **kw).epoch_order(3, 1)
  shuf = _method(labels, 4, **kw, **{"decouple.in_batch_shuffle": True}).epoch_order(3, 1)
  assert not np.array_equal(plain, shuf)
  np.testing.assert_array_equal(np.sort(plain.reshape(-1, 8), 1), np.sort(shuf.reshape(-1, 8), 1))


def _state_of(workdir, cfg):
  run = run_lib.setup(cfg)
  ck = Checkpointer(str(workdir), 2)
  state, _ = ck.restore_latest(run_lib.create_state(run, cfg.seed))
  ck.close()
  return jax.device_get(state)


def _flat(tree):
  return {"/".join(str(getattr(k, "key", k)) for k in p): np.asarray(v)
          for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.fixture(scope="module")
def moco_run(tmp_path_factory):
  d = tmp_path_factory.mktemp("moco")
  cfg = moco_digits.get_config("stage=moco")
  cfg.train.epochs = 2
  loop.train_and_evaluate(cfg, str(d))
  return d, _state_of(d, cfg)


@pytest.mark.slow
@pytest.mark.parametrize("frozen_bn", ["train", "eval"])
def test_crt_trains_only_the_classifier(moco_run, tmp_path, frozen_bn):
  src, moco_state = moco_run
  cfg = dcfg(**{"init.workdir": str(src), "train.epochs": 2, "train.frozen_bn": frozen_bn})
  res = loop.train_and_evaluate(cfg, str(tmp_path))
  after = _state_of(tmp_path, cfg)
  before_p, after_p = _flat(moco_state.params), _flat(after.params)
  assert set(after_p) == {k for k in before_p if not k.startswith("proj/")}
  for k, v in after_p.items():
    if k.startswith("fc/"):
      continue
    np.testing.assert_array_equal(v, before_p[k], err_msg=k)  # bit-identical encoder
  fresh = _flat(jax.device_get(run_lib.create_state(run_lib.setup(cfg), cfg.seed)).params)
  assert not np.allclose(after_p["fc/kernel"], fresh["fc/kernel"])  # the classifier trained
  before_s, after_s = _flat(moco_state.batch_stats), _flat(after.batch_stats)
  changed = [k for k in after_s if not np.array_equal(after_s[k], before_s[k])]
  if frozen_bn == "train":
    assert len(changed) == len(after_s)  # BN kept re-estimating its statistics on class-balanced batches
  else:
    assert changed == []
  assert res["best"]["top1"] > 20.0


@pytest.mark.slow
def test_normal_classifier_init_for_sbcl_stage_two(moco_run, tmp_path):
  src, _ = moco_run
  cfg = moco_digits.get_config(f"stage=sbcl_linear,init={src}")
  cfg.train.epochs = 1
  run = run_lib.setup(cfg)
  state = run_lib.create_state(run, cfg.seed, pretrained=True)
  out = jax.device_get(run.method.on_epoch_start(0, state, run))
  w, b = out.params["fc"]["kernel"], out.params["fc"]["bias"]
  assert abs(w.std() - 0.01) < 0.002 and abs(w.mean()) < 0.002
  np.testing.assert_array_equal(b, 0.0)
  # only at step 0
  later = run.method.on_epoch_start(1, state.replace(step=state.step + 1), run)
  np.testing.assert_array_equal(jax.device_get(later.params["fc"]["kernel"]),
                                jax.device_get(state.params["fc"]["kernel"]))


def test_bad_decouple_configs_fail_early():
  with pytest.raises(config_lib.ConfigError, match="decouple.sampler"):
    config_lib.validate(dcfg(**{"decouple.sampler": "balanced"}))
  with pytest.raises(config_lib.ConfigError, match="resample"):
    config_lib.validate(dcfg(**{"supervised.train_rule": "resample"}))
