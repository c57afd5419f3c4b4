"""Image augmentation as JAX ops, for the device data path (`ltjax.data.device`): per example, batched with vmap,
run inside the compiled train step. The host path's TF ops (`ltjax.data.augment`) define the distributions; these
draw from the same distributions with JAX's stateless keys, so the random draws differ between the two paths but
an example's augmentation is still a pure function of (seed, epoch, position in the epoch).

An augmentation here is `fn(images uint8 [B, H, W, C], keys uint32 [B, 2]) -> {view name: float32 [B, ...]}`: one
raw PRNG key per example (`ltjax.data.device` derives it from the example's epoch and position).

Standard recipe (Cao et al., LDAM-DRW, and every CIFAR code base since; torchvision
`RandomCrop(32, padding=4)`, `RandomHorizontalFlip()`, `ToTensor()`, `Normalize(mean, std)`):
  x ← pad(x, p) with zeros (on the uint8 image, as torchvision pads the PIL image with black pixels)
  (oy, ox) ~ U{0, …, 2p}²;  x ← x[oy:oy+H, ox:ox+W]
  f ~ Bernoulli(½);  x ← x[:, ::-1] if f
  x ← (x/255 − mean) / std   per channel
"""

from __future__ import annotations

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
