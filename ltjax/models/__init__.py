"""Model registry: `config.model.name` names a key of MODELS; `create_model` builds the Flax module.

Every model's `apply(variables, images [B,H,W,C] float, train=bool, mutable=['batch_stats'] if train)` returns
{'logits': [B, num_classes] float32, 'features': [B, D] float32} (and 'projection' [B, P] float32 when built with
`projection=(…, P)`); variables are {'params', 'batch_stats'}.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp

from ltjax.models.resnet18_cifar import ResNet18Cifar
from ltjax.models.resnet_cifar import ResNetCifar
from ltjax.models.resnet_imagenet import MODELS as IMAGENET_MODELS

MODELS = {f"resnet{d}": functools.partial(ResNetCifar, depth=d) for d in (8, 20, 32, 44, 56, 110)}
MODELS.update(IMAGENET_MODELS)  # resnet50/101/152, resnext50_32x4d, places_resnet50/152 (torchvision layout)
MODELS["resnet18_cifar"] = ResNet18Cifar  # RECORDS / CORR / SoLar (RECORDS `models/resnet.py`)
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def create_model(name: str, num_classes: int, head: str = "linear", dtype="float32", **kw):
  """MODELS[name](num_classes=, head=, dtype=, **kw); dtype is 'float32' | 'bfloat16' or a jnp dtype."""
  if name not in MODELS:
    raise ValueError(f"unknown model '{name}' (known: {sorted(MODELS)})")
  if isinstance(dtype, str):
    if dtype not in DTYPES:
      raise ValueError(f"unknown dtype '{dtype}' (known: {sorted(DTYPES)})")
    dtype = DTYPES[dtype]
  return MODELS[name](num_classes=num_classes, head=head, dtype=dtype, **kw)
