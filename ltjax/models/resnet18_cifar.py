"""The CIFAR ResNet-18 of RECORDS / CORR / SoLar (`models/resnet.py`, SupCon style; RECORDS `models/resnet.py`).

images [B, H, W, C_in] → stem conv3×3(64, stride 1, padding 1, no bias) → BN → ReLU (no max-pool) → 4 stages of
2 BasicBlocks (widths 64, 128, 256, 512; strides 1, 2, 2, 2) → global average pool → features f [B, 512] (post-ReLU,
non-negative) → `fc` Linear(512, C) with bias → logits [B, C]. 11,173,962 parameters with a 10-class head.

BasicBlock: relu(BN(conv3×3(relu(BN(conv3×3_s(x))))) + shortcut(x)), shortcut = BN(conv1×1_s(x)) (option B) when
s ≠ 1 or the width changes, identity otherwise.

Init: convs Kaiming-normal with fan_out (ReLU gain, not truncated); BN γ = 1, β = 0 (no zero-init residual); `fc`
PyTorch's nn.Linear default, weight and bias U(±1/√512). BatchNorm is ltjax's PyTorch-faithful one.
Parameter paths: `fc/kernel` [512, C] (PyTorch's weight transposed), `fc/bias` [C].

`projection` (a tuple of widths, default ()): the shared `heads.ProjectionHead` named `proj` on the pooled features;
the model then also returns `outputs['projection']` (not normalised).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ltjax.models.conv import Conv
from ltjax.models.heads import ProjectionHead
from ltjax.models.layers import BatchNorm, kaiming_normal_fan_out, pytorch_linear_bias

PAD1 = ((1, 1), (1, 1))


def pytorch_linear_kernel(key, shape, dtype=jnp.float32):
  """nn.Linear's default weight init for a flax kernel [in, out]: U(−1/√in, 1/√in) (kaiming_uniform with a = √5)."""
  bound = 1.0 / shape[0] ** 0.5
  return jax.random.uniform(key, shape, dtype, -bound, bound)


class TorchDense(nn.Module):
  """nn.Linear with PyTorch's default init: y = x W + b, W [in, out] and b [out] both U(±1/√in)."""

  features: int

  @nn.compact
  def __call__(self, x):
    d = x.shape[-1]
    w = self.param("kernel", pytorch_linear_kernel, (d, self.features), jnp.float32)
    b = self.param("bias", pytorch_linear_bias(d), (self.features,), jnp.float32)
    return x.astype(jnp.float32) @ w + b


class BasicBlockB(nn.Module):
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
      x = self.conv(self.planes, (1, 1), strides=(self.stride, self.stride), padding=((0, 0), (0, 0)))(x)
      x = self.norm()(x)
    return nn.relu(y + x)


class ResNet18Cifar(nn.Module):
  """`__call__(images, train)` → {'logits': [B, C] float32, 'features': [B, 512] float32[, 'projection']}.

  head: only 'linear' (the upstream `use_norm=False`, scale 1). dtype: compute dtype (parameters, BN statistics,
  features and logits stay float32). Train mode needs `mutable=['batch_stats']`.
  """

  num_classes: int
  head: str = "linear"
  blocks: Sequence[int] = (2, 2, 2, 2)
  width: Sequence[int] = (64, 128, 256, 512)
  dtype: Any = jnp.float32
  projection: tuple = ()
  conv: Callable[..., nn.Module] = Conv

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.head != "linear":
      raise ValueError(f"resnet18_cifar has a linear classifier only (upstream use_norm=False), got head "
                       f"'{self.head}'")
    conv = functools.partial(self.conv, use_bias=False, kernel_init=kaiming_normal_fan_out, dtype=self.dtype)
    norm = functools.partial(BatchNorm, use_running_average=not train, dtype=self.dtype)
    x = x.astype(self.dtype)
    x = nn.relu(norm()(conv(self.width[0], (3, 3), strides=(1, 1), padding=PAD1)(x)))
    for stage, (n, planes) in enumerate(zip(self.blocks, self.width)):
      for b in range(n):
        x = BasicBlockB(planes, 2 if stage > 0 and b == 0 else 1, conv, norm)(x)
    features = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
    logits = TorchDense(self.num_classes, name="fc")(features)
    out = {"logits": logits.astype(jnp.float32), "features": features}
    if self.projection:
      out["projection"] = ProjectionHead(tuple(self.projection), name="proj")(features).astype(jnp.float32)
    return out
