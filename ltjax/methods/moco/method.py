"""MoCo v2 self-supervised pre-training (imbalanced-semi-self `pretrain_moco.py` of imbalanced-semi-self).

Labels are unused. Per step, with B the global batch, G BatchNorm groups, K the queue size, T the temperature:

  θ_k ← m·θ_k + (1 − m)·θ_q                        (m = 0.999; before the keys; θ_k := θ_q at the first step)
  q = normalize(proj(f_q(x_q)))                     query view, BN statistics per group of B/G (one "GPU" each)
  k = normalize(proj(f_k(x_k[π])))[π⁻¹]            key view, shuffle-BN (ltjax/methods/moco/core.py), no gradient
  L = mean_i −log softmax([q_i·k_i, q_i·queue]/T)_0 (T = 0.2)
  queue[ptr : ptr + B] ← k,  ptr ← (ptr + B) mod K  (K = 65,536, K % B == 0)

Method state (checkpointed, so a resumed run continues with the same queue): `key_params` and `key_batch_stats`
(the momentum encoder, projection head included), `queue` [K, d], `ptr` int32, `initialized` int32 (0 until the
first step copies the query encoder into the key encoder; copying in the step rather than at construction keeps
the copy right when `init.workdir` loads pre-trained query weights).

The projection head is the model's `projection` option (`config.moco.projection`, MoCo v2's MLP: (2048, 128) for
ResNet-50 = Linear(2048, 2048) → ReLU → Linear(2048, 128)); the classifier `fc` that every ltjax model carries is
unused here (no gradient) and dropped by later stages (`init.exclude = ('^fc/',)`; `proj/` is ignored by the
strict loader because the fine-tuning model has no projection).

Training views come from `ltjax.data.contrastive_views.moco_two_views` (aug-plus, TF, host data path) or
`ltjax.data.device_augment.moco_view` (the same in JAX, device data path), keys 'image' (query) and 'image_k'.
"""

from __future__ import annotations

from typing import Any, Dict

import jax
import jax.numpy as jnp
import ml_collections

from ltjax.data import contrastive_views
from ltjax.errors import ConfigError
from ltjax.losses import contrastive
from ltjax.methods.base import Method
from ltjax.methods.moco import core as moco_core


def moco_defaults() -> ml_collections.ConfigDict:
  """`config.moco`: the MoCo v2 machinery (shared by `moco` and `sbcl_moco`). Defaults = SS `pretrain_moco.py`."""
  c = ml_collections.ConfigDict()
  c.projection = (2048, 128)  # MLP head widths; the last is the embedding dim d (--moco-dim 128)
  c.queue_size = 65536  # K (--moco-k); must be a multiple of the global batch
  c.momentum = 0.999  # m (--moco-m)
  c.temperature = 0.2  # T (--moco-t) of the InfoNCE loss (SBCL uses its own section's temperature)
  # BatchNorm groups G (the number of DDP GPUs upstream: each normalises over B/G images). Shuffle-BN draws the
  # keys' groups from a random permutation. Independent of the device count. 1 = one global BatchNorm.
  c.bn_groups = 8
  c.crop_size = 224  # RandomResizedCrop output side; 0 = the dataset's own image size (CIFAR, digits)
  c.crop_scale = (0.2, 1.0)
  c.jitter = (0.4, 0.4, 0.4, 0.1)  # ColorJitter(brightness, contrast, saturation, hue)
  c.jitter_p = 0.8
  c.gray_p = 0.2
  c.blur_sigma = (0.1, 2.0)
  c.blur_p = 0.5
  c.flip = True
  return c


def validate_moco(cfg) -> None:
  if "moco" not in cfg:
    raise ConfigError(f"method '{cfg.method}' needs config.moco: add c.moco = ltjax.methods.moco.moco_defaults()")
  m = cfg.moco
  B = cfg.train.batch_size
  if len(tuple(m.projection)) < 1:
    raise ConfigError("config.moco.projection must hold the projection MLP widths, e.g. (2048, 128) for ResNet-50 "
                      "or (64, 128) for a CIFAR ResNet")
  if m.queue_size < B or m.queue_size % B:
    raise ConfigError(f"config.moco.queue_size = {m.queue_size} must be a positive multiple of the global batch "
                      f"config.train.batch_size = {B} (each step overwrites B consecutive queue entries; upstream "
                      "asserts K % B == 0): e.g. 65536 with batch 128 or 256")
  if m.bn_groups < 1 or B % m.bn_groups:
    raise ConfigError(f"config.moco.bn_groups = {m.bn_groups} must be >= 1 and divide the global batch {B}")
  if not 0.0 <= m.momentum < 1.0:
    raise ConfigError(f"config.moco.momentum = {m.momentum} must lie in [0, 1)")
  if m.temperature <= 0:
    raise ConfigError("config.moco.temperature must be > 0")
  if m.crop_size < 0:
    raise ConfigError("config.moco.crop_size must be >= 0 (0 = the dataset's image size)")
  if not cfg.data.drop_remainder:
    raise ConfigError("MoCo drops the last partial batch (drop_last=True upstream, and a smaller batch would break "
                      "K % B == 0): set config.data.drop_remainder = True")


def head_kind(cfg) -> str:
  if cfg.model.head != "auto":
    return cfg.model.head
  return "cosine" if cfg.loss.name == "ldam" else "linear"


class MoCo(Method):
  name = "moco"

  @staticmethod
  def config_defaults():
    return moco_defaults()

  @staticmethod
  def validate(cfg) -> None:
    validate_moco(cfg)

  def __init__(self, cfg, data, stats):
    super().__init__(cfg, data, stats)
    self.m = cfg.moco
    self.dim = int(tuple(self.m.projection)[-1])
    self._num_classes = int(data.num_classes)
    self._view_kw = self.view_fn(data)
    channels = 3 if data.train.images is None else int(data.train.images.shape[-1])  # file-backed: decoded RGB
    size = self._view_kw["size"]
    self._image_shape = (size, size, channels)  # the key encoder's input, for init_state

  # ---- host side ---------------------------------------------------------------------------------------------

  def model_kwargs(self) -> Dict[str, Any]:
    return {"projection": tuple(int(d) for d in self.m.projection)}

  def view_fn(self, data):
    m = self.m
    images = data.train.images
    if not m.crop_size and images is None:
      raise ConfigError("config.moco.crop_size = 0 (the image size) needs in-memory images; file-backed datasets "
                        "(ImageNet-LT, iNaturalist) need a crop size, e.g. 224")
    size = int(m.crop_size) or int(images.shape[1])
    return dict(size=size, mean=data.mean, std=data.std, scale=tuple(m.crop_scale), jitter=tuple(m.jitter),
                jitter_p=float(m.jitter_p), gray_p=float(m.gray_p), blur_sigma=tuple(m.blur_sigma),
                blur_p=float(m.blur_p), flip=bool(m.flip))

  def device_view(self):
    """Per-image JAX aug-plus view (`device_augment.moco_view`)."""
    from ltjax.data import device_augment
    kw = self._view_kw
    return lambda image, key: device_augment.moco_view(image, key, **kw)

  def device_augment(self):
    from ltjax.data import device_augment
    return device_augment.two_views(self.device_view(), ("image", "image_k"))

  def train_augment(self):
    return contrastive_views.moco_two_views(**self._view_kw)

  def _variable_shapes(self):
    from ltjax.models import create_model
    model = create_model(self.cfg.model.name, num_classes=self._num_classes, head=head_kind(self.cfg),
                         dtype=self.cfg.model.dtype, **self.model_kwargs())
    x = jnp.zeros((1,) + self._image_shape, jnp.float32)
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))

  def init_state(self, rng):
    shapes = self._variable_shapes()
    zeros = lambda t: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), t)  # noqa: E731
    return {
        "key_params": zeros(shapes["params"]),
        "key_batch_stats": zeros(shapes.get("batch_stats", {})),
        "queue": moco_core.init_queue(rng, int(self.m.queue_size), self.dim),
        "ptr": jnp.zeros([], jnp.int32),
        "initialized": jnp.zeros([], jnp.int32),
    }

  # ---- inside jit --------------------------------------------------------------------------------------------

  def encode(self, apply_fn, params, batch_stats, ms, batch, rng):
    """(q [B,d], k [B,d] (unit rows, k without gradient), new query batch_stats, new key-encoder state)."""
    first = ms["initialized"] == 0
    pick = lambda k, q: jnp.where(first, jax.lax.stop_gradient(q), k)  # noqa: E731
    key_params = jax.tree.map(pick, ms["key_params"], params)
    key_stats = jax.tree.map(pick, ms["key_batch_stats"], batch_stats)
    key_params = moco_core.momentum_update(key_params, params, float(self.m.momentum))
    G = int(self.m.bn_groups)
    out_q, new_stats = moco_core.grouped_apply(apply_fn, {"params": params, "batch_stats": batch_stats}, batch["image"],
                                          G)
    q = contrastive.l2_normalize(out_q["projection"])
    out_k, new_key_stats = moco_core.shuffled_apply(apply_fn, {"params": key_params, "batch_stats": key_stats},
                                               batch["image_k"], G, rng)
    k = jax.lax.stop_gradient(contrastive.l2_normalize(out_k["projection"]))
    key_state = {"key_params": key_params, "key_batch_stats": jax.lax.stop_gradient(new_key_stats)}
    return q, k, new_stats, key_state

  def loss(self, apply_fn, params, batch_stats, method_state, batch, hparams, rng):
    q, k, new_stats, key_state = self.encode(apply_fn, params, batch_stats, method_state, batch, rng)
    logits = contrastive.infonce_logits(q, k, method_state["queue"], float(self.m.temperature))
    loss = -jnp.mean(jax.nn.log_softmax(logits, axis=1)[:, 0])
    queue, ptr = moco_core.enqueue(method_state["queue"], method_state["ptr"], k)
    new_state = dict(key_state, queue=queue, ptr=ptr, initialized=jnp.ones([], jnp.int32))
    metrics = {"accuracy": jnp.mean(jnp.argmax(logits, axis=1) == 0)}  # upstream acc1 of the pretext task
    return loss, (new_stats, new_state, metrics)
