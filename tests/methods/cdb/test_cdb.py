"""CDB-CE (ltjax/methods/cdb/, Sinha et al., ACCV 2020): the class weights against a numpy transcription of the
official formulas (`CIFAR-LT/losses/cdb_loss.py`), the loss against the official reduction (weighted per-example
CE, then a plain mean), the between-epoch update through the run service, bitwise resume, and bad configs.
This method is the worked recipe of docs/ARCHITECTURE.md ("Adding a method")."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import cdb_digits
from tests.cfgutil import labels_dataset, override

from ltjax import config as config_lib
from ltjax.data.stats import ClassStats
from ltjax.methods.cdb import CDB, cdb_weights
from ltjax.methods.cdb.method import per_class_accuracy
from ltjax.train import loop
from ltjax.train.checkpoint import Checkpointer


def ref_weights(acc, tau):
  """CDB_loss.__init__ with class_difficulty = 1 − acc (official cifar_train.py)."""
  d = 1 - np.asarray(acc, np.float64)
  if tau == "dynamic":
    bias = (1 - np.min(d)) / (1 - np.max(d) + 0.01)
    tau = 1 / (1 + np.exp(-bias))
  w = d ** float(tau)
  return w / w.sum() * len(w)


@pytest.mark.parametrize("tau", ["dynamic", 0.5, 1.0, 2.0])
def test_weights_match_the_official_formula(tau):
  acc = np.array([0.95, 0.8, 0.6, 0.3, 0.1])
  w = cdb_weights(acc, tau)
  np.testing.assert_allclose(w, ref_weights(acc, tau), rtol=1e-12)
  assert w.sum() == pytest.approx(5.0) and np.all(np.diff(w) > 0)  # harder classes weigh more


def test_perfect_classes_weigh_zero_and_all_perfect_falls_back_to_ones():
  np.testing.assert_allclose(cdb_weights([1.0, 0.5], 1.0), [0.0, 2.0])
  np.testing.assert_array_equal(cdb_weights([1.0, 1.0, 1.0]), np.ones(3))  # official: 0/0 = NaN


def test_per_class_accuracy_counts_true_classes():
  logits = np.eye(3)[[0, 1, 1, 2, 0]]
  labels = np.array([0, 1, 2, 2, 1])
  np.testing.assert_allclose(per_class_accuracy(logits, labels, 4), [1.0, 0.5, 0.5, 0.0])


def _method(labels, c):
  cfg = cdb_digits.get_config()
  return CDB(cfg, labels_dataset(labels, c), ClassStats.from_labels(labels, c))


def test_loss_is_the_plain_mean_of_weighted_per_example_ce():
  labels = np.array([0, 0, 1, 2, 2, 2])
  m = _method(labels, 3)
  rng = np.random.RandomState(0)
  z = rng.randn(6, 3).astype(np.float32)
  w = np.array([0.5, 2.0, 0.5], np.float32)

  def apply_fn(variables, x, train, mutable):
    return {"logits": variables["params"]["z"]}, {"batch_stats": {}}

  state = {"class_weights": jnp.asarray(w), "weights_epoch": jnp.zeros([], jnp.int32)}
  batch = {"image": jnp.zeros((6, 8, 8, 3)), "label": jnp.asarray(labels)}

  def f(zz):
    return m.loss(apply_fn, {"z": zz}, {}, state, batch, {}, None)[0]

  value, grad = jax.value_and_grad(f)(jnp.asarray(z))
  zz = z.astype(np.float64)
  p = np.exp(zz - zz.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  ce = -np.log(p[np.arange(6), labels])
  np.testing.assert_allclose(float(value), np.mean(w[labels] * ce), rtol=1e-6)  # not Σwℓ/Σw
  g = p.copy()
  g[np.arange(6), labels] -= 1
  np.testing.assert_allclose(np.asarray(grad), w[labels][:, None] * g / 6, rtol=1e-5, atol=1e-7)


def _cfg(**over):
  return override(cdb_digits.get_config("epochs=3"), **{"train.progress_bar": False, "train.eval_every": 1,
                                                        "train.log_every": 1, "train.checkpoint_every": 1, **over})


@pytest.mark.slow
def test_weights_follow_the_validation_split_and_resume_bitwise(tmp_path):
  full = loop.train_and_evaluate(_cfg(), str(tmp_path / "full"))
  cfg = _cfg()
  with pytest.raises(loop.Preempted):
    loop.train_and_evaluate(cfg, str(tmp_path / "cut"), stop_at_step=full["steps"] // 3 + 2)  # inside epoch 1
  resumed = loop.train_and_evaluate(cfg, str(tmp_path / "cut"))
  assert resumed["final"]["top1"] == full["final"]["top1"]

  def last_state(workdir):
    from ltjax.train import run as run_lib
    run = run_lib.setup(cfg)
    ck = Checkpointer(workdir, cfg.train.keep_checkpoints)
    try:
      return ck.restore_latest(run_lib.create_state(run, cfg.seed))[0], run
    finally:
      ck.close()

  a, run = last_state(str(tmp_path / "full"))
  b, _ = last_state(str(tmp_path / "cut"))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  w = np.asarray(a.method_state["class_weights"])
  assert int(a.method_state["weights_epoch"]) == 2 and w.sum() == pytest.approx(10.0, rel=1e-5)
  assert not np.allclose(w, 1.0)  # the update ran


@pytest.mark.slow
def test_the_update_uses_the_held_out_split_once_per_due_epoch():
  from ltjax.train import run as run_lib
  cfg = _cfg(**{"cdb.every": 2})
  run = run_lib.setup(cfg)
  state = run_lib.create_state(run, cfg.seed)
  m = run.method
  assert m.on_epoch_start(0, state, run) is state  # nothing before the first epoch
  new = m.on_epoch_start(1, state, run)  # after epoch 0: 0 % every == 0
  p = run.predict(state, "val")
  want = cdb_weights(per_class_accuracy(p["logits"], p["labels"], 10), "dynamic")
  np.testing.assert_allclose(np.asarray(new.method_state["class_weights"]), want, rtol=1e-6)
  assert int(new.method_state["weights_epoch"]) == 1 and len(p["labels"]) == 40  # 4 per class
  assert m.on_epoch_start(1, new, run) is new  # resumed inside epoch 1: already applied
  assert m.on_epoch_start(2, new, run) is new  # after epoch 1: 1 % 2 != 0, no update due


@pytest.mark.parametrize("over,match", [
    ({"cdb.tau": "hot"}, "config.cdb.tau"),
    ({"cdb.split": "test"}, "config.cdb.split"),
    ({"data.val_per_class": 0}, "val_per_class"),
    ({"loss.name": "focal"}, "its own weighted cross-entropy"),
    ({"supervised.train_rule": "drw", "supervised.drw_epoch": 100}, "its own weighted cross-entropy"),
    ({"cdb.every": 0}, "config.cdb.every"),
])
def test_bad_configs_are_named(over, match):
  with pytest.raises(config_lib.ConfigError, match=match):
    config_lib.validate(override(cdb_digits.get_config(), **over))
