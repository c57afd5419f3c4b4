"""Contrastive views as TF ops: MoCo v2 "aug-plus" (imbalanced-semi-self `pretrain_moco.py`, SBCL's ImageNet-LT data
in `moco/`) and the SupCon/SimCLR CIFAR view (`simclr_view`, SBCL `SimCLR/main.py`), with torchvision semantics and stateless per-example seeds (an example's views are a function of (seed, epoch,
position) only: identical on 1 or 8 devices and after a resume).

One view (`moco_v2_view`), in upstream's order (`moco/main_moco.py`, `augmentation = [...]` for `--aug-plus`):
  RandomResizedCrop(size, scale=(0.2, 1), ratio=(3/4, 4/3))   → float pixels in [0, 1]
  RandomApply(ColorJitter(0.4, 0.4, 0.4, 0.1), p=0.8)          four ops in a random order, each clamped to [0, 1]
  RandomGrayscale(p=0.2)                                       ITU-R 601-2 luma, replicated to 3 channels
  RandomApply(GaussianBlur(σ ~ U[0.1, 2]), p=0.5)              σ in pixels of the cropped view
  RandomHorizontalFlip()                                       p = 0.5
  Normalize(mean, std)
`moco_two_views` returns {'image': query view, 'image_k': key view}, two independent draws of the same pipeline.

Differences from PIL that remain (documented in docs/DEVIATIONS.md): PIL rounds to uint8 after every PIL op; here
only the resized crop is rounded to uint8 (as PIL returns it) and the later ops run on float pixels, like
torchvision's tensor path. PIL's GaussianBlur(radius=σ) approximates a Gaussian of standard deviation σ with three
box blurs; here it is an exact Gaussian (truncated at ±⌈3·σ_max⌉ pixels, edge pixels replicated). One-channel
images (the embedded digits) skip saturation, hue and grayscale, as torchvision does for grayscale input.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

from ltjax.data import augment


def random_resized_crop(image, seed, size: int, scale=(0.2, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)):
  """torchvision RandomResizedCrop on uint8 [H, W, C] (any H, W) → uint8 [size, size, C].

  The window is `ltjax.data.augment.rrc_window` (torchvision's `get_params`: 10 attempts, then the central crop
  with the aspect ratio clamped); the crop is resized bilinearly with antialiasing (PIL's BILINEAR widens its
  filter when shrinking) and rounded back to uint8, as PIL returns it.
  """
  import tensorflow as tf
  shape = tf.shape(image)
  top, left, h, w = augment.rrc_window(shape[0], shape[1], seed, scale, ratio)
  crop = tf.slice(image, tf.stack([top, left, 0]), tf.stack([h, w, -1]))
  out = tf.image.resize(tf.cast(crop, tf.float32), [size, size], method="bilinear", antialias=True)
  out = tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8)
  return tf.ensure_shape(out, [size, size, image.shape[-1]])


def _gray(x):
  import tensorflow as tf
  return tf.reduce_sum(x * tf.constant([0.299, 0.587, 0.114], x.dtype), axis=-1, keepdims=True)


def color_jitter(x, seed, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1):
  """torchvision ColorJitter on float [H, W, C] in [0, 1]: b, c, s ~ U[max(0, 1−v), 1+v], h ~ U[−hue, hue], the four
  ops in a uniformly random order, each clamped to [0, 1]:
    brightness x ← b·x;  contrast x ← c·x + (1−c)·mean(gray(x));  saturation x ← s·x + (1−s)·gray(x);
    hue: rotate the HSV hue by h (fraction of the circle)."""
  import tensorflow as tf
  u = tf.random.stateless_uniform([8], seed)

  def factor(v, t):
    lo = max(0.0, 1.0 - v)
    return lo + (1.0 + v - lo) * t

  fb, fc, fs = factor(brightness, u[0]), factor(contrast, u[1]), factor(saturation, u[2])
  fh = -hue + 2.0 * hue * u[3]
  order = tf.argsort(u[4:8])  # a uniform random permutation (torch.randperm(4))
  rgb = x.shape[-1] == 3
  clip = lambda v: tf.clip_by_value(v, 0.0, 1.0)
  ops = [
      lambda v: clip(fb * v),
      lambda v: clip(fc * v + (1.0 - fc) * tf.reduce_mean(_gray(v) if rgb else v)),
      (lambda v: clip(fs * v + (1.0 - fs) * _gray(v))) if rgb else (lambda v: v),
      (lambda v: clip(tf.image.adjust_hue(v, fh))) if rgb else (lambda v: v),
  ]
  for k in range(4):
    x = tf.switch_case(order[k], [lambda f=f, v=x: f(v) for f in ops])
    x = tf.ensure_shape(x, [None, None, x.shape[-1]])
  return x


def gaussian_blur(x, sigma, max_sigma: float = 2.0):
  """Separable Gaussian blur of float [H, W, C] with standard deviation `sigma` (a scalar tensor, pixels); taps at
  offsets −r…r, r = ⌈3·max_sigma⌉, weights exp(−t²/2σ²) normalised, borders replicated."""
  import tensorflow as tf
  r = int(math.ceil(3.0 * max_sigma))
  t = tf.range(-r, r + 1, dtype=tf.float32)
  w = tf.exp(-tf.square(t) / (2.0 * tf.square(tf.cast(sigma, tf.float32))))
  w = w / tf.reduce_sum(w)

  def blur_axis(v, axis):
    n = tf.shape(v)[axis]
    out = 0.0
    for k in range(2 * r + 1):
      idx = tf.clip_by_value(tf.range(n) + (k - r), 0, n - 1)
      out = out + w[k] * tf.gather(v, idx, axis=axis)
    return out

  return blur_axis(blur_axis(x, 0), 1)


def moco_v2_view(image, seed, *, size: int, mean: Sequence[float], std: Sequence[float], scale=(0.2, 1.0),
                 jitter=(0.4, 0.4, 0.4, 0.1), jitter_p: float = 0.8, gray_p: float = 0.2,
                 blur_sigma: Tuple[float, float] = (0.1, 2.0), blur_p: float = 0.5, flip: bool = True):
  """One MoCo v2 aug-plus view (module docstring): uint8 [H, W, C] → float32 [size, size, C], normalised."""
  import tensorflow as tf
  s = tf.unstack(tf.random.experimental.stateless_split(seed, 5))
  x = tf.cast(random_resized_crop(image, s[0], size, scale=scale), tf.float32) / 255.0
  u = tf.random.stateless_uniform([5], s[1])
  x = tf.cond(u[0] < jitter_p, lambda: color_jitter(x, s[2], *jitter), lambda: x)
  if x.shape[-1] == 3:
    x = tf.cond(u[1] < gray_p, lambda: tf.tile(_gray(x), [1, 1, 3]), lambda: x)
  if blur_p > 0:
    sigma = blur_sigma[0] + (blur_sigma[1] - blur_sigma[0]) * u[3]
    x = tf.cond(u[2] < blur_p, lambda: gaussian_blur(x, sigma, blur_sigma[1]), lambda: x)
  if flip:
    x = tf.cond(u[4] < 0.5, lambda: tf.reverse(x, axis=[1]), lambda: x)
  x = tf.ensure_shape(x, [size, size, image.shape[-1]])
  return (x - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def moco_two_views(*, size: int, mean, std, **kw):
  """Per-example augment_fn `(uint8 image, int64[2] seed) -> {'image': view_q, 'image_k': view_k}` (two
  independent draws of `moco_v2_view`)."""
  import tensorflow as tf
  mean, std = tuple(mean), tuple(std)

  def fn(image, seed):
    sq, sk = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    return {"image": moco_v2_view(image, sq, size=size, mean=mean, std=std, **kw),
            "image_k": moco_v2_view(image, sk, size=size, mean=mean, std=std, **kw)}

  return fn


def simclr_view(image, seed, *, size: int, mean, std, flip: bool = True, scale=(0.2, 1.0), jitter_p: float = 0.8,
                gray_p: float = 0.2, jitter=(0.4, 0.4, 0.4, 0.1)):
  """One SupCon/SimCLR CIFAR view (SBCL `SimCLR/main.py`, SBCL's CIFAR transforms): uint8 [H, W, C] → float32 [size,
  size, C]

    RandomResizedCrop(size, scale=(0.2, 1)) → RandomHorizontalFlip(0.5) → RandomApply(ColorJitter(0.4, 0.4, 0.4,
    0.1), p=0.8) → RandomGrayscale(0.2) → ToTensor → Normalize(mean, std).
  `flip=False` leaves out the flip (datasets such as digits whose recipe has no flip). Grayscale keeps the channel
  count (3 identical channels); for one-channel images it is the identity.
  """
  import tensorflow as tf
  if image.shape[-1] is None:
    raise ValueError("simclr_view needs a static channel count (tf.ensure_shape the image first)")
  s = tf.unstack(tf.random.experimental.stateless_split(seed, 5))
  x = augment.random_resized_crop(image, s[0], size, scale=scale)
  if flip:
    x = tf.image.stateless_random_flip_left_right(x, seed=s[1])
  x = tf.cast(x, tf.float32) / 255.0
  u = tf.random.stateless_uniform([2], s[2])
  x = tf.cond(u[0] < jitter_p, lambda: augment.color_jitter(x, s[3], *jitter), lambda: x)
  if x.shape[-1] == 3:
    x = tf.cond(u[1] < gray_p, lambda: augment.grayscale(x), lambda: x)
  return (x - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)
