"""ImageNet ResNets in torchvision's layout (the official ResNets): ResNet-50/152 (bottleneck v1.5), ResNeXt-50 32×4d,
and the
Places-LT model (frozen trunk minus its last block + a trainable bottleneck + linear head).

images [B, H, W, 3] float → conv1 7×7/2 (pad 3) → bn1 → ReLU → max-pool 3×3/2 (pad 1) → layer1..layer4 of Bottlenecks
(widths 64, 128, 256, 512, expansion 4; stride 2 in the first block of layers 2–4, on the 3×3 conv = "v1.5") →
adaptive average pool → features [B, 2048] → head `fc` → logits [B, C].  At 224² the final map is 7×7, so the
adaptive pool equals SS's fixed 7×7 pool; smaller inputs (tests) also work.

Bottleneck(planes, stride, groups g, base width w): width = ⌊planes·w/64⌋·g;
  y = relu(bn1(conv1 1×1 → width)); y = relu(bn2(conv2 3×3/stride, groups g → width)); y = bn3(conv3 1×1 → 4·planes);
  out = relu(y + shortcut(x)), shortcut = downsample_1(downsample_0(x)) (1×1/stride conv + BN) when the stride or the
  width changes, identity otherwise.

Parameter paths mirror torchvision's state_dict keys with '.' → '/' and `layerL.i` → `layerL_i`:
  torchvision                          ltjax (flax)
  conv1.weight [O,I,kh,kw]             params/conv1/kernel [kh,kw,I,O]
  bn1.{weight,bias}                    params/bn1/{scale,bias}
  bn1.{running_mean,running_var}       batch_stats/bn1/{mean,var}
  layer3.4.conv2.weight                params/layer3_4/conv2/kernel
  layer2.0.downsample.0.weight         params/layer2_0/downsample_0/kernel
  layer2.0.downsample.1.*              params|batch_stats/layer2_0/downsample_1/*
  fc.weight [C,2048], fc.bias [C]      params/fc/kernel [2048,C], params/fc/bias [C]
(`benchmarks/convert_torchvision.py` writes such a state_dict as the `.npz` that `init.workdir` accepts.)

Initialisation (the official ResNets, ARB/MI `models/resnet.py` and SS `ResNetFeature.py` agree): every conv N(0,
2/fan_out)
(Kaiming normal, mode fan_out, ReLU gain; fan_out = kh·kw·out_channels), BN γ = 1, β = 0 with NO zero-init of the
last BN γ; the classifier `fc` = Linear(2048, C) with PyTorch's default init (W, b ~ U(±1/√2048)), because both
repositories build the classifier as a separate module outside the init loop.  `head='cosine'` swaps in
NormedLinear.  `projection=(d0, …, dk)` adds the MLP `proj` on the pooled features (outputs['projection']).

Parameter counts with 1000 classes (= torchvision): ResNet-50 25,557,032; ResNet-152 60,192,808; ResNeXt-50 32×4d
25,028,904.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ltjax.models.conv import Conv
from ltjax.models.heads import HEADS, CosineHead, ProjectionHead
from ltjax.models.layers import BatchNorm, kaiming_normal_fan_out, pytorch_linear_bias

STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
EXPANSION = 4


def pytorch_default_kernel(key, shape, dtype=jnp.float32):
  """PyTorch's default Conv2d / Linear weight init, kaiming_uniform_(a=√5): U(±1/√fan_in).

  fan_in = prod(shape[:-1]) for HWIO conv kernels ([kh, kw, in/groups, out]) and [in, out] Dense kernels.
  """
  fan_in = 1
  for s in shape[:-1]:
    fan_in *= s
  bound = 1.0 / fan_in ** 0.5
  return jax.random.uniform(key, shape, dtype, -bound, bound)


class TorchLinear(nn.Module):
  """nn.Linear with PyTorch's default init: z = f W + b, W [D, C], b [C], both ~ U(±1/√D). float32."""

  features: int

  @nn.compact
  def __call__(self, f):
    d = f.shape[-1]
    w = self.param("kernel", pytorch_default_kernel, (d, self.features), jnp.float32)
    b = self.param("bias", pytorch_linear_bias(d), (self.features,), jnp.float32)
    return f.astype(jnp.float32) @ w + b


def make_head(kind: str, num_classes: int):
  """'linear' → TorchLinear (PyTorch default init, the ImageNet classifiers of the official ResNets), 'cosine' →
  NormedLinear."""
  if kind == "linear":
    return TorchLinear(num_classes, name="fc")
  if kind == "cosine":
    return CosineHead(num_classes, name="fc")
  raise ValueError(f"unknown head '{kind}' (known: {sorted(HEADS)})")


def _grouped_conv(features, kernel_size, strides, padding, groups, use_bias, kernel_init, dtype, name=None):
  """ltjax Conv (fast CPU weight gradient) for groups = 1, flax nn.Conv (feature_group_count) otherwise.

  Both store `kernel` [kh, kw, in/groups, out], the HWIO transpose of torchvision's [out, in/groups, kh, kw].
  """
  if groups == 1:
    return Conv(features, kernel_size, strides=strides, padding=padding, use_bias=use_bias,
                kernel_init=kernel_init, dtype=dtype, name=name)
  return nn.Conv(features, kernel_size, strides=strides, padding=padding, use_bias=use_bias,
                 feature_group_count=groups, kernel_init=kernel_init, dtype=dtype, name=name)


class Bottleneck(nn.Module):
  """torchvision Bottleneck (v1.5: the stride sits on the 3×3 conv). x [B,H,W,Cin] → [B,⌈H/s⌉,⌈W/s⌉,4·planes].

  train: BN mode (batch statistics and running-statistics update) — ignored when `frozen_bn`.
  kernel_init: conv weight init (Kaiming fan_out for the backbone; PyTorch default for Places' fresh block).
  """

  planes: int
  stride: int = 1
  groups: int = 1
  base_width: int = 64
  dtype: Any = jnp.float32
  kernel_init: Callable = kaiming_normal_fan_out
  frozen_bn: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    width = int(self.planes * (self.base_width / 64.0)) * self.groups
    out_ch = self.planes * EXPANSION
    conv = functools.partial(_grouped_conv, use_bias=False, kernel_init=self.kernel_init, dtype=self.dtype)
    norm = functools.partial(BatchNorm, use_running_average=not train or self.frozen_bn, dtype=self.dtype)
    s = (self.stride, self.stride)
    y = nn.relu(norm(name="bn1")(conv(width, (1, 1), (1, 1), ((0, 0), (0, 0)), 1, name="conv1")(x)))
    y = nn.relu(norm(name="bn2")(conv(width, (3, 3), s, ((1, 1), (1, 1)), self.groups, name="conv2")(y)))
    y = norm(name="bn3")(conv(out_ch, (1, 1), (1, 1), ((0, 0), (0, 0)), 1, name="conv3")(y))
    if self.stride != 1 or x.shape[-1] != out_ch:
      x = conv(out_ch, (1, 1), s, ((0, 0), (0, 0)), 1, name="downsample_0")(x)
      x = norm(name="downsample_1")(x)
    return nn.relu(y + x)


def resnet_trunk(x, train: bool, *, stage_blocks: Sequence[int], groups: int = 1, base_width: int = 64,
                 dtype: Any = jnp.float32, last_stage_blocks: Optional[int] = None, frozen: bool = False):
  """Stem + layer1..layer4 → the final feature map [B, ⌈H/32⌉, ⌈W/32⌉, 2048] in `dtype`.

  Call it inside a module's compact `__call__`: the submodules are created in that module's scope, so the parameter
  paths are torchvision's (`conv1/…`, `bn1/…`, `layer1_0/…`).
  last_stage_blocks: keep only this many blocks of layer4 (Places-LT drops the last one); None keeps all.
  frozen: BN always in eval mode (running statistics, nothing updated), whatever `train` says.
  """
  bn_train = train and not frozen
  x = x.astype(dtype)
  x = Conv(64, (7, 7), strides=(2, 2), padding=((3, 3), (3, 3)), use_bias=False,
           kernel_init=kaiming_normal_fan_out, dtype=dtype, name="conv1")(x)
  x = nn.relu(BatchNorm(use_running_average=not bn_train, dtype=dtype, name="bn1")(x))
  x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))  # pads with −inf, as PyTorch
  for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), stage_blocks)):
    if stage == 3 and last_stage_blocks is not None:
      n = last_stage_blocks
    for b in range(n):
      x = Bottleneck(planes, stride=2 if stage > 0 and b == 0 else 1, groups=groups, base_width=base_width,
                     dtype=dtype, frozen_bn=not bn_train, name=f"layer{stage + 1}_{b}")(x, train=bn_train)
  return x


def _outputs(features, num_classes, head, projection):
  out = {"logits": make_head(head, num_classes)(features).astype(jnp.float32), "features": features}
  if projection:
    out["projection"] = ProjectionHead(tuple(projection), name="proj")(features)
  return out


class ResNetImageNet(nn.Module):
  """torchvision ResNet / ResNeXt. `__call__(images [B,H,W,3], train)` → {'logits': [B,C], 'features': [B,2048]}
  (+ 'projection': [B, projection[-1]] when `projection` is non-empty).

  depth: 50 | 101 | 152; groups / base_width: 1 / 64 for ResNets, 32 / 4 for ResNeXt-50 32×4d.
  dtype: compute dtype (e.g. jnp.bfloat16); parameters, BN statistics, features and logits are float32.
  Train mode needs `mutable=['batch_stats']`.
  """

  num_classes: int
  depth: int = 50
  groups: int = 1
  base_width: int = 64
  head: str = "linear"
  dtype: Any = jnp.float32
  projection: Sequence[int] = ()

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.depth not in STAGE_BLOCKS:
      raise ValueError(f"ImageNet ResNet depth must be one of {sorted(STAGE_BLOCKS)}, got {self.depth}")
    if self.head not in HEADS:
      raise ValueError(f"unknown head '{self.head}' (known: {sorted(HEADS)})")
    x = resnet_trunk(x, train, stage_blocks=STAGE_BLOCKS[self.depth], groups=self.groups,
                     base_width=self.base_width, dtype=self.dtype)
    features = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
    return _outputs(features, self.num_classes, self.head, self.projection)


class PlacesResNet(nn.Module):
  """Places-LT model (the official ResNets, ARB/MI `models/resnet_places.py`, depth chosen explicitly).

  trunk = ImageNet ResNet-`depth` stem + layer1..3 + layer4 minus its last block, run in eval mode (BN running
          statistics, never updated) with its output under stop_gradient: frozen;
  block = a fresh Bottleneck(2048 → 512 → 2048, no downsample, PyTorch default init), trained (BN in train mode);
  fc    = adaptive average pool + Linear(2048, C) (PyTorch default init).
  The trunk's parameter paths equal ResNetImageNet's (`conv1/…`, `layer4_0/…`), so a converted torchvision
  checkpoint loads with `init.exclude=('^fc/', '^block/')`; the checkpoint's `layer4_<last>` is ignored.  Pair it with
  `train.trainable='^(block|fc)/'` so the optimizer (and weight decay) only sees block + classifier, as upstream.
  """

  num_classes: int
  depth: int = 152
  head: str = "linear"
  dtype: Any = jnp.float32
  projection: Sequence[int] = ()

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.depth not in STAGE_BLOCKS:
      raise ValueError(f"Places ResNet depth must be one of {sorted(STAGE_BLOCKS)}, got {self.depth}")
    blocks = STAGE_BLOCKS[self.depth]
    x = resnet_trunk(x, False, stage_blocks=blocks, dtype=self.dtype, last_stage_blocks=blocks[3] - 1, frozen=True)
    x = jax.lax.stop_gradient(x)
    x = Bottleneck(512, stride=1, dtype=self.dtype, kernel_init=pytorch_default_kernel, name="block")(x, train=train)
    features = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
    return _outputs(features, self.num_classes, self.head, self.projection)


MODELS = {
    "resnet50": functools.partial(ResNetImageNet, depth=50),
    "resnet101": functools.partial(ResNetImageNet, depth=101),
    "resnet152": functools.partial(ResNetImageNet, depth=152),
    "resnext50_32x4d": functools.partial(ResNetImageNet, depth=50, groups=32, base_width=4),
    "places_resnet50": functools.partial(PlacesResNet, depth=50),
    "places_resnet152": functools.partial(PlacesResNet, depth=152),
}
