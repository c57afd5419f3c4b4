"""Image augmentation as JAX ops, for the device data path (`ltjax.data.device`): per example, batched with vmap,
run inside the compiled train step. The host path's TF ops (`ltjax.data.augment`, `contrastive_views`,
`randaugment`) define the operations and distributions; these compute the same functions of the same
parameters (tests/data/test_device_views.py compares them op by op) and draw the parameters from the same distributions
with JAX's stateless keys, so the random draws differ between the two paths but an example's augmentation is still a
pure function of (seed, epoch, position in the epoch).

An augmentation here is `fn(images uint8 [B, H, W, C], keys uint32 [B, 2]) -> {view name: float32 [B, ...]}`: one
raw PRNG key per example (`ltjax.data.device` derives it from the example's epoch and position). The per-image
functions below take one image [H, W, C] (static H, W: in-memory splits have one image size) and one key.

Standard recipe (Cao et al., LDAM-DRW, and every CIFAR code base since; torchvision
`RandomCrop(32, padding=4)`, `RandomHorizontalFlip()`, `ToTensor()`, `Normalize(mean, std)`):
  x ← pad(x, p) with zeros (on the uint8 image, as torchvision pads the PIL image with black pixels)
  (oy, ox) ~ U{0, …, 2p}²;  x ← x[oy:oy+H, ox:ox+W]
  f ~ Bernoulli(½);  x ← x[:, ::-1] if f
  x ← (x/255 − mean) / std   per channel
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Sequence

import jax
import jax.numpy as jnp

AugmentFn = Callable[[jax.Array, jax.Array], Dict[str, jax.Array]]


def normalize(images: jax.Array, mean: Sequence[float], std: Sequence[float]) -> jax.Array:
  """uint8 [..., C] → float32 [..., C]: (x/255 − mean)/std per channel (the host path's `augment.normalize`)."""
  x = images.astype(jnp.float32) / 255.0
  return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def crop_flip_one(image: jax.Array, key: jax.Array, *, padding: int, flip: bool) -> jax.Array:
  """One uint8 image [H, W, C]: random crop of the zero-padded image back to H×W (offsets uniform on
  {0, …, 2·padding} per axis), then a horizontal flip with probability ½."""
  k_crop, k_flip = jax.random.split(key)
  if padding > 0:
    p = padding
    padded = jnp.pad(image, ((p, p), (p, p), (0, 0)))
    off = jax.random.randint(k_crop, (2,), 0, 2 * p + 1)
    image = jax.lax.dynamic_slice(padded, (off[0], off[1], 0), image.shape)
  if flip:
    image = jnp.where(jax.random.bernoulli(k_flip), image[:, ::-1], image)
  return image


def crop_flip(images: jax.Array, keys: jax.Array, *, padding: int, flip: bool) -> jax.Array:
  """`crop_flip_one` over a batch: images uint8 [B, H, W, C], keys uint32 [B, 2] → uint8 [B, H, W, C]."""
  if padding <= 0 and not flip:
    return images
  return jax.vmap(lambda im, k: crop_flip_one(im, k, padding=padding, flip=flip))(images, keys)


def standard(mean: Sequence[float], std: Sequence[float], padding: int, flip: bool) -> AugmentFn:
  """The single-view recipe: {'image': normalize(flip(crop(pad(x))))} (the host path's `pipeline.cifar_augment`)."""
  mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)

  def fn(images, keys):
    return {"image": normalize(crop_flip(images, keys, padding=padding, flip=flip), mean, std)}

  return fn


# ----------------------------------------------------------------------------------------------------------------
# torchvision RandomResizedCrop, ColorJitter, grayscale, GaussianBlur (the SupCon, MoCo and RECORDS views)

RRC_TRIES = 10  # torchvision RandomResizedCrop.get_params: 10 attempts, then a center-crop fallback


def rrc_window_from_uniforms(height: int, width: int, u: jax.Array, scale, ratio):
  """torchvision `RandomResizedCrop.get_params` on an H×W image from its draws u float32 [2·10 + 2] (the host
  path's `augment.rrc_window_from_uniforms`, same formulas): attempt t takes the area fraction
  s0 + (s1 − s0)·u[t] and the log-aspect log r0 + (log r1 − log r0)·u[10 + t], w = round(√(area·aspect)),
  h = round(√(area/aspect)) (half to even); the first attempt with 0 < w ≤ W, 0 < h ≤ H wins, at
  top = ⌊u[20]·(H − h + 1)⌋, left = ⌊u[21]·(W − w + 1)⌋; none fits → the central crop of the largest window with an
  aspect in [r0, r1]. Returns int32 (top, left, h, w)."""
  t = RRC_TRIES
  area = float(height * width)
  target = area * (scale[0] + (scale[1] - scale[0]) * u[:t])
  lr0, lr1 = math.log(ratio[0]), math.log(ratio[1])
  aspect = jnp.exp(lr0 + (lr1 - lr0) * u[t:2 * t])
  w = jnp.round(jnp.sqrt(target * aspect)).astype(jnp.int32)
  h = jnp.round(jnp.sqrt(target / aspect)).astype(jnp.int32)
  ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
  first = jnp.argmax(ok)
  h_t, w_t = h[first], w[first]
  top_t = jnp.floor(u[2 * t] * (height - h_t + 1).astype(jnp.float32)).astype(jnp.int32)
  left_t = jnp.floor(u[2 * t + 1] * (width - w_t + 1).astype(jnp.float32)).astype(jnp.int32)
  top_t, left_t = jnp.minimum(top_t, height - h_t), jnp.minimum(left_t, width - w_t)
  in_ratio = width / height
  if in_ratio < ratio[0]:
    w_f, h_f = width, int(round(width / ratio[0]))
  elif in_ratio > ratio[1]:
    w_f, h_f = int(round(height * ratio[1])), height
  else:
    w_f, h_f = width, height
  pick = lambda a, b: jnp.where(ok.any(), a, b).astype(jnp.int32)  # noqa: E731
  return pick(top_t, (height - h_f) // 2), pick(left_t, (width - w_f) // 2), pick(h_t, h_f), pick(w_t, w_f)


def rrc_window(key: jax.Array, height: int, width: int, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)):
  """`rrc_window_from_uniforms` with its draws from `key`."""
  return rrc_window_from_uniforms(height, width, jax.random.uniform(key, (2 * RRC_TRIES + 2,)), scale, ratio)


def resize_weights(start: jax.Array, length: jax.Array, in_size: int, out_size: int) -> jax.Array:
  """float32 [out_size, in_size]: the rows of an antialiased bilinear resize of the window [start, start + length)
  of an axis to out_size samples — TF's `ScaleAndTranslate` (what `tf.image.resize(bilinear, antialias=True)` and
  PIL's BILINEAR compute): output o samples the window at s = (o + ½)·length/out_size, input j of the window gets
  max(0, 1 − |j + ½ − s| / k) with k = max(length/out_size, 1) (the triangle widens when shrinking), weights
  normalised over the window (pixels outside it get none)."""
  inv = length.astype(jnp.float32) / out_size
  k = jnp.maximum(inv, 1.0)
  sample = (jnp.arange(out_size, dtype=jnp.float32)[:, None] + 0.5) * inv
  j = jnp.arange(in_size)[None, :] - start
  w = jnp.maximum(0.0, 1.0 - jnp.abs(j.astype(jnp.float32) + 0.5 - sample) / k)
  w = jnp.where((j >= 0) & (j < length), w, 0.0)
  return w / jnp.maximum(w.sum(1, keepdims=True), 1e-12)


def resized_crop(image: jax.Array, window, size: int) -> jax.Array:
  """uint8 [H, W, C], window (top, left, h, w) → uint8 [size, size, C]: the window resized with
  `resize_weights` along each axis (float), rounded and clipped to uint8 as PIL returns it."""
  top, left, h, w = window
  wy = resize_weights(top, h, image.shape[0], size)
  wx = resize_weights(left, w, image.shape[1], size)
  out = jnp.einsum("sh,hwc,tw->stc", wy, image.astype(jnp.float32), wx, precision=jax.lax.Precision.HIGHEST)
  return jnp.clip(jnp.round(out), 0.0, 255.0).astype(jnp.uint8)


def random_resized_crop(image: jax.Array, key: jax.Array, size: int, scale=(0.2, 1.0),
                        ratio=(3.0 / 4.0, 4.0 / 3.0)) -> jax.Array:
  """torchvision RandomResizedCrop(size, scale, ratio) on uint8 [H, W, C] → uint8 [size, size, C] (the views'
  default scale (0.2, 1))."""
  return resized_crop(image, rrc_window(key, image.shape[0], image.shape[1], scale, ratio), size)


def flip_random(image: jax.Array, key: jax.Array, p: float = 0.5) -> jax.Array:
  """Horizontal flip with probability p."""
  return jnp.where(jax.random.uniform(key) < p, image[:, ::-1], image)


GRAY = (0.299, 0.587, 0.114)  # PIL convert('L') weights
HUE = 3  # index of the hue in ColorJitter strengths (brightness, contrast, saturation, hue)


def luma(x: jax.Array) -> jax.Array:
  """Float luma of float RGB [H, W, 3] → [H, W, 1]."""
  return jnp.sum(x * jnp.asarray(GRAY, x.dtype), axis=-1, keepdims=True)


def pil_luma(img: jax.Array) -> jax.Array:
  """PIL convert('L') of uint8 RGB [H, W, 3] → int32 [H, W]: (19595 R + 38470 G + 7471 B + 2^15) >> 16."""
  x = img.astype(jnp.int32)
  return (x[..., 0] * 19595 + x[..., 1] * 38470 + x[..., 2] * 7471 + 32768) >> 16


def grayscale(x: jax.Array) -> jax.Array:
  """torchvision Grayscale(3): float [0, 1] → float luma; uint8 → PIL's integer luma; one channel unchanged."""
  if x.shape[-1] == 1:
    return x
  g = pil_luma(x)[..., None].astype(x.dtype) if x.dtype == jnp.uint8 else luma(x)
  return jnp.broadcast_to(g, x.shape)


def rgb_to_hsv(x: jax.Array) -> jax.Array:
  """float RGB in [0, 1] [..., 3] → HSV [..., 3] with hue in [0, 1) (TF's rgb_to_hsv)."""
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  v = jnp.max(x, -1)
  rng = v - jnp.min(x, -1)
  s = jnp.where(v > 0, rng / jnp.where(v > 0, v, 1.0), 0.0)
  safe = jnp.where(rng > 0, rng, 1.0)
  h = jnp.where(v == r, (g - b) / safe, jnp.where(v == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe)) / 6.0
  h = jnp.where(rng > 0, h, 0.0)
  return jnp.stack([h - jnp.floor(h), s, v], -1)


def hsv_to_rgb(hsv: jax.Array) -> jax.Array:
  """HSV [..., 3] (hue in [0, 1)) → RGB [..., 3] (TF's hsv_to_rgb)."""
  h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
  dh = h * 6.0
  r = jnp.clip(jnp.abs(dh - 3.0) - 1.0, 0.0, 1.0)
  g = jnp.clip(2.0 - jnp.abs(dh - 2.0), 0.0, 1.0)
  b = jnp.clip(2.0 - jnp.abs(dh - 4.0), 0.0, 1.0)
  return ((jnp.stack([r, g, b], -1) - 1.0) * s[..., None] + 1.0) * v[..., None]


def adjust_hue(x: jax.Array, delta: jax.Array) -> jax.Array:
  """tf.image.adjust_hue on float RGB [H, W, 3]: the HSV hue rotated by `delta` turns."""
  hsv = rgb_to_hsv(x)
  h = hsv[..., 0] + delta
  return hsv_to_rgb(hsv.at[..., 0].set(h - jnp.floor(h)))


def jitter_params(key: jax.Array, strengths: Sequence[float]):
  """ColorJitter's draws for (brightness, contrast, saturation[, hue]): factors [K] with f_k ~ U[max(0, 1 − s_k),
  1 + s_k] (k < 3) and the hue shift ~ U[−hue, hue], and the application order: a uniformly random permutation of
  the active adjustments (non-zero strength), as positions into `active` (their indices). Returns
  (factors, order, active)."""
  strengths = tuple(float(v) for v in strengths)
  if len(strengths) not in (3, 4) or min(strengths) < 0:
    raise ValueError(f"ColorJitter strengths {strengths}: expected (brightness, contrast, saturation[, hue]) >= 0")
  active = [i for i, v in enumerate(strengths) if v]
  k_fac, k_order = jax.random.split(key)
  lo = jnp.asarray([max(0.0, 1.0 - v) for v in strengths[:3]] + [-v for v in strengths[3:]], jnp.float32)
  hi = jnp.asarray([1.0 + v for v in strengths[:3]] + list(strengths[3:]), jnp.float32)
  u = jax.random.uniform(k_fac, (len(strengths),))
  order = jax.random.permutation(k_order, max(len(active), 1))
  return lo + (hi - lo) * u, order, active


def apply_color_jitter(x: jax.Array, factors: jax.Array, order: jax.Array, active: Sequence[int]) -> jax.Array:
  """The adjustments `active[order[0]], active[order[1]], …` (0 brightness, 1 contrast, 2 saturation, 3 hue) with
  `factors[active[·]]` (the host path's `augment.apply_color_jitter`, same arithmetic; `factors` holds all four
  strengths' draws, indexed by kind):

  float x ∈ [0, 1] [H, W, C] (torchvision tensors), each followed by a clip to [0, 1]: 0 f·x;
  1 f·x + (1 − f)·mean(luma(x)); 2 f·x + (1 − f)·luma(x); 3 adjust_hue(x, f).
  uint8 [H, W, 3] (PIL): ⌊clip(D + f·(x − D), 0, 255)⌋ with D = 0, ⌊mean(pil_luma(x)) + ½⌋ or pil_luma(x); hue on
  x/255 rounded back to uint8.
  One channel: saturation and hue are identities, contrast blends with the image's own mean."""
  active = list(active)
  if not active:
    return x
  pil = x.dtype == jnp.uint8
  rgb = x.shape[-1] == 3
  if pil and not rgb:
    raise ValueError(f"PIL (uint8) ColorJitter needs RGB images, got {x.shape[-1]} channels")
  kinds = jnp.asarray(active, jnp.int32)
  if not rgb:  # saturation and hue are identities on one channel
    factors = jnp.where(jnp.arange(factors.shape[0]) >= 2, 1.0, factors)
  hue_on = rgb and HUE in active

  def position(v, j):
    """One adjustment, kind = active[j], branch-free: brightness, contrast and saturation are one affine pass
    D + f·(v − D) with D chosen by kind; the hue (when active) is computed and selected."""
    kind, f = kinds[j], factors[kinds[j]]
    if pil:
      g = pil_luma(v.astype(jnp.uint8))[..., None].astype(jnp.float32)
      d = jnp.where(kind == 2, g, jnp.where(kind == 1, jnp.floor(jnp.mean(g) + 0.5), 0.0))
      out = jnp.floor(jnp.clip(d + f * (v - d), 0.0, 255.0))
      if hue_on:
        out = jnp.where(kind == HUE, jnp.round(jnp.clip(adjust_hue(v / 255.0, f) * 255.0, 0.0, 255.0)), out)
    else:
      g = luma(v) if rgb else v
      d = jnp.where(kind == 2, g, jnp.where(kind == 1, jnp.mean(g), 0.0))
      out = jnp.clip(f * v + (1.0 - f) * d, 0.0, 1.0)
      if hue_on:
        out = jnp.where(kind == HUE, jnp.clip(adjust_hue(v, f), 0.0, 1.0), out)
    return out, None

  # A scan over the positions, not a straight-line chain: see `in_sequence`.
  v, _ = jax.lax.scan(position, x.astype(jnp.float32), order)
  return v.astype(jnp.uint8) if pil else v


def color_jitter(x: jax.Array, key: jax.Array, strengths: Sequence[float]) -> jax.Array:
  """torchvision ColorJitter(*strengths) with its parameters drawn from `key` (`jitter_params`)."""
  factors, order, active = jitter_params(key, strengths)
  return apply_color_jitter(x, factors, order, active)


def gaussian_blur(x: jax.Array, sigma: jax.Array, max_sigma: float = 2.0) -> jax.Array:
  """Separable Gaussian blur of float [H, W, C], standard deviation `sigma` pixels: taps −r…r with
  r = ⌈3·max_sigma⌉, weights exp(−t²/2σ²) normalised, borders replicated (the host path's
  `contrastive_views.gaussian_blur`)."""
  r = int(math.ceil(3.0 * max_sigma))
  t = jnp.arange(-r, r + 1, dtype=jnp.float32)
  w = jnp.exp(-jnp.square(t) / (2.0 * jnp.square(sigma)))
  w = w / jnp.sum(w)
  h, wd = x.shape[:2]
  p = jnp.pad(x, ((r, r), (r, r), (0, 0)), mode="edge")  # replicated borders; static slices, no gathers
  p = sum(w[k] * p[k:k + h] for k in range(2 * r + 1))
  return sum(w[k] * p[:, k:k + wd] for k in range(2 * r + 1))


def _apply_p(key, p: float, fn):
  """The stage x ↦ fn(x) with probability p, else x."""
  return lambda x: jnp.where(jax.random.uniform(key) < p, fn(x), x)


def in_sequence(x: jax.Array, stages: Sequence[Callable]) -> jax.Array:
  """stages[-1](… stages[0](x)), each stage's output materialised: a lax.scan over the stage index (a real switch
  per iteration). Straight-line chains of random stages (each a select between the changed and the unchanged image,
  with image means inside) made XLA:CPU re-evaluate earlier stages inside later ones, several times the cost of the
  stages themselves at CIFAR sizes."""
  if len(stages) == 1:
    return stages[0](x)
  out, _ = jax.lax.scan(lambda v, i: (jax.lax.switch(i, list(stages), v), None), x, jnp.arange(len(stages)))
  return out


def supcon_view(image: jax.Array, key: jax.Array, *, size: int, mean, std, flip: bool = True, scale=(0.2, 1.0),
                jitter_p: float = 0.8, gray_p: float = 0.2, jitter=(0.4, 0.4, 0.4, 0.1)) -> jax.Array:
  """One SupCon/SimCLR view (SBCL stage 1; the host path's `contrastive_views.simclr_view`): uint8 [H, W, C] → float32
  [size, size, C]: RandomResizedCrop(size, scale) → flip ½ → to [0, 1] → ColorJitter(0.4, 0.4, 0.4, 0.1) with
  p 0.8 → RandomGrayscale 0.2 (RGB only) → normalise."""
  k = jax.random.split(key, 6)
  x = random_resized_crop(image, k[0], size, scale=scale)
  if flip:
    x = flip_random(x, k[1])
  stages = [_apply_p(k[2], jitter_p, lambda v: color_jitter(v, k[3], jitter))]
  if x.shape[-1] == 3:
    stages.append(_apply_p(k[4], gray_p, grayscale))
  x = in_sequence(x.astype(jnp.float32) / 255.0, stages)
  return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def moco_view(image: jax.Array, key: jax.Array, *, size: int, mean, std, scale=(0.2, 1.0),
              jitter=(0.4, 0.4, 0.4, 0.1), jitter_p: float = 0.8, gray_p: float = 0.2, blur_sigma=(0.1, 2.0),
              blur_p: float = 0.5, flip: bool = True) -> jax.Array:
  """One MoCo v2 aug-plus view (the host path's `contrastive_views.moco_v2_view`): uint8 [H, W, C] → float32
  [size, size, C]: RandomResizedCrop → to [0, 1] → ColorJitter with p 0.8 → RandomGrayscale 0.2 → GaussianBlur
  σ ~ U[0.1, 2] with p 0.5 → flip ½ → normalise."""
  k = jax.random.split(key, 8)
  x = random_resized_crop(image, k[0], size, scale=scale).astype(jnp.float32) / 255.0
  stages = [_apply_p(k[1], jitter_p, lambda v: color_jitter(v, k[2], jitter))]
  if x.shape[-1] == 3:
    stages.append(_apply_p(k[3], gray_p, grayscale))
  if blur_p > 0:
    sigma = blur_sigma[0] + (blur_sigma[1] - blur_sigma[0]) * jax.random.uniform(k[4])
    stages.append(_apply_p(k[5], blur_p, lambda v: gaussian_blur(v, sigma, blur_sigma[1])))
  if flip:
    stages.append(lambda v: flip_random(v, k[6]))
  x = in_sequence(x, stages)
  return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def two_views(view: Callable, names=("view1", "view2")) -> AugmentFn:
  """A batched augmentation of two independent draws of a per-image `view(image, key)`: {names[0]: …, names[1]: …}."""

  def fn(images, keys):
    k = jax.vmap(lambda key: jax.random.split(key))(keys)
    return {names[0]: jax.vmap(view)(images, k[:, 0]), names[1]: jax.vmap(view)(images, k[:, 1])}

  return fn
