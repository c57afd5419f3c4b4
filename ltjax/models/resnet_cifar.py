"""CIFAR ResNets (He et al. 2016, §4.2) with option-A shortcuts, as in LDAM-DRW, imbalanced-semi-self and MiSLAS.

images [B, H, W, C_in] float → stem conv3×3(16) → BN → ReLU → 3 stages × n BasicBlocks (widths 16, 32, 64; stride 2
at the first block of stages 2 and 3) → global average pool → features [B, 64] → head `fc` → logits [B, C].
depth = 6n + 2 (ResNet-32: n = 5, 464,154 parameters with a 10-class linear head).

All 3×3 convolutions use PyTorch's padding=1, i.e. explicit ((1, 1), (1, 1)) — not 'SAME', which for stride 2 on
even sizes pads (0, 1) — and no bias. Parameter paths: the classifier lives under `fc/` (`fc/kernel`, `fc/bias`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from ltjax.models.conv import Conv
from ltjax.models.heads import HEADS, ProjectionHead
from ltjax.models.layers import BatchNorm, kaiming_normal_fan_in

PAD1 = ((1, 1), (1, 1))


def option_a_shortcut(x, planes: int):
  """x [B, H, W, C] → x[:, ::2, ::2, :] zero-padded with planes//4 channels on each side → [B, ⌈H/2⌉, ⌈W/2⌉, planes]."""
  p = planes // 4
  if x.shape[-1] + 2 * p != planes:
    raise ValueError(f"option-A shortcut needs planes = 2·in_planes, got {x.shape[-1]} → {planes}")
  return jnp.pad(x[:, ::2, ::2, :], ((0, 0), (0, 0), (0, 0), (p, p)))


class BasicBlock(nn.Module):
  """relu(BN(conv3×3(relu(BN(conv3×3_s(x))))) + shortcut(x)); shortcut = option A when s ≠ 1 or width changes."""

  planes: int
  stride: int
  conv: Callable[..., nn.Module]
  norm: Callable[..., nn.Module]

  @nn.compact
  def __call__(self, x):
    y = self.conv(self.planes, (3, 3), strides=(self.stride, self.stride), padding=PAD1)(x)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.planes, (3, 3), strides=(1, 1), padding=PAD1)(y)
    y = self.norm()(y)
    if self.stride != 1 or x.shape[-1] != self.planes:
      x = option_a_shortcut(x, self.planes)
    return nn.relu(y + x)


class ResNetCifar(nn.Module):
  """CIFAR ResNet-(6n+2). `__call__(images [B,H,W,C_in], train)` → {'logits': [B, num_classes], 'features': [B,
  width[-1]]}.

  dtype: compute dtype of convs and activations (e.g. jnp.bfloat16); parameters, BN statistics, features and logits
    are always float32.
  conv: convolution factory called as `conv(features, kernel_size, strides=, padding=, use_bias=False,
    kernel_init=, dtype=)` returning a module (default flax.linen.Conv); swap in a faster implementation here.
  head: 'linear' (LinearHead) or 'cosine' (CosineHead / NormedLinear).
  projection: () or the widths of a projection MLP `proj` on the features (ProjectionHead, e.g. (64, 128) for
    SupConResNet); when given, the output also holds 'projection' [B, projection[-1]] (not normalised).
  Train mode (`train=True`) needs `mutable=['batch_stats']`.
  """

  num_classes: int
  depth: int = 32
  head: str = "linear"
  width: Sequence[int] = (16, 32, 64)
  dtype: Any = jnp.float32
  conv: Callable[..., nn.Module] = Conv  # XLA conv; faster weight gradient on CPU (ltjax/models/conv.py)
  projection: Sequence[int] = ()

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.depth < 8 or (self.depth - 2) % 6:
      raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1, got {self.depth}")
    if self.head not in HEADS:
      raise ValueError(f"unknown head '{self.head}' (known: {sorted(HEADS)})")
    n = (self.depth - 2) // 6
    conv = functools.partial(self.conv, use_bias=False, kernel_init=kaiming_normal_fan_in, dtype=self.dtype)
    norm = functools.partial(BatchNorm, use_running_average=not train, dtype=self.dtype)
    x = x.astype(self.dtype)
    x = nn.relu(norm()(conv(self.width[0], (3, 3), strides=(1, 1), padding=PAD1)(x)))
    for stage, planes in enumerate(self.width):
      for b in range(n):
        x = BasicBlock(planes, 2 if stage > 0 and b == 0 else 1, conv, norm)(x)
    features = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
    logits = HEADS[self.head](self.num_classes, name="fc")(features)
    out = {"logits": logits.astype(jnp.float32), "features": features}
    if self.projection:
      out["projection"] = ProjectionHead(tuple(self.projection), name="proj")(features)
    return out
