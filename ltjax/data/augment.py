"""Per-example augmentation as TF ops, seeded statelessly so an example's augmentation is a function of
(seed, epoch, position in the epoch) alone: the same on 1 device or 8, and after a resume.

CIFAR recipe (spec ARB_AND_SEMISELF §1.4): zero-pad by `padding` pixels, random crop back to H×W, horizontal flip
with p = 0.5, scale to [0, 1], normalise x ← (x − mean) / std per channel. Padding happens on the uint8 image, as
torchvision's RandomCrop(padding=4) pads the PIL image with black pixels.

Large-scale recipe (§1.4, file-backed datasets; `ImageRecipe`): RandomResizedCrop with torchvision's sampling
(10 tries, then the center-crop fallback) decoding only the crop window of a JPEG, flip, ColorJitter, normalise;
eval Resize 256 + CenterCrop 224. Resizes are bilinear with antialiasing (as PIL) and stay in float (PIL rounds
to uint8 after each step: differences ≤ 0.5/255 per pixel, docs/DEVIATIONS.md).
"""

from __future__ import annotations

import dataclasses
import functools
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
# Large-scale recipe (spec ARB_AND_SEMISELF §1.4): encoded image files, torchvision semantics.


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
  window_decode: bool = True  # JPEG: decode only the crop window (see decode_random_resized_crop)


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
  index (exclusive end), the window's last column (the chroma upsampling lacks its right neighbour there: ≤ 2 levels on smooth images, more on noise). False: decode the
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


def jitter_params(seed, strengths: Sequence[float]):
  """ColorJitter's random draws: factors f [3] with f_k ~ U[max(0, 1 − s_k), 1 + s_k] (brightness, contrast,
  saturation) and the application order [K] (a random permutation of the K active adjustments, as positions into
  the list of active ones)."""
  import tensorflow as tf
  active = [i for i, s in enumerate(strengths) if s]
  s_fac, s_order = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  u = tf.random.stateless_uniform([3], seed=s_fac, dtype=tf.float32)
  lo = tf.constant([max(0.0, 1.0 - s) for s in strengths], tf.float32)
  hi = tf.constant([1.0 + s for s in strengths], tf.float32)
  order = tf.argsort(tf.random.stateless_uniform([max(len(active), 1)], seed=s_order))
  return lo + (hi - lo) * u, order, active


def apply_color_jitter(x, factors, order, active: Sequence[int]):
  """Applies the adjustments `active[order[0]], active[order[1]], …` to float RGB x ∈ [0, 1] [H, W, 3], each
  followed by a clip to [0, 1]:  0 brightness x·f;  1 contrast f·x + (1 − f)·mean(gray(x));
  2 saturation f·x + (1 − f)·gray(x);  gray = 0.299 R + 0.587 G + 0.114 B (PIL's convert('L'))."""
  import tensorflow as tf
  gray_w = tf.constant(_GRAY, tf.float32)

  def gray(img):
    return tf.reduce_sum(img * gray_w, axis=-1, keepdims=True)

  ops = [lambda img: img * factors[0],
         lambda img: factors[1] * img + (1.0 - factors[1]) * tf.reduce_mean(gray(img)),
         lambda img: factors[2] * img + (1.0 - factors[2]) * gray(img)]

  def apply(i, img):
    return tf.clip_by_value(ops[i](img), 0.0, 1.0)

  for k in range(len(active)):
    x = tf.switch_case(order[k], [functools.partial(apply, i, x) for i in active])
  return x


def color_jitter(x, seed, brightness: float, contrast: float, saturation: float):
  """torchvision ColorJitter(brightness, contrast, saturation, hue=0) on float RGB x ∈ [0, 1] [H, W, 3]: factors
  drawn once per image, the active adjustments in a random order (`jitter_params`, `apply_color_jitter`)."""
  strengths = (brightness, contrast, saturation)
  if not any(strengths):
    return x
  factors, order, active = jitter_params(seed, strengths)
  return apply_color_jitter(x, factors, order, active)


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
