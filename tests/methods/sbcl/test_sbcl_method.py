"""SBCL as a method (SBCL (Hou et al., ICCV 2023; official code)): the stage-1 loss and its phases, the clustering
schedule,
both stages end to end through train_and_evaluate on digits, resume inside stage 1, and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import sbcl_digits
from tests.cfgutil import labels_dataset, override

from ltjax import config as config_lib
from ltjax.data.stats import ClassStats
from ltjax.errors import ConfigError
from ltjax.losses import contrastive
from ltjax.methods.sbcl import SBCL, clustering
from ltjax.models import create_model
from ltjax.train import loop, run as run_lib


def stage1_cfg(**over):
  c = sbcl_digits.get_config("stage=1")
  # 4 epochs: SupCon in 0–1, clustering at epochs 2 and 3 (step 1), 4 steps per epoch of 128 (remainder dropped).
  return override(c, **{"train.epochs": 4, "sbcl.warm_epochs": 2, "sbcl.step": 1, "train.progress_bar": False,
                    "data.drop_remainder": True, "train.log_every": 2, **over})


def stage2_cfg(init_workdir, **over):
  c = sbcl_digits.get_config("stage=2,rule=drw")
  return override(c, **{"train.epochs": 2, "train.progress_bar": False, "data.drop_remainder": True,
                    "init.workdir": str(init_workdir), **over})


def _state_of(workdir, cfg):
  from ltjax.train.checkpoint import Checkpointer
  run = run_lib.setup(cfg)
  ck = Checkpointer(str(workdir), 2)
  state, meta = ck.restore_latest(run_lib.create_state(run, cfg.seed))
  ck.close()
  return jax.device_get(state), run


@pytest.fixture(scope="module")
def stage1_run(tmp_path_factory):
  wd = tmp_path_factory.mktemp("sbcl_s1")
  cfg = stage1_cfg()
  loop.train_and_evaluate(cfg, str(wd))
  state, run = _state_of(wd, cfg)
  return wd, cfg, state, run


# ------------------------------------------------------------------ the loss inside the step


def _tiny_method(**over):
  c = stage1_cfg(**over)
  labels = np.array([0, 0, 0, 0, 1, 1, 2, 2], np.int32)
  stats = ClassStats.from_labels(labels, 3)
  return SBCL(c, labels_dataset(labels, 3, (32, 32, 3)), stats), labels


@pytest.mark.slow
def test_loss_phases_and_per_view_batchnorm():
  method, labels = _tiny_method(**{"sbcl.num_subclasses": (2, 1, 1)})
  model = create_model("resnet8", 3, **method.model_kwargs())
  rng = np.random.default_rng(0)
  v1 = jnp.asarray(rng.normal(size=(8, 8, 8, 3)), jnp.float32)
  v2 = jnp.asarray(rng.normal(size=(8, 8, 8, 3)), jnp.float32)
  variables = model.init(jax.random.key(0), v1, train=False)
  params, bs = variables["params"], variables["batch_stats"]
  state = {"sub_labels": jnp.asarray([0, 1, 0, 1, 2, 2, 3, 3], jnp.int32),
           "class_temps": jnp.asarray([0.13, 0.1, 0.1], jnp.float32), "cluster_epoch": jnp.asarray(2)}
  idx = jnp.asarray([7, 0, 1, 2, 4, 3, 6, 5])
  batch = {"view1": v1, "view2": v2, "label": jnp.asarray(labels)[idx], "index": idx}

  def proj(x):
    out, nv = model.apply({"params": params, "batch_stats": bs}, x, train=True, mutable=["batch_stats"])
    return out["projection"] / jnp.linalg.norm(out["projection"], axis=1, keepdims=True), nv["batch_stats"]

  (z1, bs1), (z2, _) = proj(v1), proj(v2)
  z = jnp.concatenate([z1, z2])
  k = state["sub_labels"][idx]
  for phase, ref in ((0, contrastive.supcon_loss(z, batch["label"], 0.1, 0.1)),
                     (1, contrastive.sbcl_loss(z, batch["label"], k, state["class_temps"], 0.1, 0.07, 0.25))):
    loss, (new_bs, ms, _) = method.loss(model.apply, params, bs, state, batch, {"phase": jnp.asarray(phase)}, None)
    np.testing.assert_allclose(float(loss), float(ref), rtol=1e-5)
    # Per-view BN (2-GPU DataParallel): running statistics are those of the view-1 forward.
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), new_bs, bs1)
    assert ms is state
  # ccl mode, and joint BN over both views.
  method_c, _ = _tiny_method(**{"sbcl.num_subclasses": (2, 1, 1), "sbcl.loss_mode": "ccl", "sbcl.per_view_bn": False})
  out, _ = model.apply({"params": params, "batch_stats": bs}, jnp.concatenate([v1, v2]), train=True,
                       mutable=["batch_stats"])
  zj = out["projection"] / jnp.linalg.norm(out["projection"], axis=1, keepdims=True)
  loss, _ = method_c.loss(model.apply, params, bs, state, batch, {"phase": jnp.asarray(1)}, None)
  np.testing.assert_allclose(float(loss), float(contrastive.sbcl_ccl_loss(zj, batch["label"], k)), rtol=1e-5)


def test_clustering_schedule():
  m, _ = _tiny_method(**{"sbcl.warm_epochs": 10, "sbcl.step": 10, "sbcl.num_subclasses": (2, 1, 1)})
  got = [e for e in range(60) if m.clusters_at(e, -1 if e <= 10 else 10)]
  assert got[:1] == [10] and [e for e in range(11, 60) if m.clusters_at(e, 10)] == [20, 30, 40, 50]
  assert not any(m.clusters_at(e, -1) for e in range(10))
  assert m.epoch_hparams(9)["phase"] == 0 and m.epoch_hparams(10)["phase"] == 1
  m3, _ = _tiny_method(**{"sbcl.warm_epochs": 10, "sbcl.step": 3, "sbcl.num_subclasses": (2, 1, 1)})
  assert m3.clusters_at(10, -1) and not m3.clusters_at(11, 10) and m3.clusters_at(12, 10)  # first epoch >= warm


def test_subclass_counts_of_the_cifar_configs():
  from configs import sbcl_cifar
  for ds, n_max, total in (("cifar10", 5000, 242), ("cifar100", 500, 1051)):
    c = sbcl_cifar.get_config(f"dataset={ds},imb=0.01,stage=1")
    C = 10 if ds == "cifar10" else 100
    counts = np.floor(n_max * 0.01 ** (np.arange(C) / (C - 1))).astype(np.int64)
    labels = np.repeat(np.arange(C), counts).astype(np.int32)
    m = SBCL(c, labels_dataset(labels, C), ClassStats.from_labels(labels, C)).sub_counts
    assert sum(m) == total
    if ds == "cifar10":
      assert list(m) == [100, 59, 35, 21, 12, 7, 4, 2, 1, 1]


# ------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_stage1_end_to_end_clusters_into_the_state(stage1_run):
  wd, cfg, state, run = stage1_run
  ms = state.method_state
  assert int(ms["cluster_epoch"]) == 3
  sub = np.asarray(ms["sub_labels"])
  m = np.asarray(run.method.sub_counts)
  _, offs = clustering.subclass_layout(m)
  y = run.data.train.labels
  assert ((sub >= offs[y]) & (sub < offs[y] + m[y])).all()        # every image in a subclass of its class
  assert len(np.unique(sub)) > 0.8 * m.sum()                       # (almost) every subclass used
  temps = np.asarray(ms["class_temps"])
  assert temps.shape == (10,) and np.all(temps > 0) and np.allclose(temps[m == 1], 0.1)
  assert not np.allclose(temps, 0.1)
  lines = (wd / "metrics.jsonl").read_text().splitlines()
  import json
  rows = [json.loads(l) for l in lines]
  assert {r["split"] for r in rows} == {"train"}                   # eval_every 0: no evaluation
  phases = sorted({(r["epoch"], r["phase"]) for r in rows})
  assert (0, 0.0) in phases and (3, 1.0) in phases and all(np.isfinite(r["loss"]) for r in rows)
  # Clustering features: unit rows of the first augmented view, a function of (seed, epoch) (resume relies on it).
  st = jax.device_put(state)
  f3, f3b, f4 = (run.method.cluster_features(run, st, e) for e in (3, 3, 4))
  assert f3.shape == (len(y), 128)
  np.testing.assert_allclose(np.linalg.norm(f3, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(f3, f3b)
  assert np.abs(f3 - f4).max() > 1e-2                              # fresh augmentation draws per epoch


@pytest.mark.slow
def test_stage2_freezes_encoder_and_trains_head(stage1_run, tmp_path):
  wd1, _, s1, _ = stage1_run
  cfg2 = stage2_cfg(wd1)
  res = loop.train_and_evaluate(cfg2, str(tmp_path))
  s2, run2 = _state_of(tmp_path, cfg2)
  fresh = jax.device_get(run_lib.create_state(run2, cfg2.seed))   # the fresh init of the stage-2 model
  for path, leaf in jax.tree_util.tree_flatten_with_path(s2.params)[0]:
    name = "/".join(str(getattr(k, "key", k)) for k in path)
    if name.startswith("fc/"):
      assert not np.allclose(leaf, _get(fresh.params, path)), name     # the head trained
    else:
      np.testing.assert_array_equal(leaf, _get(s1.params, path), err_msg=name)   # encoder = stage 1, bitwise
  jax.tree.map(np.testing.assert_array_equal, s2.batch_stats, s1.batch_stats)    # frozen_bn 'eval'
  assert "proj" not in s2.params and "proj" in s1.params
  import json
  losses = [json.loads(l)["loss"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()
            if json.loads(l)["split"] == "train"]
  assert losses[-1] < losses[0]                                                # the classifier learns
  assert res["best"] is not None and len(res["best"]["per_class"]) == 10      # evaluated every epoch


def _get(tree, path):
  for k in path:
    tree = tree[getattr(k, "key", k)]
  return tree


@pytest.mark.slow
def test_stage2_other_architecture_is_a_clear_error(stage1_run, tmp_path):
  wd1, *_ = stage1_run
  cfg2 = stage2_cfg(wd1, **{"model.name": "resnet20"})
  with pytest.raises(ConfigError, match="resnet8"):
    loop.train_and_evaluate(cfg2, str(tmp_path))


@pytest.mark.slow
def test_resume_inside_stage1_restores_subclasses_exactly(stage1_run, tmp_path):
  wd1, cfg, full, run = stage1_run
  spe = run.train_input.steps_per_epoch
  stop = 2 * spe + spe // 2           # inside epoch 2, after its clustering
  with pytest.raises(loop.Preempted):
    loop.train_and_evaluate(cfg, str(tmp_path), stop_at_step=stop)
  mid, _ = _state_of(tmp_path, cfg)
  assert int(mid.step) == stop and int(mid.method_state["cluster_epoch"]) == 2
  assert (np.asarray(mid.method_state["sub_labels"]) >= 0).all()
  loop.train_and_evaluate(cfg, str(tmp_path))
  end, _ = _state_of(tmp_path, cfg)
  np.testing.assert_array_equal(end.method_state["sub_labels"], full.method_state["sub_labels"])
  np.testing.assert_array_equal(end.method_state["class_temps"], full.method_state["class_temps"])
  jax.tree.map(np.testing.assert_array_equal, end.params, full.params)


# ------------------------------------------------------------------ bad input


def test_bad_input_errors():
  with pytest.raises(ConfigError, match="class 9 asks for 15 subclasses but has only 14"):
    run_lib.setup(stage1_cfg(**{"sbcl.num_subclasses": (1,) * 9 + (15,)}))
  with pytest.raises(ConfigError, match="balanced k-means is unusable"):
    config_lib.validate(stage1_cfg(**{"sbcl.cluster_method": "balanced"}))
  with pytest.raises(ConfigError, match="loss_mode"):
    config_lib.validate(stage1_cfg(**{"sbcl.loss_mode": "Rank"}))
