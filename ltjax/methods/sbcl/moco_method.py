"""SBCL stage 1 on ImageNet-LT (SBCL's ImageNet-LT data (`moco/`), SBCL `moco/moco.py`, SBCL `SimCLR/main.py::cluster`,
SBCL `moco/loss.py`, SBCL `moco/main.py`; `moco/main.py`).

A MoCo v2 model (ltjax/methods/moco/method.py: momentum encoder, queue, shuffle-BN, aug-plus views) with two label
queues
(class and subclass, initialised −1, written FIFO with the keys). Logits are NOT divided by a temperature
(`infonce_logits(q, k, queue, 1)`); the losses divide (ltjax/losses/contrastive_queue.py), and they see the label queues
as they
were BEFORE the current batch is enqueued:

  epochs [0, P):        KCL, k = 6 same-class queue positives, T = 0.07                     (phase 1)
  epochs [P, E):        SBCL queue loss L1 + 0.2·L2, T = 0.07, ranking T_r = 0.12          (phase 2)
                        with per-class subclasses re-clustered at phase-2 epochs 0, 5, 10, …
  P = `sbcl_moco.phase2_epoch` (200), E = `train.epochs` (400).

The official code runs phase 2 as a second loop with a NEW SGD optimizer (momentum buffers reset) over the same
model (key encoder and queues carry over) and a cosine schedule that restarts at lr. Here both phases are one run:
at the first step of epoch P the momentum buffers are zeroed (`on_epoch_start`, idempotent under resume because it
acts only when the state sits exactly at that epoch's first step), and `optim.schedule = 'sbcl_moco_cosine'`
restarts the cosine (lr_e = lr·½(1 + cos(π·(e mod P)/P))). Key encoder, queues and subclass labels live in the
method state, so a resumed run continues exactly.

Clustering (SBCL `SimCLR/main.py::cluster`, ImageNet): features = normalised key-encoder projections (eval mode: the key
encoder's running
BN statistics) of the first augmented view of every training image, in split order; subclass counts
M_c = ⌊n_c / max(n_min, 20)⌋ (≥ 1); per-class cosine k-means `ltjax.methods.sbcl.clustering.cluster`, run ONCE, globally
(upstream
clusters independently on every GPU with unsynchronised RNGs, the SBCL code's known issues), seeded by (seed, epoch).
Global
subclass ids as `ltjax.methods.sbcl.clustering.subclass_layout`. Samples keep subclass −1 until the first clustering.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ltjax.data import contrastive_views
from ltjax.errors import ConfigError
from ltjax.losses import contrastive, contrastive_queue
from ltjax.methods.moco import MoCo, core as moco_core, validate_moco
from ltjax.methods.sbcl import clustering

CLUSTER_SEED = 0x5bc1


def reset_momentum(opt_state):
  """A NEW SGD optimizer's state for the same parameters: every `optax.trace` buffer zeroed; step counts kept (the
  LR schedule is a function of the global step)."""
  def f(s):
    if isinstance(s, optax.TraceState):
      return optax.TraceState(trace=jax.tree.map(jnp.zeros_like, s.trace))
    return s
  return jax.tree.map(f, opt_state, is_leaf=lambda s: isinstance(s, optax.TraceState))


class SbclMoco(MoCo):
  name = "sbcl_moco"

  @staticmethod
  def config_defaults():
    c = ml_collections.ConfigDict()
    c.temperature = 0.07  # --moco-t: KCL and the SBCL subclass term
    c.rank_temperature = 0.12  # fixed in SupConLoss_rank (class term)
    c.gamma = 0.2  # weight of the class term
    c.kcl_k = 6  # KCL same-class positives drawn from the queue; 0 = every same-class queue entry (official k=0)
    c.phase2_epoch = 200  # first epoch of phase 2 (SBCL loss, new optimizer, clustering); 0 = SBCL from the start
    c.cluster = 20  # L in M_c = ⌊n_c / max(n_min, L)⌋ (--cluster, moco/main.py)
    c.step = 5  # re-cluster every this many phase-2 epochs (--step)
    c.kmeans_tol = 1e-3
    c.kmeans_iters = 35
    return c

  @staticmethod
  def validate(cfg) -> None:
    validate_moco(cfg)
    if "sbcl_moco" not in cfg:
      raise ConfigError("method 'sbcl_moco' needs config.sbcl_moco: add "
                        "c.sbcl_moco = ltjax.methods.REGISTRY['sbcl_moco'].config_defaults()")
    s = cfg.sbcl_moco
    E = cfg.train.epochs
    if not 0 <= s.phase2_epoch <= E:
      raise ConfigError(f"config.sbcl_moco.phase2_epoch = {s.phase2_epoch} must lie in [0, train.epochs = {E}]")
    if cfg.optim.schedule == "sbcl_moco_cosine" and E != 2 * s.phase2_epoch:
      raise ConfigError(f"optim.schedule 'sbcl_moco_cosine' restarts at train.epochs/2 = {E / 2}, but "
                        f"sbcl_moco.phase2_epoch = {s.phase2_epoch}: make train.epochs twice phase2_epoch")
    if s.step < 1 or s.cluster < 1 or s.kcl_k < 0:
      raise ConfigError("config.sbcl_moco.step and cluster must be >= 1, kcl_k >= 0 (0: every same-class queue entry)")
    if s.temperature <= 0 or s.rank_temperature <= 0:
      raise ConfigError("config.sbcl_moco temperatures must be > 0")

  def __init__(self, cfg, data, stats):
    super().__init__(cfg, data, stats)
    self.s = cfg.sbcl_moco
    self.sub_counts = clustering.subclass_counts(stats.counts, int(self.s.cluster))
    self.num_train = int(len(self.train_labels))

  def init_state(self, rng):
    state = super().init_state(rng)
    K = int(self.m.queue_size)
    state.update(queue_labels=-jnp.ones((K,), jnp.int32), queue_sub_labels=-jnp.ones((K,), jnp.int32),
                 sub_labels=-jnp.ones((self.num_train,), jnp.int32))
    return state

  def epoch_hparams(self, epoch):
    return {"phase2": np.asarray(epoch >= int(self.s.phase2_epoch), np.int32)}

  def loss(self, apply_fn, params, batch_stats, method_state, batch, hparams, rng):
    ms = method_state
    k_shuffle, k_kcl = jax.random.split(rng)
    q, k, new_stats, key_state = self.encode(apply_fn, params, batch_stats, ms, batch, k_shuffle)
    logits = contrastive.infonce_logits(q, k, ms["queue"], 1.0)   # not divided by T (SBCL `moco/moco.py`)
    y = batch["label"].astype(jnp.int32)
    sub = ms["sub_labels"][batch["index"]]
    s = self.s
    kcl = lambda z: contrastive_queue.kcl_loss(z, y, ms["queue_labels"], k_kcl, int(s.kcl_k), float(s.temperature))  # noqa
    rank = lambda z: contrastive_queue.sbcl_queue_loss(z, y, sub, ms["queue_labels"], ms["queue_sub_labels"],  # noqa
                                                float(s.temperature), float(s.rank_temperature), float(s.gamma))
    loss = jax.lax.cond(hparams["phase2"] > 0, rank, kcl, logits)
    queue, ptr = moco_core.enqueue(ms["queue"], ms["ptr"], k)
    queue_labels, _ = moco_core.enqueue(ms["queue_labels"], ms["ptr"], y)
    queue_sub, _ = moco_core.enqueue(ms["queue_sub_labels"], ms["ptr"], sub)
    new_state = dict(ms, **key_state, queue=queue, ptr=ptr, queue_labels=queue_labels, queue_sub_labels=queue_sub,
                     initialized=jnp.ones([], jnp.int32))
    metrics = {"accuracy": jnp.mean(jnp.argmax(logits, axis=1) == 0)}
    return loss, (new_stats, new_state, metrics)

  # ---- host side: optimizer reset and clustering ---------------------------------------------------------------

  def on_epoch_start(self, epoch, state, run):
    spe = run.train_input.steps_per_epoch
    if int(jax.device_get(state.step)) != epoch * spe:  # resumed inside the epoch: all of this already happened
      return state
    from ltjax.train import step as step_lib
    P = int(self.s.phase2_epoch)
    if epoch == P and P > 0:
      state = state.replace(opt_state=jax.device_put(reset_momentum(state.opt_state), step_lib.replicated(run.mesh)))
    if epoch >= P and (epoch - P) % int(self.s.step) == 0:
      labels = self.recluster(run, state, epoch)
      ms = dict(state.method_state, sub_labels=jax.device_put(jnp.asarray(labels, jnp.int32),
                                                               step_lib.replicated(run.mesh)))
      state = state.replace(method_state=ms)
    return state

  def key_features(self, run, state, epoch: int) -> np.ndarray:
    """[N, d] normalised key-encoder projections (eval mode) of one aug-plus view of every training image, in split
    order; the view of image i is seeded by (seed, CLUSTER_SEED + epoch, i). `run.map_split`: on the devices with
    the JAX view, else through tf.data with the TF view (in-memory or file-backed)."""
    apply_fn = run.model.apply
    ms = state.method_state
    if int(jax.device_get(ms["initialized"])):
      key_ms = {"key_params": ms["key_params"], "key_batch_stats": ms["key_batch_stats"]}
    else:  # no step taken yet (phase2_epoch = 0): the key encoder is still to be copied from the query encoder
      key_ms = {"key_params": state.params, "key_batch_stats": state.batch_stats}

    def project(ms, x):
      out = apply_fn({"params": ms["key_params"], "batch_stats": ms["key_batch_stats"]}, x, train=False)
      return {"z": contrastive.l2_normalize(out["projection"])}

    one = self.device_view()
    host_view = functools.partial(contrastive_views.moco_v2_view, **self._view_kw)
    return run.map_split("train", project, key_ms, name="sbcl_moco_keys", seed=int(run.cfg.seed),
                         epoch=CLUSTER_SEED + epoch, device_view=lambda images, keys: jax.vmap(one)(images, keys),
                         host_view=host_view)["z"]

  def recluster(self, run, state, epoch: int) -> np.ndarray:
    """Global subclass label of every training example, int32 [N] (SBCL `SimCLR/main.py::cluster`)."""
    feats = self.key_features(run, state, epoch)
    key = jax.random.fold_in(jax.random.PRNGKey(run.cfg.seed), CLUSTER_SEED + epoch)
    return clustering.cluster(feats, run.data.train.labels, self.sub_counts, key, mesh=run.mesh,
                        tol=float(self.s.kmeans_tol), iter_limit=int(self.s.kmeans_iters))
