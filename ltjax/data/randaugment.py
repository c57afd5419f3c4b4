"""RECORDS / CORR / SoLar weak and strong views as TF ops (RECORDS' transforms), seeded statelessly per
example like `ltjax.data.augment` (a view is a function of (seed, epoch, position) alone).

Weak:   RandomResizedCrop(size, scale (0.2, 1), ratio (3/4, 4/3)) → horizontal flip p = 0.5 →
        ColorJitter(brightness 0.4, contrast 0.4, saturation 0.4, hue 0.1) with p = 0.8 → grayscale p = 0.2 →
        normalise.
Strong: RandomResizedCrop → flip → RandomAugment(3) → Cutout → normalise.

RandomAugment(n = 3) (the magnitude argument 5 of `RandomAugment(3, 5)` is ignored upstream): 3 ops drawn uniformly
WITH replacement from the 14 below, each with magnitude v = lo + (hi − lo)·U(0, 1) (no sign flip), then always
Cutout with side s = U(0, 0.5)·W and centre (x0, y0) each uniform on (1, W] (upstream `np.random.uniform(W)`, an
argument slip, the RECORDS code's known issues), box ⌊max(0, x0 − s/2)⌋ … +s, filled with RGB (125, 123, 114).

| op           | v range      | PIL operation reproduced here                                                    |
|--------------|--------------|----------------------------------------------------------------------------------|
| AutoContrast | –            | per channel (x − lo)·255/(hi − lo), truncated; identity when hi = lo             |
| Brightness   | [0.05, 0.95] | blend with black: v·x                                                            |
| Color        | [0.05, 0.95] | blend with the L (luma) image: L + v·(x − L)                                     |
| Contrast     | [0.05, 0.95] | blend with the mean luma m = ⌊mean(L) + 0.5⌋: m + v·(x − m)                      |
| Equalize     | –            | PIL's per-channel histogram equalisation (lut (cumsum + step//2)//step)          |
| Identity     | –            |                                                                                  |
| Posterize    | [4, 8]       | keep the top ⌊v⌋ bits                                                            |
| Rotate       | [−30, 30]    | `img.rotate(v)`: counter-clockwise about the centre, nearest, black fill         |
| Sharpness    | [0.05, 0.95] | blend with the SMOOTH-filtered image (3×3 [1 1 1; 1 5 1; 1 1 1]/13, border kept) |
| ShearX       | [−0.3, 0.3]  | affine (1, v, 0, 0, 1, 0), nearest, black fill                                   |
| ShearY       | [−0.3, 0.3]  | affine (1, 0, 0, v, 1, 0)                                                        |
| Solarize     | [0, 256]     | x ≥ v → 255 − x                                                                  |
| TranslateX   | [−0.3, 0.3]  | affine (1, 0, v·W, 0, 1, 0)                                                      |
| TranslateY   | [−0.3, 0.3]  | affine (1, 0, 0, 0, 1, v·H)                                                      |

Enhance ops (Brightness, Color, Contrast, Sharpness) blend in float and truncate to uint8 as PIL's `Image.blend`
does; luma is PIL's `convert('L')` (`augment.pil_luma`): (19595 R + 38470 G + 7471 B + 2^15) >> 16. PIL affine
transforms sample the input at (a(x+½) + b(y+½) + c, d(x+½) + e(y+½) + f) and take the floor; this is mapped exactly
onto TF's projective transform (nearest = round).

RandomResizedCrop, ColorJitter and grayscale are the shared ones of `ltjax.data.augment` (`random_resized_crop`,
`color_jitter`, `grayscale`). The weak view calls ColorJitter on the uint8 image, which selects its PIL arithmetic:
the same Image.blend truncation and PIL luma as the enhance ops above, hue via `tf.image.adjust_hue` on x/255
rounded to uint8 (PIL shifts the uint8 HSV hue; the two agree up to rounding), the four adjustments in a random
order, factors uniform on [0.6, 1.4] (hue [−0.1, 0.1]), as torchvision does; RandomGrayscale is PIL's integer luma.
Images with one channel (digits) run the colour ops on a replicated RGB image and keep its first channel.
"""

from __future__ import annotations

import math
import sys
from typing import Sequence

from ltjax.data.augment import color_jitter, grayscale, pil_luma, random_resized_crop

CUTOUT_FILL = (125, 123, 114)
WEAK_JITTER = (0.4, 0.4, 0.4, 0.1)  # ColorJitter(brightness, contrast, saturation, hue) of the weak view
N_OPS = 14
# (name, lo, hi) in upstream order (`augment_list` of utils/randaugment.py).
RANDAUGMENT_OPS = (
    ("AutoContrast", 0.0, 1.0), ("Brightness", 0.05, 0.95), ("Color", 0.05, 0.95), ("Contrast", 0.05, 0.95),
    ("Equalize", 0.0, 1.0), ("Identity", 0.0, 1.0), ("Posterize", 4.0, 8.0), ("Rotate", -30.0, 30.0),
    ("Sharpness", 0.05, 0.95), ("ShearX", -0.3, 0.3), ("ShearY", -0.3, 0.3), ("Solarize", 0.0, 256.0),
    ("TranslateX", -0.3, 0.3), ("TranslateY", -0.3, 0.3),
)


def _tf():
  import tensorflow as tf
  return tf


def _u(seed, shape=()):
  tf = _tf()
  return tf.random.stateless_uniform(shape, seed=seed, dtype=tf.float32)


def _seeds(seed, n):
  tf = _tf()
  return tf.unstack(tf.random.experimental.stateless_split(seed, n))


def _to_u8(x):
  """float → uint8 by clipping to [0, 255] and truncating (PIL's blend)."""
  tf = _tf()
  return tf.cast(tf.floor(tf.clip_by_value(x, 0.0, 255.0)), tf.uint8)


def _blend(degenerate, img, factor):
  tf = _tf()
  d = tf.cast(degenerate, tf.float32)
  return _to_u8(d + factor * (tf.cast(img, tf.float32) - d))


def brightness(img, v):
  tf = _tf()
  return _blend(tf.zeros_like(img), img, v)


def color(img, v):
  tf = _tf()
  gray = tf.cast(tf.repeat(pil_luma(img)[..., None], 3, axis=-1), tf.float32)
  return _blend(gray, img, v)


def contrast(img, v):
  tf = _tf()
  m = tf.floor(tf.reduce_mean(tf.cast(pil_luma(img), tf.float32)) + 0.5)
  return _blend(tf.fill(tf.shape(img), m), img, v)


def sharpness(img, v):
  tf = _tf()
  x = tf.cast(img, tf.float32)[None]
  k = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
  k = tf.tile(k[:, :, None, None], [1, 1, 3, 1])
  smooth = tf.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], padding="VALID")[0]
  smooth = tf.floor(smooth + 0.5)
  # PIL keeps the border pixels of the filtered image as they were.
  inner = tf.pad(smooth, [[1, 1], [1, 1], [0, 0]])
  mask = tf.pad(tf.ones_like(smooth), [[1, 1], [1, 1], [0, 0]])
  degenerate = mask * inner + (1.0 - mask) * x[0]
  return _blend(degenerate, img, v)


def autocontrast(img):
  tf = _tf()
  x = tf.cast(img, tf.float32)
  lo = tf.reduce_min(x, axis=[0, 1])
  hi = tf.reduce_max(x, axis=[0, 1])
  scale = 255.0 / tf.maximum(hi - lo, 1.0)
  out = tf.clip_by_value(x * scale - lo * scale, 0.0, 255.0)
  return tf.cast(tf.where(hi > lo, tf.floor(out), x), tf.uint8)


def equalize(img):
  tf = _tf()

  def channel(c):
    im = tf.cast(img[..., c], tf.int32)
    histo = tf.math.bincount(tf.reshape(im, [-1]), minlength=256, maxlength=256)
    nonzero = tf.boolean_mask(histo, histo > 0)
    step = (tf.reduce_sum(nonzero) - nonzero[-1]) // 255
    safe = tf.maximum(step, 1)
    lut = (tf.cumsum(histo) + safe // 2) // safe
    lut = tf.clip_by_value(tf.concat([[0], lut[:-1]], 0), 0, 255)
    return tf.where(step > 0, tf.gather(lut, im), im)

  return tf.cast(tf.stack([channel(c) for c in range(3)], -1), tf.uint8)


def posterize(img, v):
  tf = _tf()
  bits = tf.cast(tf.floor(v), tf.int32)
  shift = 8 - bits
  x = tf.cast(img, tf.int32)
  return tf.cast(tf.bitwise.left_shift(tf.bitwise.right_shift(x, shift), shift), tf.uint8)


def solarize(img, v):
  tf = _tf()
  x = tf.cast(img, tf.float32)
  return tf.cast(tf.where(x >= v, 255.0 - x, x), tf.uint8)


def pil_affine(img, coeffs, fill=0.0):
  """PIL `img.transform(size, AFFINE, (a, b, c, d, e, f), NEAREST)`: output (x, y) takes the input pixel
  ⌊(a(x+½) + b(y+½) + c, d(x+½) + e(y+½) + f)⌋, outside → `fill`."""
  tf = _tf()
  a, b, c, d, e, f = [tf.cast(t, tf.float32) for t in coeffs]
  # TF: input = (a x + b y + c', d x + e y + f'), nearest = round(·) = ⌊· + ½⌋ ⇒ c' = c + (a + b − 1)/2.
  t = tf.stack([a, b, c + 0.5 * (a + b - 1.0), d, e, f + 0.5 * (d + e - 1.0), 0.0, 0.0])
  h, w = tf.shape(img)[0], tf.shape(img)[1]
  out = tf.raw_ops.ImageProjectiveTransformV3(
      images=tf.cast(img, tf.float32)[None], transforms=t[None], output_shape=tf.stack([h, w]),
      fill_value=tf.constant(fill, tf.float32), interpolation="NEAREST", fill_mode="CONSTANT")
  return tf.cast(out[0], tf.uint8)


def rotate(img, v):
  """PIL `img.rotate(v)` (degrees, counter-clockwise, centre (W/2, H/2), nearest, black)."""
  tf = _tf()
  h = tf.cast(tf.shape(img)[0], tf.float32)
  w = tf.cast(tf.shape(img)[1], tf.float32)
  ang = -v * (math.pi / 180.0)
  ca, sa = tf.cos(ang), tf.sin(ang)
  a, b, d, e = ca, sa, -sa, ca
  cx, cy = w / 2.0, h / 2.0
  c = a * (-cx) + b * (-cy) + cx
  f = d * (-cx) + e * (-cy) + cy
  return pil_affine(img, (a, b, c, d, e, f))


def op_branches(ops, img, v, h, w):
  """The 14 ops of RANDAUGMENT_OPS in order, as thunks over `ops`' functions (autocontrast, brightness, color,
  contrast, equalize, posterize, rotate, sharpness, pil_affine, solarize): this module's TF ops, or
  `ltjax.data.device_randaugment`'s JAX ones. h, w: the image height and width."""
  return [
      lambda: ops.autocontrast(img),
      lambda: ops.brightness(img, v),
      lambda: ops.color(img, v),
      lambda: ops.contrast(img, v),
      lambda: ops.equalize(img),
      lambda: img,
      lambda: ops.posterize(img, v),
      lambda: ops.rotate(img, v),
      lambda: ops.sharpness(img, v),
      lambda: ops.pil_affine(img, (1.0, v, 0.0, 0.0, 1.0, 0.0)),
      lambda: ops.pil_affine(img, (1.0, 0.0, 0.0, v, 1.0, 0.0)),
      lambda: ops.solarize(img, v),
      lambda: ops.pil_affine(img, (1.0, 0.0, v * w, 0.0, 1.0, 0.0)),
      lambda: ops.pil_affine(img, (1.0, 0.0, 0.0, 0.0, 1.0, v * h)),
  ]


def _randaugment_op(img, op, v):
  tf = _tf()
  w = tf.cast(tf.shape(img)[1], tf.float32)
  h = tf.cast(tf.shape(img)[0], tf.float32)
  out = tf.switch_case(op, op_branches(sys.modules[__name__], img, v, h, w))
  return tf.ensure_shape(out, img.shape)


def cutout(img, seed):
  """Upstream Cutout(img, U(0, 0.5)) after RandomAugment (see the module docstring)."""
  tf = _tf()
  s1, s2, s3 = _seeds(seed, 3)
  h = tf.shape(img)[0]
  w = tf.shape(img)[1]
  wf = tf.cast(w, tf.float32)
  hf = tf.cast(h, tf.float32)
  side = _u(s1) * 0.5 * wf
  x0 = 1.0 + (wf - 1.0) * (1.0 - _u(s2))  # uniform(low=W, high=1): W + (1 − W)·U, i.e. on (1, W]
  y0 = 1.0 + (hf - 1.0) * (1.0 - _u(s3))
  x0 = tf.floor(tf.maximum(0.0, x0 - side / 2.0))
  y0 = tf.floor(tf.maximum(0.0, y0 - side / 2.0))
  x1 = tf.minimum(wf, x0 + side)
  y1 = tf.minimum(hf, y0 + side)
  xs = tf.cast(tf.range(w), tf.float32)[None, :]
  ys = tf.cast(tf.range(h), tf.float32)[:, None]
  # PIL's rectangle includes both corners; float corners are truncated.
  box = (xs >= x0) & (xs <= tf.floor(x1)) & (ys >= y0) & (ys <= tf.floor(y1)) & (side > 0)
  fill = tf.constant(CUTOUT_FILL, tf.uint8)
  return tf.where(box[..., None], fill[None, None, :], img)


def rand_augment(img, seed, n: int = 3):
  """RandomAugment(n) + Cutout on a uint8 RGB image [H, W, 3]."""
  tf = _tf()
  s_ops, s_mag, s_cut = _seeds(seed, 3)
  ops = tf.random.stateless_uniform([n], seed=s_ops, minval=0, maxval=N_OPS, dtype=tf.int32)
  mags = _u(s_mag, [n])
  lo = tf.constant([o[1] for o in RANDAUGMENT_OPS], tf.float32)
  hi = tf.constant([o[2] for o in RANDAUGMENT_OPS], tf.float32)
  for k in range(n):
    op = ops[k]
    v = tf.gather(lo, op) + (tf.gather(hi, op) - tf.gather(lo, op)) * mags[k]
    img = _randaugment_op(img, op, v)
  return cutout(img, s_cut)


def _rgb(img):
  tf = _tf()
  return tf.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img


def weak_view(img, seed, size: int):
  """uint8 [H, W, C] → uint8 [size, size, C]: crop, flip, jitter (p 0.8), grayscale (p 0.2)."""
  tf = _tf()
  channels = img.shape[-1]
  s_crop, s_flip, s_jit_p, s_jit, s_gray = _seeds(seed, 5)
  x = random_resized_crop(img, s_crop, size)
  x = tf.image.stateless_random_flip_left_right(x, seed=s_flip)
  x = _rgb(x)
  x = tf.cond(_u(s_jit_p) < 0.8, lambda: color_jitter(x, s_jit, *WEAK_JITTER), lambda: x)  # uint8: PIL arithmetic
  x = tf.where(_u(s_gray) < 0.2, grayscale(x), x)
  return x[..., :channels]


def strong_view(img, seed, size: int):
  """uint8 [H, W, C] → uint8 [size, size, C]: crop, flip, RandomAugment(3) + Cutout."""
  tf = _tf()
  channels = img.shape[-1]
  s_crop, s_flip, s_ra = _seeds(seed, 3)
  x = random_resized_crop(img, s_crop, size)
  x = tf.image.stateless_random_flip_left_right(x, seed=s_flip)
  x = rand_augment(_rgb(x), s_ra)
  return x[..., :channels]


def weak_strong(mean: Sequence[float], std: Sequence[float], size: int, views: str = "records"):
  """Augment fn `(uint8 image, int64[2] seed) -> {'image': weak, 'image_strong': strong}`, both normalised with the
  train statistics. views='records' (RECORDS' transforms) or 'plain' (both views the un-augmented image: tiny inputs
  such as the
  8×8 digits, where a resized crop of 20% of the image destroys it)."""
  from ltjax.data.augment import normalize
  tf = _tf()
  mean, std = tuple(mean), tuple(std)

  def fn(image, seed):
    if views == "plain":
      x = normalize(image, mean, std)
      return {"image": x, "image_strong": tf.identity(x)}
    s_w, s_s = _seeds(seed, 2)
    return {"image": normalize(weak_view(image, s_w, size), mean, std),
            "image_strong": normalize(strong_view(image, s_s, size), mean, std)}

  return fn
