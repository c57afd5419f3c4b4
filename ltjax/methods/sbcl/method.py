"""SBCL stage 1 (CIFAR, in-batch contrast): subclass-balancing contrastive learning (SBCL (Hou et al., ICCV 2023;
official code)).

Per step, B images, two views each (SBCL's CIFAR transforms), anchors a = v·B + i (view 1 of all images, then view 2):
  z = normalize(proj(encoder(view)))          [2B, d], d = projection[-1] = 128 (SupConResNet, SBCL `SupConResNet`)
  epochs e < warm_epochs (10):  L = supcon_loss(z, y; T = 0.1, T_b = 0.1)                         (SBCL `SupConLoss`)
  later, loss_mode 'rank':      L = sbcl_loss(z, y, k, τ_y; τ = 0.1, τ_b = 0.07, γ = 0.25)         (SBCL
  `SupConLoss_rank`)
         loss_mode 'ccl':       L = sbcl_ccl_loss(z, y, k; τ = 0.1, τ_b = 0.07, γ = 0.25, T = 0.1)  (SBCL
         `SupConLoss_ccl`)
with y the class and k = sub_labels[index] the global subclass of each image (ltjax/methods/sbcl/clustering.py holds the
losses).

Clustering (`on_epoch_start`, SBCL `SimCLR/main.py::cluster`; SBCL `SimCLR/main.py`), at every epoch e ≥ warm_epochs
with e % step == 0 (and at the
first epoch ≥ warm_epochs if `step` does not divide it), before the epoch trains: the model in eval mode (BN
running statistics) embeds the FIRST augmented view of every training image (the stage-1 training augmentation,
fresh draws seeded by (seed, epoch, index); `cluster_view='clean'` uses un-augmented images instead), through the
projection head, L2-normalised; the features are sharded over the mesh and every class c is split into M_c
subclasses by cosine k-means (`ltjax.methods.sbcl.clustering.cluster`, M_c by rule SBCL `SimCLR/main.py`), and the class
temperatures τ_c (SBCL `SimCLR/main.py`) are
recomputed from the same features. Subclass labels, temperatures and the epoch of the last clustering are the
method state, so they are checkpointed; a run resumed in the middle of an epoch keeps the epoch's subclasses.

BatchNorm: the README trains on 2 GPUs with DataParallel, which splits [view 1; view 2] in halves, so each replica's
BN normalises one view, and the running statistics kept are those of replica 0 (view 1). `per_view_bn=True`
(default) reproduces that: the two views go through the network as two batches and the view-1 statistics are kept;
False normalises both views together (a single-GPU run).

Stage 2 (linear/cosine classifier on the frozen encoder) is the `supervised` method with `init.workdir` pointing
at this run: see configs/sbcl_cifar.py.
"""

from __future__ import annotations

import logging
from typing import Dict

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ltjax.errors import ConfigError
from ltjax.losses import contrastive
from ltjax.methods.base import Method
from ltjax.methods.sbcl import clustering

log = logging.getLogger("ltjax")

LOSS_MODES = ("rank", "ccl")
CLUSTER_VIEWS = ("augmented", "clean")
# Salt of the clustering augmentation stream (distinct from the training stream [seed, epoch]).
_CLUSTER_SEED_SALT = 0x5BC1


class SBCL(Method):
  name = "sbcl"

  @staticmethod
  def config_defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.loss_mode = "rank"  # rank: SupConLoss_rank with class temperatures (--train_rule Rank) | ccl: SupConLoss_ccl
    c.projection = (64, 128)  # SupConResNet head Linear(64,64) → ReLU → Linear(64, feat_dim = 128)
    c.warm_epochs = 10  # epochs of class-level SupCon before the first clustering
    c.step = 10  # re-cluster every `step` epochs (--step; the README suggests more for CIFAR-10, no value given)
    c.cluster = 10  # L of M_c = ⌊n_c / max(n_min, L)⌋ (--cluster)
    c.num_subclasses = ()  # () = the rule above; or M_c for every class explicitly (1 <= M_c <= n_c)
    # kmeans | balanced (the official balanced k-means crashes, a known issue of the SBCL code: refused)
    c.cluster_method = "kmeans"
    c.cluster_view = "augmented"  # augmented: first view of the training augmentation (official) | clean
    c.cluster_batch_size = 0  # feature-extraction batch; 0 = train.eval_batch_size
    c.kmeans_tol = 1e-3
    c.kmeans_iter_limit = 35
    c.temperature = 0.1  # --temperature: warm-up SupCon T and the scale T of the class temperatures
    c.warm_base_temperature = 0.1  # T_b of the warm-up SupCon
    c.sbcl_temperature = 0.1  # τ of the bi-granularity loss (constructor default; the script passes none)
    c.sbcl_base_temperature = 0.07  # τ_b
    c.gamma = 0.25  # weight of the subclass-vs-class term
    c.ccl_class_temperature = 0.1  # loss_mode 'ccl': temperature of the class-level SupCon term
    c.per_view_bn = True  # BN over each view separately, view-1 running statistics (2-GPU DataParallel)
    c.crop_scale = (0.2, 1.0)  # RandomResizedCrop scale range
    return c

  @staticmethod
  def validate(cfg) -> None:
    s = cfg.sbcl
    if s.loss_mode not in LOSS_MODES:
      raise ConfigError(f"config.sbcl.loss_mode = {s.loss_mode!r} is not one of {list(LOSS_MODES)}")
    if s.cluster_view not in CLUSTER_VIEWS:
      raise ConfigError(f"config.sbcl.cluster_view = {s.cluster_view!r} is not one of {list(CLUSTER_VIEWS)}")
    if s.cluster_method == "balanced":
      raise ConfigError("config.sbcl.cluster_method = 'balanced': the official balanced k-means is unusable (it is "
                        "called with an argument name it does not accept and raises TypeError), "
                        "and plain k-means is what the published runs used: set cluster_method = 'kmeans'")
    if s.cluster_method != "kmeans":
      raise ConfigError(f"config.sbcl.cluster_method = {s.cluster_method!r} is not one of ['kmeans']")
    if len(tuple(s.projection)) < 1 or min(tuple(s.projection)) < 1:
      raise ConfigError(f"config.sbcl.projection = {tuple(s.projection)} needs >= 1 positive layer width "
                        "(the contrastive loss works on the projection output)")
    for name in ("step", "cluster", "kmeans_iter_limit"):
      if s[name] < 1:
        raise ConfigError(f"config.sbcl.{name} = {s[name]} must be >= 1")
    if s.warm_epochs < 0 or s.cluster_batch_size < 0:
      raise ConfigError("config.sbcl.warm_epochs and cluster_batch_size must be >= 0")
    for name in ("temperature", "warm_base_temperature", "sbcl_temperature", "sbcl_base_temperature",
                 "ccl_class_temperature"):
      if s[name] <= 0:
        raise ConfigError(f"config.sbcl.{name} = {s[name]} must be > 0")
    lo, hi = tuple(s.crop_scale)
    if not 0 < lo <= hi <= 1:
      raise ConfigError(f"config.sbcl.crop_scale = {tuple(s.crop_scale)} must satisfy 0 < lo <= hi <= 1")

  def __init__(self, cfg, data, stats):
    super().__init__(cfg, data, stats)
    s = cfg.sbcl
    counts = np.asarray(stats.counts)
    if tuple(s.num_subclasses):
      m = np.asarray(tuple(s.num_subclasses), np.int64)
      try:
        clustering.check_subclass_counts(counts, m)
      except ValueError as e:
        raise ConfigError(f"config.sbcl.num_subclasses: {e}; give one entry 1 <= M_c <= n_c per class (training "
                          f"counts {counts.tolist()}), or () for the rule M_c = ⌊n_c / max(n_min, L)⌋") from None
    else:
      m = clustering.subclass_counts(counts, s.cluster)
    self.sub_counts = tuple(int(v) for v in m)
    self.scfg = s

  def model_kwargs(self) -> dict:
    return {"projection": tuple(int(v) for v in self.scfg.projection)}

  # ------------------------------------------------------------------ state, schedule

  def init_state(self, rng):
    del rng
    return {"sub_labels": jnp.full((len(self.train_labels),), -1, jnp.int32),
            "class_temps": jnp.full((self.stats.num_classes,), self.scfg.temperature, jnp.float32),
            "cluster_epoch": jnp.asarray(-1, jnp.int32)}

  def epoch_hparams(self, epoch: int) -> Dict[str, np.ndarray]:
    return {"phase": np.asarray(1 if epoch >= self.scfg.warm_epochs else 0, np.int32)}

  def clusters_at(self, epoch: int, last_clustered: int) -> bool:
    """Whether epoch `epoch` starts with a (re-)clustering, given the epoch of the last one (−1: none yet)."""
    s = self.scfg
    return epoch >= s.warm_epochs and (epoch % s.step == 0 or last_clustered < 0)

  # ------------------------------------------------------------------ data

  def _view_fn(self, data):
    from ltjax.data import contrastive_views
    kw = self._view_kw(data)

    def view(image, seed):
      return contrastive_views.simclr_view(image, seed, **kw)

    return view

  def _view_kw(self, data) -> dict:
    return dict(size=int(data.train.images.shape[1]), mean=tuple(data.mean), std=tuple(data.std),
                flip=bool(data.flip), scale=tuple(self.scfg.crop_scale))

  def _device_view(self, data):
    """Per-image JAX SupCon view (`device_augment.supcon_view`)."""
    from ltjax.data import device_augment
    kw = self._view_kw(data)
    return lambda image, key: device_augment.supcon_view(image, key, **kw)

  def device_augment(self):
    from ltjax.data import device_augment
    return device_augment.two_views(self._device_view(self.data), ("view1", "view2"))

  def train_augment(self):
    import tensorflow as tf
    view = self._view_fn(self.data)

    def fn(image, seed):
      s1, s2 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
      return {"view1": view(image, s1), "view2": view(image, s2)}

    return fn

  # ------------------------------------------------------------------ clustering

  def cluster_features(self, run, state, epoch: int) -> np.ndarray:
    """Normalised projections [N, d] (float32, dataset order) of the first augmented view (or, with
    `cluster_view = 'clean'`, the un-augmented image) of every training image, the model in eval mode; every process
    gets all of them (`run.map_split`: on the devices with the JAX view, else through tf.data with the TF view).
    The view of image i is seeded by (seed + 0x5BC1, epoch, i)."""
    apply = run.model.apply

    def embed(st, x):
      out = apply({"params": st.params, "batch_stats": st.batch_stats}, x, train=False)
      return {"z": contrastive.l2_normalize(out["projection"].astype(jnp.float32))}

    views = {}
    if self.scfg.cluster_view == "augmented":
      one = self._device_view(run.data)
      views = dict(device_view=lambda images, keys: jax.vmap(one)(images, keys), host_view=self._view_fn(run.data))
    return run.map_split("train", embed, state, name=f"sbcl_cluster/{self.scfg.cluster_view}",
                         seed=int(run.cfg.seed) + _CLUSTER_SEED_SALT, epoch=epoch,
                         batch_size=self.scfg.cluster_batch_size or None, **views)["z"]

  def recluster(self, features: np.ndarray, epoch: int, mesh=None) -> Dict[str, np.ndarray]:
    """Subclass labels [N] int32 and class temperatures [C] float32 from features [N, d] (dataset order)."""
    s = self.scfg
    key = jax.random.fold_in(jax.random.PRNGKey(int(self.cfg.seed) + _CLUSTER_SEED_SALT), int(epoch))
    labels = np.asarray(self.train_labels, np.int32)
    sub = clustering.cluster(features, labels, self.sub_counts, key, mesh=mesh, tol=float(s.kmeans_tol),
                       iter_limit=int(s.kmeans_iter_limit))
    if s.loss_mode == "rank":
      temps = np.asarray(clustering.class_temperatures(jnp.asarray(features), jnp.asarray(labels), self.sub_counts,
                                                 self.stats.num_classes, float(s.temperature)))
    else:
      temps = np.full((self.stats.num_classes,), s.temperature, np.float32)
    return {"sub_labels": sub.astype(np.int32), "class_temps": temps.astype(np.float32)}

  def on_epoch_start(self, epoch, state, run):
    last = int(jax.device_get(state.method_state["cluster_epoch"]))
    if last == epoch or not self.clusters_at(epoch, last):
      return state  # not a clustering epoch, or resumed inside an epoch whose subclasses are already in the state
    import time

    from ltjax.train import step as step_lib
    t0 = time.perf_counter()
    feats = self.cluster_features(run, state, epoch)
    t1 = time.perf_counter()
    new = self.recluster(feats, epoch, run.mesh)
    new["cluster_epoch"] = np.asarray(epoch, np.int32)
    log.info("epoch %d: re-clustered %d classes into %d subclasses (features %.1fs, k-means %.1fs)", epoch,
             len(self.sub_counts), sum(self.sub_counts), t1 - t0, time.perf_counter() - t1)
    ms = jax.device_put({k: jnp.asarray(v) for k, v in new.items()}, step_lib.replicated(run.mesh))
    return state.replace(method_state=ms)

  # ------------------------------------------------------------------ loss

  def embed_views(self, apply_fn, params, batch_stats, v1, v2):
    """(z [2B, d] unit rows: view 1 then view 2, new batch_stats)."""
    variables = {"params": params, "batch_stats": batch_stats}
    if self.scfg.per_view_bn:
      o1, nv = apply_fn(variables, v1, train=True, mutable=["batch_stats"])
      o2, _ = apply_fn(variables, v2, train=True, mutable=["batch_stats"])
      p = jnp.concatenate([o1["projection"], o2["projection"]])
    else:
      o, nv = apply_fn(variables, jnp.concatenate([v1, v2]), train=True, mutable=["batch_stats"])
      p = o["projection"]
    return contrastive.l2_normalize(p.astype(jnp.float32)), nv["batch_stats"]

  def contrastive_loss(self, z, y, k, class_temps, phase):
    """Warm-up SupCon when phase == 0, else the bi-granularity loss of `loss_mode` (scalar)."""
    s = self.scfg

    def warm(z):
      return contrastive.supcon_loss(z, y, s.temperature, s.warm_base_temperature)

    def bigran(z):
      if s.loss_mode == "rank":
        return contrastive.sbcl_loss(z, y, k, class_temps, s.sbcl_temperature, s.sbcl_base_temperature, s.gamma)
      return contrastive.sbcl_ccl_loss(z, y, k, s.sbcl_temperature, s.sbcl_base_temperature, s.gamma,
                                s.ccl_class_temperature)

    return jax.lax.cond(phase > 0, bigran, warm, z)

  def loss(self, apply_fn, params, batch_stats, method_state, batch, hparams, rng):
    del rng
    z, new_bs = self.embed_views(apply_fn, params, batch_stats, batch["view1"], batch["view2"])
    y = batch["label"]
    k = method_state["sub_labels"][batch["index"]]
    loss = self.contrastive_loss(z, y, k, method_state["class_temps"], hparams["phase"])
    metrics = {"phase": hparams["phase"].astype(jnp.float32)}
    return loss, (new_bs, method_state, metrics)
