"""Per-example augmentation as TF ops, seeded statelessly so an example's augmentation is a function of
(seed, epoch, position in the epoch) alone: the same on 1 device or 8, and after a resume.

CIFAR recipe (the official CIFAR/SVHN transforms): zero-pad by `padding` pixels, random crop back to H×W, horizontal
flip
with p = 0.5, scale to [0, 1], normalise x ← (x − mean) / std per channel. Padding happens on the uint8 image, as
torchvision's RandomCrop(padding=4) pads the PIL image with black pixels.

Large-scale recipe (the official CIFAR/SVHN transforms, file-backed datasets; `ImageRecipe`): RandomResizedCrop with
torchvision's sampling
(10 tries, then the center-crop fallback; optionally decoding only the crop window of a JPEG), flip, ColorJitter,
normalise;
eval Resize 256 + CenterCrop 224. Resizes are bilinear with antialiasing (as PIL) and stay in float (PIL rounds
to uint8 after each step: differences ≤ 0.5/255 per pixel, docs/DEVIATIONS.md).

The contrastive views built from these transforms (SupCon/SimCLR, MoCo v2) are `ltjax.data.contrastive_views`.

The torchvision transforms here are the ONE implementation every method uses (large-scale recipe, SBCL views,
RECORDS weak/strong views in `randaugment`, MoCo views in `contrastive_views`): `rrc_window` / `random_resized_crop`
(RandomResizedCrop), `jitter_params` / `apply_color_jitter` / `color_jitter` (ColorJitter with optional hue, ops in
a random order, branch-free; float input = torchvision's tensor arithmetic, uint8 input = PIL's), `grayscale`
(RandomGrayscale; float luma or PIL's integer luma by dtype).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence, Tuple


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
# Large-scale recipe (the official CIFAR/SVHN transforms): encoded image files, torchvision semantics.


@dataclasses.dataclass(frozen=True)
class ImageRecipe:
  """How a file-backed dataset turns encoded images into model inputs (torchvision's ImageNet recipe by default).

  train: RandomResizedCrop(image_size, scale, ratio, bilinear) → horizontal flip (p = 0.5 when `flip`) →
         ColorJitter(brightness, contrast, saturation; hue 0) in a random order → to [0, 1] → normalise.
  eval:  Resize(shorter side → eval_resize, bilinear) → CenterCrop(image_size) → to [0, 1] → normalise.
  color_jitter: (brightness, contrast, saturation) strengths; (0, 0, 0) = no ColorJitter (SS's iNat recipe).
  """

  image_size: int = 224
  eval_resize: int = 256
  scale: Tuple[float, float] = (0.08, 1.0)
  ratio: Tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
  flip: bool = True
  color_jitter: Tuple[float, float, float] = (0.4, 0.4, 0.4)
  # JPEG: decode only the crop window (decode_random_resized_crop). Off by default: exact torchvision pixels, and on
  # 500×375 JPEGs it measured no faster here (docs/BENCHMARKS.md).
  window_decode: bool = False


RRC_TRIES = 10  # torchvision RandomResizedCrop.get_params: 10 attempts, then a center-crop fallback


def rrc_window_from_uniforms(height, width, u_area, u_logratio, u_top, u_left, scale, ratio):
  """torchvision `RandomResizedCrop.get_params` given its random draws (all float32 in [0, 1)).

  For attempt t = 0..9: target_area = H·W·(s0 + (s1 − s0)·u_area[t]), aspect = exp(log r0 + (log r1 − log r0)·
  u_logratio[t]), w = round(√(target_area·aspect)), h = round(√(target_area/aspect)) (round half to even, as
  Python's round); the first attempt with 0 < w ≤ W and 0 < h ≤ H wins, with top = ⌊u_top·(H − h + 1)⌋ and
  left = ⌊u_left·(W − w + 1)⌋ (torch.randint(0, H − h + 1)). No attempt fits → the center crop of the largest
  window whose aspect lies in [r0, r1]: W/H < r0 → w = W, h = round(W/r0); W/H > r1 → h = H, w = round(H·r1);
  else the whole image; top = (H − h)//2, left = (W − w)//2.

  Returns int32 (top, left, h, w).
  """
  import tensorflow as tf
  hf, wf = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
  area = hf * wf
  target = area * (scale[0] + (scale[1] - scale[0]) * u_area)
  lr0, lr1 = math.log(ratio[0]), math.log(ratio[1])
  aspect = tf.exp(lr0 + (lr1 - lr0) * u_logratio)
  w = tf.cast(tf.round(tf.sqrt(target * aspect)), tf.int32)
  h = tf.cast(tf.round(tf.sqrt(target / aspect)), tf.int32)
  ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
  any_ok = tf.reduce_any(ok)
  first = tf.argmax(tf.cast(ok, tf.int32), output_type=tf.int32)
  h_t, w_t = h[first], w[first]
  top_t = tf.cast(tf.floor(u_top * tf.cast(height - h_t + 1, tf.float32)), tf.int32)
  left_t = tf.cast(tf.floor(u_left * tf.cast(width - w_t + 1, tf.float32)), tf.int32)
  top_t, left_t = tf.minimum(top_t, height - h_t), tf.minimum(left_t, width - w_t)  # u < 1 in exact arithmetic
  in_ratio = wf / hf
  w_f = tf.where(in_ratio < ratio[0], width,
                 tf.where(in_ratio > ratio[1], tf.cast(tf.round(hf * ratio[1]), tf.int32), width))
  h_f = tf.where(in_ratio < ratio[0], tf.cast(tf.round(wf / ratio[0]), tf.int32),
                 tf.where(in_ratio > ratio[1], height, height))
  top_f, left_f = (height - h_f) // 2, (width - w_f) // 2
  pick = lambda a, b: tf.where(any_ok, a, b)
  return pick(top_t, top_f), pick(left_t, left_f), pick(h_t, h_f), pick(w_t, w_f)


def rrc_window(height, width, seed, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)):
  """`rrc_window_from_uniforms` with its draws taken from the stateless int64 [2] `seed`."""
  import tensorflow as tf
  u = tf.random.stateless_uniform([2 * RRC_TRIES + 2], seed=seed, dtype=tf.float32)
  return rrc_window_from_uniforms(height, width, u[:RRC_TRIES], u[RRC_TRIES:2 * RRC_TRIES], u[2 * RRC_TRIES],
                                  u[2 * RRC_TRIES + 1], scale, ratio)


def decode_rgb(encoded):
  """Encoded JPEG/PNG/GIF/BMP bytes → uint8 [H, W, 3] (grayscale images are expanded to RGB)."""
  import tensorflow as tf
  image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
  image.set_shape([None, None, 3])
  return image


def decode_random_resized_crop(encoded, seed, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0),
                               window_decode: bool = True):
  """The RandomResizedCrop window of an encoded image, uint8 [h, w, 3].

  window_decode (JPEG only): decode just the window (tf.image.decode_and_crop_jpeg, far less work). Its pixels equal
  decoding then cropping except, for 4:2:0 JPEGs whose window ends before the image's right edge at an even column
  index (exclusive end), the window's last column (the chroma upsampling lacks its right neighbour there: ≤ 2 levels on
  smooth images, more on noise). False: decode the
  whole image, then crop (exactly torchvision's pixels before the resize). Other formats always decode whole.
  """
  import tensorflow as tf

  if not window_decode:
    image = decode_rgb(encoded)
    shape = tf.shape(image)
    top, left, h, w = rrc_window(shape[0], shape[1], seed, scale, ratio)
    return image[top:top + h, left:left + w]

  def jpeg():
    shape = tf.image.extract_jpeg_shape(encoded)
    top, left, h, w = rrc_window(shape[0], shape[1], seed, scale, ratio)
    return tf.image.decode_and_crop_jpeg(encoded, tf.stack([top, left, h, w]), channels=3)

  def other():
    image = decode_rgb(encoded)
    shape = tf.shape(image)
    top, left, h, w = rrc_window(shape[0], shape[1], seed, scale, ratio)
    return image[top:top + h, left:left + w]

  out = tf.cond(tf.io.is_jpeg(encoded), jpeg, other)
  out.set_shape([None, None, 3])
  return out


_GRAY = (0.299, 0.587, 0.114)  # PIL convert('L') weights, used by torchvision's ColorJitter on PIL images
HUE = 3  # index of the hue adjustment in a ColorJitter strengths tuple (brightness, contrast, saturation, hue)


def pil_luma(img):
  """PIL convert('L') of a uint8 RGB image [H, W, 3] → int32 [H, W]: (19595 R + 38470 G + 7471 B + 2^15) >> 16."""
  import tensorflow as tf
  x = tf.cast(img, tf.int32)
  return (x[..., 0] * 19595 + x[..., 1] * 38470 + x[..., 2] * 7471 + 32768) // 65536


def luma(x):
  """Float luma of float RGB x [H, W, 3] → [H, W, 1]: 0.299 R + 0.587 G + 0.114 B (PIL convert('L')'s weights)."""
  import tensorflow as tf
  return tf.reduce_sum(x * tf.constant(_GRAY, x.dtype), axis=-1, keepdims=True)


def grayscale(x):
  """torchvision Grayscale(num_output_channels=3) / RandomGrayscale's transform: the luma replicated to 3 channels,
  same dtype. float [0, 1] → `luma` (float weights); uint8 → `pil_luma` (PIL's integer convert('L'), what
  RandomGrayscale computes on PIL images). One-channel images are returned unchanged (torchvision keeps the channel
  count)."""
  import tensorflow as tf
  if x.shape[-1] is None:
    raise ValueError("grayscale needs a static channel count (tf.ensure_shape the image first)")
  if x.shape[-1] == 1:
    return x
  g = tf.cast(pil_luma(x)[..., None], x.dtype) if x.dtype == tf.uint8 else luma(x)
  return tf.tile(g, [1, 1, 3])


def jitter_params(seed, strengths: Sequence[float]):
  """ColorJitter's random draws for strengths (brightness, contrast, saturation[, hue]): factors f [len(strengths)]
  with f_k ~ U[max(0, 1 − s_k), 1 + s_k] for k < 3 and the hue shift f_3 ~ U[−hue, hue], and the application order
  [K] (a uniformly random permutation of the K active adjustments — those with a non-zero strength — as positions
  into the list `active` of their indices; torchvision's randperm(4) skipping the inactive ones has the same
  distribution)."""
  import tensorflow as tf
  strengths = tuple(float(s) for s in strengths)
  if len(strengths) not in (3, 4) or min(strengths) < 0:
    raise ValueError(f"ColorJitter strengths {strengths}: expected (brightness, contrast, saturation[, hue]) >= 0")
  active = [i for i, s in enumerate(strengths) if s]
  s_fac, s_order = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  u = tf.random.stateless_uniform([4], seed=s_fac, dtype=tf.float32)[:len(strengths)]  # Philox: u[:3] = a [3] draw
  lo = [max(0.0, 1.0 - s) for s in strengths[:3]] + [-s for s in strengths[3:]]
  hi = [1.0 + s for s in strengths[:3]] + list(strengths[3:])
  lo, hi = tf.constant(lo, tf.float32), tf.constant(hi, tf.float32)
  order = tf.argsort(tf.random.stateless_uniform([max(len(active), 1)], seed=s_order))
  return lo + (hi - lo) * u, order, active


def apply_color_jitter(x, factors, order, active: Sequence[int]):
  """Applies the adjustments `active[order[0]], active[order[1]], …` (0 brightness, 1 contrast, 2 saturation,
  3 hue) with the factors `factors[active[·]]` (`jitter_params`). Two arithmetics, chosen by x's dtype:

  float x ∈ [0, 1] [H, W, C] (torchvision's tensor semantics; large-scale recipe, SBCL and MoCo views): each
  adjustment is followed by a clip to [0, 1]:  0 x·f;  1 f·x + (1 − f)·mean(luma(x));  2 f·x + (1 − f)·luma(x);
  3 tf.image.adjust_hue(x, f) (HSV hue rotated by f turns).

  uint8 x [H, W, 3] (PIL semantics, `pil`; RECORDS weak view): each enhance op is PIL's Image.blend of x with a
  degenerate image D, ⌊clip(D + f·(x − D), 0, 255)⌋, with D = 0 (brightness), ⌊mean(pil_luma(x)) + ½⌋ (contrast)
  or pil_luma(x) (saturation); hue is tf.image.adjust_hue on x/255 rounded back to uint8 (PIL shifts the uint8 HSV
  hue instead: within rounding, docs/DEVIATIONS.md). Returns uint8.

  One-channel images: saturation and hue are identities and contrast blends with the image's own mean (torchvision
  for grayscale input); the PIL arithmetic needs RGB.

  Branch-free for brightness, contrast, saturation (tf.switch_case per position inside tf.data cost 3x in the
  large-scale pipeline, computing every candidate 2x): each is D + f·(x − D) resp. a·x + b·luma(x) + c, so one pass
  per position selects the coefficients by index. Hue, when active (RGB), sits at one position p of the order: ONE
  tf.switch_case on p picks the straight-line sequence "affine passes, hue, affine passes" with the hue at p. (The
  fully branch-free alternative — every affine pass once before and once after the hue, with identity coefficients
  on the wrong side — cost 0.67x the CPU rate of this at 224×224, benchmarks noted in docs/BENCHMARKS.md.)
  """
  import tensorflow as tf
  channels = x.shape[-1]
  if channels is None:
    raise ValueError("apply_color_jitter needs a static channel count (tf.ensure_shape the image first)")
  pil = x.dtype == tf.uint8
  if pil and channels != 3:
    raise ValueError(f"PIL (uint8) ColorJitter needs RGB images, got {channels} channels; replicate to RGB first")
  rgb = channels == 3
  active = list(active)
  if not active:
    return x
  f = tf.gather(factors, active)  # factors of the active adjustments, in `active` order
  kinds = tf.constant(active, tf.int32)
  gray_w = tf.constant(_GRAY, tf.float32)
  v = tf.cast(x, tf.float32) if pil else x

  hue_on = rgb and HUE in active
  identity_kinds = not rgb and any(k >= 2 for k in active)  # static: sat/hue are identities on one channel

  def affine(v, j):
    kind, fk = kinds[j], f[j]
    if identity_kinds:
      fk = tf.where(kind >= 2, 1.0, fk)
    if pil:
      g = tf.cast(pil_luma(v)[..., None], tf.float32)
      m = tf.floor(tf.reduce_mean(g) + 0.5)
      d = tf.where(kind == 2, g, tf.where(kind == 1, m, 0.0))
      return tf.floor(tf.clip_by_value(d + fk * (v - d), 0.0, 255.0))
    g = tf.reduce_sum(v * gray_w, axis=-1, keepdims=True) if rgb else v
    b = tf.where(kind == 2, 1.0 - fk, 0.0)
    c = tf.where(kind == 1, (1.0 - fk) * tf.reduce_mean(g), 0.0)
    return tf.clip_by_value(fk * v + b * g + c, 0.0, 1.0)

  n = len(active)
  if not hue_on:
    for k in range(n):
      v = affine(v, order[k])
  else:
    p = tf.argmax(tf.cast(tf.gather(kinds, order) == HUE, tf.int32), output_type=tf.int32)  # hue's position
    fh = f[active.index(HUE)]

    def hue(v):
      if pil:
        return tf.round(tf.clip_by_value(tf.image.adjust_hue(v / 255.0, fh) * 255.0, 0.0, 255.0))
      return tf.clip_by_value(tf.image.adjust_hue(v, fh), 0.0, 1.0)

    def hue_at(q, v=v):
      for k in range(q):
        v = affine(v, order[k])
      v = hue(v)
      for k in range(q + 1, n):
        v = affine(v, order[k])
      return v

    v = tf.switch_case(p, [lambda q=q: hue_at(q) for q in range(n)])
    v = tf.ensure_shape(v, x.shape)
  return tf.cast(v, tf.uint8) if pil else v


def color_jitter(x, seed, brightness: float, contrast: float, saturation: float, hue: float = 0.0):
  """torchvision ColorJitter(brightness, contrast, saturation, hue): factors drawn once per image, the active
  adjustments in a uniformly random order (`jitter_params`, `apply_color_jitter`). float x ∈ [0, 1] [H, W, C]:
  torchvision's tensor arithmetic; uint8 [H, W, 3]: PIL's (see apply_color_jitter)."""
  strengths = (brightness, contrast, saturation, hue)
  if not any(strengths):
    return x
  factors, order, active = jitter_params(seed, strengths)
  return apply_color_jitter(x, factors, order, active)


def random_resized_crop(image, seed, size: int, scale=(0.2, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)):
  """torchvision `RandomResizedCrop(size, scale, ratio)` on a uint8 [H, W, C] image → uint8 [size, size, C] (the
  SBCL, RECORDS and MoCo views; note the default scale is the views' (0.2, 1), not torchvision's (0.08, 1)).

  The box is `rrc_window` (torchvision's get_params: 10 attempts, then the central fallback); the crop is resized
  with bilinear interpolation with antialiasing (PIL's BILINEAR, which widens its filter when downscaling) and
  rounded back to uint8, as PIL returns uint8 images.
  """
  import tensorflow as tf
  shape = tf.shape(image)
  top, left, h, w = rrc_window(shape[0], shape[1], seed, scale, ratio)
  crop = tf.slice(image, tf.stack([top, left, 0]), tf.stack([h, w, -1]))
  crop = tf.ensure_shape(crop, [None, None, image.shape[-1]])  # keep the static channel count in graph mode
  out = tf.image.resize(tf.cast(crop, tf.float32), [size, size], method="bilinear", antialias=True)
  out = tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8)
  return tf.ensure_shape(out, [size, size, image.shape[-1]])


def resize_shorter_center_crop(image, resize: int, crop: int):
  """torchvision Resize(resize) + CenterCrop(crop): the shorter side becomes `resize` and the longer
  ⌊resize·long/short⌋ (bilinear, antialiased like PIL), then the central crop×crop window at
  top = round((h' − crop)/2), left = round((w' − crop)/2). uint8 [H, W, 3] → float32 [crop, crop, 3] in [0, 255]."""
  import tensorflow as tf
  shape = tf.shape(image)
  h, w = shape[0], shape[1]
  r = tf.constant(resize, tf.int32)
  long_h = tf.cast(tf.cast(r, tf.float64) * tf.cast(h, tf.float64) / tf.cast(w, tf.float64), tf.int32)
  long_w = tf.cast(tf.cast(r, tf.float64) * tf.cast(w, tf.float64) / tf.cast(h, tf.float64), tf.int32)
  nh, nw = tf.where(w <= h, long_h, r), tf.where(w <= h, r, long_w)
  x = tf.image.resize(image, tf.stack([nh, nw]), method="bilinear", antialias=True)
  top = tf.cast(tf.round(tf.cast(nh - crop, tf.float32) / 2.0), tf.int32)
  left = tf.cast(tf.round(tf.cast(nw - crop, tf.float32) / 2.0), tf.int32)
  x = x[top:top + crop, left:left + crop]
  x.set_shape([crop, crop, 3])
  return x


def large_scale_train(encoded, seed, recipe: ImageRecipe, mean, std):
  """Encoded bytes + int64 [2] seed → {'image': float32 [S, S, 3]} by `recipe`'s train pipeline (see ImageRecipe)."""
  import tensorflow as tf
  s_crop, s_flip, s_jit = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
  crop = decode_random_resized_crop(encoded, s_crop, recipe.scale, recipe.ratio, recipe.window_decode)
  size = recipe.image_size
  x = tf.image.resize(crop, [size, size], method="bilinear", antialias=True) / 255.0
  x = tf.clip_by_value(x, 0.0, 1.0)
  if recipe.flip:
    x = tf.image.stateless_random_flip_left_right(x, seed=s_flip)
  x = color_jitter(x, s_jit, *recipe.color_jitter)
  x = (x - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)
  x.set_shape([size, size, 3])
  return {"image": x}


def large_scale_eval(encoded, recipe: ImageRecipe, mean, std):
  """Encoded bytes → float32 [S, S, 3]: Resize(eval_resize) → CenterCrop(image_size) → normalise."""
  import tensorflow as tf
  x = resize_shorter_center_crop(decode_rgb(encoded), recipe.eval_resize, recipe.image_size) / 255.0
  return (x - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


# ----------------------------------------------------------------------------------------------------------------
# SimCLR / SupCon view (SBCL stage 1, SBCL's CIFAR transforms), torchvision tensor semantics after the crop
# ----------------------------------------------------------------------------------------------------------------
