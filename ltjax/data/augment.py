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
