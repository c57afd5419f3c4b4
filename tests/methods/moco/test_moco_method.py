"""The MoCo and SBCL-MoCo methods: one step against a numpy reference (momentum update, shuffle-BN keys, InfoNCE,
queue rows and pointer wrap), the label queues' before-enqueue semantics, 1 device = 8 devices, exact resume of
the queue, the phase-2 optimizer reset and re-clustering."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import moco_digits
from tests.cfgutil import override

from ltjax import config as config_lib
from ltjax.losses import contrastive, contrastive_queue
from ltjax.methods.sbcl import clustering, schedules as sbcl_schedules
from ltjax.train import loop, run as run_lib, step as step_lib
from ltjax.train.checkpoint import Checkpointer


def cfg_of(stage="moco", **over):
  c = moco_digits.get_config(f"stage={stage}")
  c.train.epochs = 2
  if stage == "sbcl":
    c.sbcl_moco.phase2_epoch = 1
  return override(c, **over)


def np_norm(x):
  x = np.asarray(x, np.float64)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def np_infonce(q, k, queue, T):
  z = np.concatenate([np.sum(q * k, 1, keepdims=True), q @ queue.T], 1) / T
  z = z - z.max(1, keepdims=True)
  return -(z[:, 0] - np.log(np.exp(z).sum(1))).mean()


def _setup(stage="moco", **over):
  cfg = cfg_of(stage, **over)
  run = run_lib.setup(cfg)
  state = jax.device_get(run_lib.create_state(run, cfg.seed))
  return cfg, run, state


def _batch(cfg, B, n_train, seed=0):
  rng = np.random.default_rng(seed)
  return {"image": jnp.asarray(rng.normal(size=(B, 8, 8, 1)), jnp.float32),
          "image_k": jnp.asarray(rng.normal(size=(B, 8, 8, 1)), jnp.float32),
          "label": jnp.asarray(rng.integers(0, 10, size=B), jnp.int32),
          "index": jnp.asarray(rng.choice(n_train, B, replace=False), jnp.int32)}


@pytest.mark.slow
def test_one_moco_step_matches_numpy_reference():
  cfg, run, state = _setup()
  method, apply = run.method, run.model.apply
  B, K, G, m, T = cfg.train.batch_size, cfg.moco.queue_size, cfg.moco.bn_groups, cfg.moco.momentum, 0.2
  params, stats = state.params, state.batch_stats
  noise = jax.tree.map(lambda p: 0.05 * np.random.default_rng(1).normal(size=p.shape).astype(np.float32), params)
  key_params = jax.tree.map(lambda p, n: p + n, params, noise)
  ms = dict(state.method_state, key_params=key_params, key_batch_stats=stats, initialized=jnp.int32(1),
            ptr=jnp.int32(K - B))  # the write fills the last B rows and the pointer wraps to 0
  batch = _batch(cfg, B, len(run.data.train.labels))
  rng = jax.random.PRNGKey(5)
  loss, (new_stats, new_ms, metrics) = jax.jit(
      lambda p, s, ms, b, r: method.loss(apply, p, s, ms, b, {}, r))(params, stats, ms, batch, rng)

  kp_ref = jax.tree.map(lambda k, q: m * np.float64(k) + (1 - m) * np.float64(q), key_params, params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), b, rtol=1e-6, atol=1e-7),
               new_ms["key_params"], kp_ref)
  b = B // G
  q_ref = np.concatenate([np_norm(apply({"params": params, "batch_stats": stats}, batch["image"][g * b:(g + 1) * b],
                                        train=True, mutable=["batch_stats"])[0]["projection"]) for g in range(G)])
  perm = np.asarray(jax.random.permutation(rng, B))
  kp32 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), kp_ref)
  xk = np.asarray(batch["image_k"])[perm]
  k_shuf = np.concatenate([np_norm(apply({"params": kp32, "batch_stats": stats}, xk[g * b:(g + 1) * b], train=True,
                                         mutable=["batch_stats"])[0]["projection"]) for g in range(G)])
  k_ref = k_shuf[np.argsort(perm)]
  queue_old = np.asarray(ms["queue"], np.float64)
  np.testing.assert_allclose(float(loss), np_infonce(q_ref, k_ref, queue_old, T), rtol=1e-4)
  new_queue = np.asarray(new_ms["queue"])
  np.testing.assert_allclose(new_queue[K - B:], k_ref, rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(new_queue[:K - B], np.asarray(ms["queue"])[:K - B])
  assert int(new_ms["ptr"]) == 0 and int(new_ms["initialized"]) == 1
  assert 0.0 <= float(metrics["accuracy"]) <= 1.0
  # query BN running statistics: mean of the per-group updates
  per = [apply({"params": params, "batch_stats": stats}, batch["image"][g * b:(g + 1) * b], train=True,
               mutable=["batch_stats"])[1]["batch_stats"] for g in range(G)]
  ref_stats = jax.tree.map(lambda *s: np.mean(np.stack(s), 0), *per)
  jax.tree.map(lambda a, r: np.testing.assert_allclose(np.asarray(a), r, rtol=1e-5, atol=1e-6), new_stats, ref_stats)


def test_first_step_copies_the_query_encoder():
  cfg, run, state = _setup()
  batch = _batch(cfg, cfg.train.batch_size, len(run.data.train.labels))
  assert int(state.method_state["initialized"]) == 0
  _, (_, ms, _) = jax.jit(lambda p, s, ms, b: run.method.loss(run.model.apply, p, s, ms, b, {}, jax.random.PRNGKey(0)))(
      state.params, state.batch_stats, state.method_state, batch)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7),
               ms["key_params"], state.params)
  assert int(ms["ptr"]) == cfg.train.batch_size


def test_moco_gradient_reaches_only_the_query_encoder():
  cfg, run, state = _setup()
  batch = _batch(cfg, cfg.train.batch_size, len(run.data.train.labels))
  ms = dict(state.method_state, key_params=state.params, key_batch_stats=state.batch_stats, initialized=jnp.int32(1))
  g = jax.jit(jax.grad(lambda p: run.method.loss(run.model.apply, p, state.batch_stats, ms, batch, {},
                                                 jax.random.PRNGKey(0))[0]))(state.params)
  assert float(jnp.abs(g["proj"]["Dense_1"]["kernel"]).sum()) > 0
  np.testing.assert_array_equal(np.asarray(g["fc"]["kernel"]), 0.0)  # the classifier is unused in pre-training


@pytest.mark.slow
@pytest.mark.parametrize("phase2", [0, 1])
def test_label_queues_are_read_before_the_batch_is_enqueued(phase2):
  cfg, run, state = _setup("sbcl")
  method, apply = run.method, run.model.apply
  B, K = cfg.train.batch_size, cfg.moco.queue_size
  n = len(run.data.train.labels)
  batch = _batch(cfg, B, n, seed=3)
  rng = np.random.default_rng(4)
  sub_labels = rng.integers(0, 40, size=n).astype(np.int32)
  ptr = 2 * B
  ql = rng.integers(-1, 10, size=K).astype(np.int32)
  qs = rng.integers(-1, 40, size=K).astype(np.int32)
  # make the batch's own labels absent from the rows it will overwrite, so old and new queues differ there
  ql[ptr:ptr + B] = -1
  qs[ptr:ptr + B] = -1
  ms = dict(state.method_state, key_params=state.params, key_batch_stats=state.batch_stats, initialized=jnp.int32(1),
            ptr=jnp.int32(ptr), queue_labels=jnp.asarray(ql), queue_sub_labels=jnp.asarray(qs),
            sub_labels=jnp.asarray(sub_labels))
  key = jax.random.PRNGKey(9)
  hp = {"phase2": jnp.int32(phase2)}
  loss, (_, new_ms, _) = jax.jit(lambda ms, b, r: method.loss(apply, state.params, state.batch_stats, ms, b, hp, r))(
      ms, batch, key)
  k_shuffle, k_kcl = jax.random.split(key)
  q, k, _, _ = jax.jit(lambda ms, b: method.encode(apply, state.params, state.batch_stats, ms, b, k_shuffle))(ms, batch)
  logits = contrastive.infonce_logits(q, k, ms["queue"], 1.0)
  y = batch["label"]
  sub = jnp.asarray(sub_labels)[batch["index"]]
  new_ql = np.asarray(new_ms["queue_labels"])
  new_qs = np.asarray(new_ms["queue_sub_labels"])
  np.testing.assert_array_equal(new_ql[ptr:ptr + B], np.asarray(y))
  np.testing.assert_array_equal(new_qs[ptr:ptr + B], np.asarray(sub))
  np.testing.assert_array_equal(np.delete(new_ql, np.s_[ptr:ptr + B]), np.delete(ql, np.s_[ptr:ptr + B]))
  assert int(new_ms["ptr"]) == 3 * B
  if phase2:
    before = contrastive_queue.sbcl_queue_loss(logits, y, sub, jnp.asarray(ql), jnp.asarray(qs), 0.07, 0.12, 0.2)
    after = contrastive_queue.sbcl_queue_loss(logits, y, sub, jnp.asarray(new_ql), jnp.asarray(new_qs), 0.07, 0.12, 0.2)
  else:
    before = contrastive_queue.kcl_loss(logits, y, jnp.asarray(ql), k_kcl, 6, 0.07)
    after = contrastive_queue.kcl_loss(logits, y, jnp.asarray(new_ql), k_kcl, 6, 0.07)
  np.testing.assert_allclose(float(loss), float(before), rtol=1e-5)
  assert abs(float(before) - float(after)) > 1e-4


def _two_steps(cfg, num_devices):
  cfg = cfg.copy_and_resolve_references()
  cfg.mesh.num_devices = num_devices
  run = run_lib.setup(cfg)
  state = run_lib.create_state(run, cfg.seed)
  step = step_lib.make_train_step(run.method, run.model.apply, run.tx, run.schedule, run.mesh)
  hp = jax.device_put(run.method.epoch_hparams(0), step_lib.replicated(run.mesh))
  it = run.train_input.epoch(0)
  for _ in range(2):
    state, _ = step(state, step_lib.to_global(next(it), run.mesh), hp)
  return jax.device_get(state)


@pytest.mark.multidevice
@pytest.mark.slow
@pytest.mark.parametrize("stage", ["moco"])
def test_moco_step_is_the_same_on_1_and_8_devices(stage):
  cfg = cfg_of(stage)
  if stage == "sbcl":
    cfg.sbcl_moco.phase2_epoch = 0  # the SBCL queue loss from the first step (subclasses −1 until clustered)
    cfg.optim.schedule = "moco_cosine"
  one, eight = _two_steps(cfg, 1), _two_steps(cfg, 8)
  close = lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6)  # noqa
  jax.tree.map(close, one.params, eight.params)
  jax.tree.map(close, one.batch_stats, eight.batch_stats)
  jax.tree.map(close, one.method_state["key_params"], eight.method_state["key_params"])
  close(one.method_state["queue"], eight.method_state["queue"])
  assert int(one.method_state["ptr"]) == int(eight.method_state["ptr"]) == 2 * cfg.train.batch_size
  if stage == "sbcl":
    np.testing.assert_array_equal(one.method_state["queue_labels"], eight.method_state["queue_labels"])


def _final_state(workdir, cfg):
  run = run_lib.setup(cfg)
  ck = Checkpointer(str(workdir), 2)
  state, _ = ck.restore_latest(run_lib.create_state(run, cfg.seed))
  ck.close()
  return jax.device_get(state)


@pytest.mark.slow
@pytest.mark.parametrize("per_call", [1, 4])
def test_resume_restores_the_queue_exactly(tmp_path, per_call):
  """SBCL-MoCo (the MoCo queue plus label queues and subclass labels), 2 epochs: KCL, then the SBCL queue loss after
  the clustering at epoch 1; stopped inside epoch 1 and resumed, it ends bit-identical to the uninterrupted run
  (queues, pointer, key encoder, subclass labels: the clustering is not repeated on resume). Also with 4 steps per
  compiled call (shuffle-BN groups and the queues inside the scan; the stop splits a group)."""
  cfg = cfg_of("sbcl", **{"train.steps_per_call": per_call})
  res = loop.train_and_evaluate(cfg, str(tmp_path / "full"))
  spe = run_lib.setup(cfg).train_input.steps_per_epoch
  assert res["steps"] == 2 * spe
  with pytest.raises(loop.Preempted):
    loop.train_and_evaluate(cfg, str(tmp_path / "part"), stop_at_step=spe + 3)
  mid = _final_state(tmp_path / "part", cfg)
  assert int(mid.step) == spe + 3 and int(mid.method_state["ptr"]) == ((spe + 3) * 64) % 512
  loop.train_and_evaluate(cfg, str(tmp_path / "part"))
  full, part = _final_state(tmp_path / "full", cfg), _final_state(tmp_path / "part", cfg)
  assert int(full.step) == int(part.step) == 2 * spe
  for name in ("queue", "ptr", "key_params", "key_batch_stats", "queue_labels", "queue_sub_labels", "sub_labels"):
    jax.tree.map(np.testing.assert_array_equal, full.method_state[name], part.method_state[name])
  jax.tree.map(np.testing.assert_array_equal, full.params, part.params)
  jax.tree.map(np.testing.assert_array_equal, full.opt_state, part.opt_state)
  ms = full.method_state
  assert (np.asarray(ms["sub_labels"]) >= 0).all()
  # the 9 phase-2 steps (576 keys > K = 512) overwrote the queue with real classes and subclasses
  assert (np.asarray(ms["queue_sub_labels"]) >= 0).all() and (np.asarray(ms["queue_labels"]) >= 0).all()


@pytest.mark.slow
def test_phase_two_resets_momentum_once_and_reclusters(tmp_path):
  cfg = cfg_of("sbcl", **{"train.epochs": 4, "sbcl_moco.phase2_epoch": 2, "sbcl_moco.step": 1})
  run = run_lib.setup(cfg)
  spe = run.train_input.steps_per_epoch
  state = run_lib.create_state(run, cfg.seed)
  traced = jax.tree.map(jnp.ones_like, state.opt_state)
  state = state.replace(opt_state=traced, step=jnp.int32(2 * spe))
  out = run.method.on_epoch_start(2, state, run)
  is_trace = lambda s: isinstance(s, optax.TraceState)  # noqa: E731
  traces = [s.trace for s in jax.tree.leaves(out.opt_state, is_leaf=is_trace) if is_trace(s)]
  assert traces and all(float(jnp.abs(t).sum()) == 0 for tr in traces for t in jax.tree.leaves(tr))
  labels = np.asarray(out.method_state["sub_labels"])
  sub_class, offsets = clustering.subclass_layout(run.method.sub_counts)
  train_labels = run.data.train.labels
  assert np.all(labels >= 0) and np.all(sub_class[labels] == train_labels)
  assert len(np.unique(labels)) > run.data.num_classes  # classes with M_c > 1 were split
  # resumed inside the epoch: nothing happens again (the reset and the clustering already took place)
  later = state.replace(step=jnp.int32(2 * spe + 1))
  again = run.method.on_epoch_start(2, later, run)
  jax.tree.map(np.testing.assert_array_equal, again.opt_state, later.opt_state)
  np.testing.assert_array_equal(np.asarray(again.method_state["sub_labels"]), -1)
  # phase 1 epochs do not cluster
  early = run.method.on_epoch_start(1, state.replace(step=jnp.int32(spe)), run)
  np.testing.assert_array_equal(np.asarray(early.method_state["sub_labels"]), -1)


def test_schedules_and_momentum_reset():
  t = [sbcl_schedules.sbcl_moco_cosine(e, 0.1, 400) for e in range(400)]
  assert t[0] == t[200] == pytest.approx(0.1) and t[100] == pytest.approx(0.05) and t[199] == t[399] > 0
  assert t[199] == pytest.approx(0.1 * 0.5 * (1 + np.cos(np.pi * 199 / 200)))
  s = [sbcl_schedules.sbcl_imagenet_linear_step(e, 10.0) for e in range(40)]
  assert s[18] == 10.0 and s[19] == pytest.approx(1.0) and s[28] == pytest.approx(1.0) and s[29] == pytest.approx(0.1)
  cfg = cfg_of("sbcl")
  with pytest.raises(config_lib.ConfigError, match="twice phase2_epoch"):
    config_lib.validate(cfg_of("sbcl", **{"train.epochs": 30}))
  config_lib.validate(cfg)


def test_bad_moco_configs_fail_early():
  with pytest.raises(config_lib.ConfigError, match="multiple of the global batch"):
    config_lib.validate(cfg_of("moco", **{"moco.queue_size": 500}))
  with pytest.raises(config_lib.ConfigError, match="bn_groups"):
    config_lib.validate(cfg_of("moco", **{"moco.bn_groups": 5}))
  with pytest.raises(config_lib.ConfigError, match="drop_remainder"):
    config_lib.validate(cfg_of("moco", **{"data.drop_remainder": False}))
  c = cfg_of("moco")
  del c["moco"]
  with pytest.raises(config_lib.ConfigError, match="needs config.moco"):
    config_lib.validate(c)


@pytest.mark.slow
@pytest.mark.tensorflow
def test_sbcl_moco_on_file_backed_split_files(tmp_path):
  """Split files + JPEGs of random sizes (the ImageNet-LT/Places-LT source, here Places-LT's 365 classes to keep
  the generated tree small): aug-plus views from decoded images, and the
  clustering pass reading and decoding the files itself (phase 2 from epoch 0: clustering before the first step
  uses the query encoder, the key encoder not being copied yet)."""
  from tests import jpeg_tree

  from ltjax.data import large
  spec = large.SPECS["places_lt"]
  counts = [3, 2] + [1] * (spec.num_classes - 2)  # every class present: M_c >= 1 needs n_c >= 1
  jpeg_tree.make_tree(str(tmp_path), counts, 1, lists=(spec.train_list, spec.test_list), size_range=(10, 20))
  cfg = cfg_of("sbcl", **{"data.name": "places_lt", "data.root": str(tmp_path), "data.imb_type": "none",
                          "data.label_remap": "none", "moco.crop_size": 16, "moco.flip": True,
                          "sbcl_moco.phase2_epoch": 0, "optim.schedule": "moco_cosine", "train.epochs": 1,
                          "train.eval_batch_size": 200})
  run = run_lib.setup(cfg)
  batch = next(run.train_input.epoch(0))
  assert batch["image"].shape == batch["image_k"].shape == (64, 16, 16, 3)
  assert not np.allclose(batch["image"], batch["image_k"])
  state = run_lib.create_state(run, cfg.seed)
  feats = run.method.key_features(run, state, 0)
  assert feats.shape == (sum(counts), 32)
  np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(feats, run.method.key_features(run, state, 0))  # views seeded by (seed, epoch, i)
  assert not np.allclose(feats, run.method.key_features(run, state, 5))
  out = run.method.on_epoch_start(0, state, run)
  # M_c = ⌊n_c / max(n_min = 1, 20)⌋ = 1 for every class: the subclass id is the class id
  np.testing.assert_array_equal(np.asarray(out.method_state["sub_labels"]), run.data.train.labels)
