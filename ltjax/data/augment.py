"""Per-example augmentation as TF ops, seeded statelessly so an example's augmentation is a function of
(seed, epoch, position in the epoch) alone: the same on 1 device or 8, and after a resume.

CIFAR recipe (spec ARB_AND_SEMISELF §1.4): zero-pad by `padding` pixels, random crop back to H×W, horizontal flip
with p = 0.5, scale to [0, 1], normalise x ← (x − mean) / std per channel. Padding happens on the uint8 image, as
torchvision's RandomCrop(padding=4) pads the PIL image with black pixels.
"""

from __future__ import annotations

from typing import Sequence


def normalize(image, mean: Sequence[float], std: Sequence[float]):
  """uint8 [H,W,C] → float32 [H,W,C], (x/255 − mean)/std."""
  import tensorflow as tf
  x = tf.cast(image, tf.float32) / 255.0
  return (x - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def crop_flip(image, seed, *, padding: int, flip: bool):
  """Random crop of a zero-padded uint8 image back to its size, then a random horizontal flip.

  Args:
    image: uint8 [H, W, C].
    seed: int64 [2] stateless seed.
  """
  import tensorflow as tf
  shape = tf.shape(image)
  s_crop, s_flip = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  if padding > 0:
    padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    image = tf.image.stateless_random_crop(padded, size=shape, seed=s_crop)
  if flip:
    image = tf.image.stateless_random_flip_left_right(image, seed=s_flip)
  return image


# ----------------------------------------------------------------------------------------------------------------
# SimCLR / SupCon view augmentation (SBCL stage 1, spec SBCL_AND_RECORDS A.2.2), torchvision semantics
# ----------------------------------------------------------------------------------------------------------------


def rrc_box(u, H, W, scale=(0.2, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)):
  """torchvision `RandomResizedCrop.get_params` driven by uniforms u [attempts, 4] (TF float32) → (top, left,
  height, width) int32 scalars.

  Attempt t: target = H·W·(s0 + (s1−s0)·u[t,0]), aspect = exp(log r0 + (log r1 − log r0)·u[t,1]),
  w = round(√(target·aspect)), h = round(√(target/aspect)) (half to even, as Python's `round`); the first attempt
  with 0 < w ≤ W and 0 < h ≤ H gives top = ⌊u[t,2]·(H−h+1)⌋, left = ⌊u[t,3]·(W−w+1)⌋ (`torch.randint`). Without
  a valid attempt: the central crop of the whole image with its aspect ratio clamped into `ratio`.
  """
  import math
  import tensorflow as tf
  H, W = tf.cast(H, tf.int32), tf.cast(W, tf.int32)
  Hf, Wf = tf.cast(H, tf.float32), tf.cast(W, tf.float32)
  target = Hf * Wf * (scale[0] + (scale[1] - scale[0]) * u[:, 0])
  lo, hi = math.log(ratio[0]), math.log(ratio[1])
  aspect = tf.exp(lo + (hi - lo) * u[:, 1])
  w = tf.cast(tf.round(tf.sqrt(target * aspect)), tf.int32)
  h = tf.cast(tf.round(tf.sqrt(target / aspect)), tf.int32)
  ok = (w > 0) & (w <= W) & (h > 0) & (h <= H)
  first = tf.argmax(tf.cast(ok, tf.int32), output_type=tf.int32)
  i_rand = tf.cast(tf.floor(u[:, 2] * tf.cast(H - h + 1, tf.float32)), tf.int32)
  j_rand = tf.cast(tf.floor(u[:, 3] * tf.cast(W - w + 1, tf.float32)), tf.int32)
  in_ratio = Wf / Hf
  fw = tf.where(in_ratio > ratio[1], tf.cast(tf.round(Hf * ratio[1]), tf.int32), W)
  fh = tf.where(in_ratio < ratio[0], tf.cast(tf.round(Wf / ratio[0]), tf.int32), H)
  any_ok = tf.reduce_any(ok)
  return (tf.where(any_ok, i_rand[first], (H - fh) // 2), tf.where(any_ok, j_rand[first], (W - fw) // 2),
          tf.where(any_ok, h[first], fh), tf.where(any_ok, w[first], fw))


def random_resized_crop(image, seed, size, scale=(0.2, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0), attempts: int = 10):
  """torchvision `RandomResizedCrop(size, scale, ratio)` on a uint8 [H, W, C] image → uint8 [size, size, C].

  The box is `rrc_box` of 10 attempts; the crop is resized with bilinear interpolation with antialiasing (PIL's
  BILINEAR, which widens its filter when downscaling) and rounded back to uint8, as PIL returns uint8 images.
  """
  import tensorflow as tf
  shape = tf.shape(image)
  u = tf.random.stateless_uniform([attempts, 4], seed)
  top, left, h, w = rrc_box(u, shape[0], shape[1], scale, ratio)
  crop = tf.slice(image, tf.stack([top, left, 0]), tf.stack([h, w, -1]))
  crop = tf.ensure_shape(crop, [None, None, image.shape[-1]])  # keep the static channel count in graph mode
  out = tf.image.resize(tf.cast(crop, tf.float32), [size, size], method="bilinear", antialias=True)
  return tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8)


def _grayscale(x):
  """ITU-R 601-2 luma (torchvision / PIL 'L': 0.2989 R + 0.587 G + 0.114 B), keeping one channel."""
  import tensorflow as tf
  return tf.image.rgb_to_grayscale(x)


def jitter_apply(x, fb, fc, fs, fh, order):
  """The four ColorJitter operations on float [H, W, C] pixels in [0, 1], in the order `order` (a permutation of
  0 = brightness, 1 = contrast, 2 = saturation, 3 = hue), each followed by clamping to [0, 1] (torchvision's
  tensor functional):
    brightness  x ← b·x
    contrast    x ← c·x + (1−c)·mean(gray(x))          (mean over all pixels of the grayscale image)
    saturation  x ← s·x + (1−s)·gray(x)
    hue         HSV hue h ← (h + fh) mod 1
  For one-channel images saturation and hue are identities (as torchvision's functional for grayscale input).
  """
  import tensorflow as tf
  if x.shape[-1] is None:
    raise ValueError("jitter_apply needs a static channel count (tf.ensure_shape the image first)")
  rgb = x.shape[-1] == 3

  def bright(v):
    return tf.clip_by_value(fb * v, 0.0, 1.0)

  def contr(v):
    g = _grayscale(v) if rgb else v
    return tf.clip_by_value(fc * v + (1 - fc) * tf.reduce_mean(g), 0.0, 1.0)

  def sat(v):
    return tf.clip_by_value(fs * v + (1 - fs) * _grayscale(v), 0.0, 1.0) if rgb else v

  def hue_fn(v):
    return tf.clip_by_value(tf.image.adjust_hue(v, fh), 0.0, 1.0) if rgb else v

  ops = [bright, contr, sat, hue_fn]
  channels = x.shape[-1]
  for k in range(4):
    x = tf.switch_case(order[k], [lambda f=f, v=x: f(v) for f in ops])
    x = tf.ensure_shape(x, [None, None, channels])
  return x


def color_jitter(x, seed, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1):
  """torchvision `ColorJitter(brightness, contrast, saturation, hue)` on float [H, W, C] pixels in [0, 1]:
  factors b, c, s ~ U(max(0, 1−v), 1+v), h ~ U(−hue, hue), the operations in a uniformly random order
  (`torch.randperm(4)`), see `jitter_apply`."""
  import tensorflow as tf
  u = tf.random.stateless_uniform([8], seed)

  def factor(v, ui):
    lo = max(0.0, 1.0 - v)
    return lo + ((1.0 + v) - lo) * ui

  order = tf.argsort(u[4:8], stable=True)
  return jitter_apply(x, factor(brightness, u[0]), factor(contrast, u[1]), factor(saturation, u[2]),
                      -hue + 2 * hue * u[3], order)


def simclr_view(image, seed, *, size: int, mean, std, flip: bool = True, scale=(0.2, 1.0), jitter_p: float = 0.8,
                gray_p: float = 0.2, jitter=(0.4, 0.4, 0.4, 0.1)):
  """One SupCon/SimCLR CIFAR view (SBCL `SimCLR/main.py`, spec A.2.2): uint8 [H, W, C] → float32 [size, size, C]

    RandomResizedCrop(size, scale=(0.2, 1)) → RandomHorizontalFlip(0.5) → RandomApply(ColorJitter(0.4, 0.4, 0.4,
    0.1), p=0.8) → RandomGrayscale(0.2) → ToTensor → Normalize(mean, std).
  `flip=False` leaves out the flip (datasets such as digits whose recipe has no flip). Grayscale keeps the channel
  count (3 identical channels); for one-channel images it is the identity.
  """
  import tensorflow as tf
  if image.shape[-1] is None:
    raise ValueError("simclr_view needs a static channel count (tf.ensure_shape the image first)")
  s = tf.unstack(tf.random.experimental.stateless_split(seed, 5))
  x = random_resized_crop(image, s[0], size, scale=scale)
  if flip:
    x = tf.image.stateless_random_flip_left_right(x, seed=s[1])
  x = tf.cast(x, tf.float32) / 255.0
  u = tf.random.stateless_uniform([2], s[2])
  x = tf.cond(u[0] < jitter_p, lambda: color_jitter(x, s[3], *jitter), lambda: x)
  if x.shape[-1] == 3:
    x = tf.cond(u[1] < gray_p, lambda: tf.tile(_grayscale(x), [1, 1, 3]), lambda: x)
  return (x - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)
