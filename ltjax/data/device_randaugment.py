"""RandomAugment(3) + Cutout and the RECORDS / CORR / SoLar weak and strong views as JAX ops, for the device data
path. The same operations as the host path's TF ops (`ltjax.data.randaugment`, whose docstring holds the table
of the 14 ops, their magnitude ranges and the PIL operation each reproduces), on uint8 RGB [H, W, 3], with the
parameters drawn from JAX keys (tests/data/test_device_views.py compares every op with the TF one at equal parameters).

Weak:   RandomResizedCrop(size, scale (0.2, 1)) → flip ½ → ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.8 (PIL
        arithmetic) → RandomGrayscale 0.2 (PIL luma) → normalise.
Strong: RandomResizedCrop → flip → RandomAugment(3): 3 ops uniform with replacement from the 14, magnitude
        v = lo + (hi − lo)·U(0, 1) → Cutout (side U(0, ½)·W, centre uniform on (1, W], RGB (125, 123, 114)) →
        normalise.
One-channel images run the colour ops on a replicated RGB image and keep its first channel.
"""

from __future__ import annotations

import math
import sys
from typing import Sequence

import jax
import jax.numpy as jnp

from ltjax.data import device_augment as da
from ltjax.data.randaugment import CUTOUT_FILL, RANDAUGMENT_OPS, WEAK_JITTER, op_branches

N_OPS = len(RANDAUGMENT_OPS)


def _to_u8(x):
  """float → uint8 by clipping to [0, 255] and truncating (PIL's blend)."""
  return jnp.floor(jnp.clip(x, 0.0, 255.0)).astype(jnp.uint8)


def _blend(degenerate, img, factor):
  d = jnp.asarray(degenerate, jnp.float32)
  return _to_u8(d + factor * (img.astype(jnp.float32) - d))


def brightness(img, v):
  return _blend(0.0, img, v)


def color(img, v):
  return _blend(da.pil_luma(img)[..., None], img, v)


def contrast(img, v):
  return _blend(jnp.floor(jnp.mean(da.pil_luma(img).astype(jnp.float32)) + 0.5), img, v)


def sharpness(img, v):
  """Blend with PIL's SMOOTH filter (3×3 [1 1 1; 1 5 1; 1 1 1]/13, rounded), border pixels kept."""
  x = img.astype(jnp.float32)
  h, w = x.shape[:2]
  p = jnp.pad(x, ((1, 1), (1, 1), (0, 0)))
  total = sum(p[i:i + h, j:j + w] for i in range(3) for j in range(3)) + 4.0 * x
  smooth = jnp.floor(total / 13.0 + 0.5)
  inner = jnp.zeros((h, w, 1), bool).at[1:-1, 1:-1].set(True)
  return _blend(jnp.where(inner, smooth, x), img, v)


def autocontrast(img):
  x = img.astype(jnp.float32)
  lo, hi = x.min((0, 1)), x.max((0, 1))
  scale = 255.0 / jnp.maximum(hi - lo, 1.0)
  return jnp.where(hi > lo, jnp.floor(jnp.clip(x * scale - lo * scale, 0.0, 255.0)), x).astype(jnp.uint8)


def equalize(img):
  """PIL ImageOps.equalize per channel: lut = (cumsum + step//2)//step shifted by one bin, step = (N − count of the
  last non-empty bin)//255; identity when step = 0."""

  def channel(im):
    im = im.astype(jnp.int32)
    histo = jnp.bincount(im.reshape(-1), length=256)
    last = histo[255 - jnp.argmax(histo[::-1] > 0)]
    step = (histo.sum() - last) // 255
    safe = jnp.maximum(step, 1)
    lut = (jnp.cumsum(histo) + safe // 2) // safe
    lut = jnp.clip(jnp.concatenate([jnp.zeros([1], lut.dtype), lut[:-1]]), 0, 255)
    return jnp.where(step > 0, lut[im], im)

  return jnp.stack([channel(img[..., c]) for c in range(img.shape[-1])], -1).astype(jnp.uint8)


def posterize(img, v):
  shift = 8 - jnp.floor(v).astype(jnp.int32)
  return ((img.astype(jnp.int32) >> shift) << shift).astype(jnp.uint8)


def solarize(img, v):
  x = img.astype(jnp.float32)
  return jnp.where(x >= v, 255.0 - x, x).astype(jnp.uint8)


def pil_affine(img, coeffs, fill=0):
  """PIL `img.transform(size, AFFINE, (a, b, c, d, e, f), NEAREST)`: output (x, y) takes the input pixel
  ⌊(a(x+½) + b(y+½) + c, d(x+½) + e(y+½) + f)⌋, outside → `fill`."""
  a, b, c, d, e, f = coeffs
  h, w = img.shape[:2]
  ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) + 0.5, jnp.arange(w, dtype=jnp.float32) + 0.5,
                        indexing="ij")
  sx = jnp.floor(a * xs + b * ys + c).astype(jnp.int32)
  sy = jnp.floor(d * xs + e * ys + f).astype(jnp.int32)
  inside = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
  out = img[jnp.clip(sy, 0, h - 1), jnp.clip(sx, 0, w - 1)]
  return jnp.where(inside[..., None], out, jnp.asarray(fill, img.dtype))


def rotate(img, v):
  """PIL `img.rotate(v)`: v degrees counter-clockwise about (W/2, H/2), nearest, black."""
  h, w = img.shape[:2]
  ang = -v * (math.pi / 180.0)
  ca, sa = jnp.cos(ang), jnp.sin(ang)
  cx, cy = w / 2.0, h / 2.0
  return pil_affine(img, (ca, sa, -ca * cx - sa * cy + cx, -sa, ca, sa * cx - ca * cy + cy))


def randaugment_op(img, op, v):
  """Op `op` (index into RANDAUGMENT_OPS) of magnitude v on uint8 RGB [H, W, 3]."""
  h, w = img.shape[:2]
  return jax.lax.switch(op, op_branches(sys.modules[__name__], img, v, h, w))


def cutout_box(h: int, w: int, u: jax.Array):
  """The Cutout rectangle from three uniforms u [3] (side, centre x, centre y; see the module docstring): bool
  [H, W], both corners included as PIL's rectangle does, float corners truncated."""
  side = u[0] * 0.5 * w
  x0 = 1.0 + (w - 1.0) * (1.0 - u[1])
  y0 = 1.0 + (h - 1.0) * (1.0 - u[2])
  x0 = jnp.floor(jnp.maximum(0.0, x0 - side / 2.0))
  y0 = jnp.floor(jnp.maximum(0.0, y0 - side / 2.0))
  x1, y1 = jnp.minimum(float(w), x0 + side), jnp.minimum(float(h), y0 + side)
  xs, ys = jnp.arange(w, dtype=jnp.float32)[None, :], jnp.arange(h, dtype=jnp.float32)[:, None]
  return (xs >= x0) & (xs <= jnp.floor(x1)) & (ys >= y0) & (ys <= jnp.floor(y1)) & (side > 0)


def cutout(img, key):
  box = cutout_box(img.shape[0], img.shape[1], jax.random.uniform(key, (3,)))
  return jnp.where(box[..., None], jnp.asarray(CUTOUT_FILL, jnp.uint8), img)


def rand_augment(img, key, n: int = 3):
  """RandomAugment(n) + Cutout on uint8 RGB [H, W, 3]."""
  k_ops, k_mag, k_cut = jax.random.split(key, 3)
  ops = jax.random.randint(k_ops, (n,), 0, N_OPS)
  mags = jax.random.uniform(k_mag, (n,))
  lo = jnp.asarray([o[1] for o in RANDAUGMENT_OPS], jnp.float32)
  hi = jnp.asarray([o[2] for o in RANDAUGMENT_OPS], jnp.float32)

  def stage(img, op_mag):  # a scan over the n stages: each stage's image is materialised (see below)
    op, mag = op_mag
    return randaugment_op(img, op, lo[op] + (hi[op] - lo[op]) * mag), None

  # Why a scan: under vmap each switch computes all 14 ops and selects; chained in straight-line code, XLA:CPU's
  # fusion re-evaluates earlier stages inside later ones (for 3 stages, tens of times slower on a CIFAR batch).
  img, _ = jax.lax.scan(stage, img, (ops, mags))
  return cutout(img, k_cut)


def _rgb(img):
  return jnp.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img


def weak_view(img, key, size: int):
  """uint8 [H, W, C] → uint8 [size, size, C]: crop, flip, ColorJitter (p 0.8, PIL arithmetic), grayscale (p 0.2)."""
  c = img.shape[-1]
  k = jax.random.split(key, 5)
  x = _rgb(da.flip_random(da.random_resized_crop(img, k[0], size), k[1]))
  x = da.in_sequence(x, [lambda v: jnp.where(jax.random.uniform(k[2]) < 0.8, da.color_jitter(v, k[3], WEAK_JITTER), v),
                         lambda v: jnp.where(jax.random.uniform(k[4]) < 0.2, da.grayscale(v), v)])
  return x[..., :c]


def strong_view(img, key, size: int):
  """uint8 [H, W, C] → uint8 [size, size, C]: crop, flip, RandomAugment(3) + Cutout."""
  c = img.shape[-1]
  k = jax.random.split(key, 3)
  x = da.flip_random(da.random_resized_crop(img, k[0], size), k[1])
  return rand_augment(_rgb(x), k[2])[..., :c]


def weak_strong(mean: Sequence[float], std: Sequence[float], size: int, views: str = "records") -> da.AugmentFn:
  """Batched {'image': weak, 'image_strong': strong}, normalised; views='plain': both the normalised image."""
  mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)

  def fn(images, keys):
    if views == "plain":
      x = da.normalize(images, mean, std)
      return {"image": x, "image_strong": x}
    k = jax.vmap(jax.random.split)(keys)
    weak = jax.vmap(lambda im, key: weak_view(im, key, size))(images, k[:, 0])
    strong = jax.vmap(lambda im, key: strong_view(im, key, size))(images, k[:, 1])
    return {"image": da.normalize(weak, mean, std), "image_strong": da.normalize(strong, mean, std)}

  return fn
