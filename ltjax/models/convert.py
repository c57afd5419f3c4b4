"""torchvision ResNet / ResNeXt state_dicts → ltjax variables (numpy only; torch is never imported here).

`torchvision_to_flax(state_dict)` maps every tensor of a torchvision-layout state_dict (values as numpy arrays) to
the '/'-joined flax paths `params/...` and `batch_stats/...` of `ltjax.models.resnet_imagenet` — the `.npz` layout
that `config.init.workdir` accepts (ltjax.train.pretrained):

  conv weight [O, I/g, kh, kw]     → params/<path>/kernel [kh, kw, I/g, O]      (transpose 2, 3, 1, 0)
  bn weight, bias                  → params/<path>/scale, params/<path>/bias
  bn running_mean, running_var     → batch_stats/<path>/mean, batch_stats/<path>/var
  bn num_batches_tracked           → dropped
  fc.weight [C, D], fc.bias [C]    → params/fc/kernel [D, C], params/fc/bias
  fc.0.*, fc.2.* (MoCo v2's MLP)   → params/proj/Dense_0/*, params/proj/Dense_1/* (the `projection` head)
with <path> = the torch name with `layerL.i.` → `layerL_i/` and `downsample.0/1` → `downsample_0/1`.
`strip_prefix` removes a leading prefix first (e.g. 'module.' of DataParallel checkpoints, 'module.encoder_q.' of
MoCo). The command line is ltjax/tools/convert_torchvision.py.
"""

from __future__ import annotations

import re
from typing import Dict, Mapping

import numpy as np

from ltjax.errors import ConversionError  # noqa: F401 (re-exported)

_BLOCK = re.compile(r"^layer(\d)\.(\d+)\.(.+)$")
_BN_FIELDS = {"weight": ("params", "scale"), "bias": ("params", "bias"), "running_mean": ("batch_stats", "mean"),
              "running_var": ("batch_stats", "var")}


def _module_path(name: str) -> str:
  m = _BLOCK.match(name)
  if m:
    layer, idx, rest = m.groups()
    rest = rest.replace("downsample.0", "downsample_0").replace("downsample.1", "downsample_1")
    return f"layer{layer}_{idx}/{rest}"
  return name


def torchvision_to_flax(state_dict: Mapping[str, np.ndarray], strip_prefix: str = "") -> Dict[str, np.ndarray]:
  """{torch key: array} → {'params/…' | 'batch_stats/…': array} (float32). Raises ConversionError on keys outside
  the torchvision ResNet layout."""
  out: Dict[str, np.ndarray] = {}
  for key, value in state_dict.items():
    if strip_prefix:
      if not key.startswith(strip_prefix):
        continue
      key = key[len(strip_prefix):]
    value = np.asarray(value)
    module, _, field = key.rpartition(".")
    if field == "num_batches_tracked":
      continue
    path = _module_path(module)
    leaf = path.rsplit("/", 1)[-1]
    mlp = re.fullmatch(r"fc\.(\d+)", module)
    if mlp:  # MoCo v2's MLP head fc = Sequential(Linear, ReLU, Linear) → the projection head proj/Dense_k
      if int(mlp.group(1)) % 2:
        raise ConversionError(f"unexpected tensor {key!r} in an MLP head (Linear layers sit at even indices)")
      path = f"proj/Dense_{int(mlp.group(1)) // 2}"
    if module == "fc" or mlp:
      if field == "weight":
        out[f"params/{path}/kernel"] = value.T.astype(np.float32)
      elif field == "bias":
        out[f"params/{path}/bias"] = value.astype(np.float32)
      else:
        raise ConversionError(f"unexpected classifier tensor {key!r}")
    elif leaf.startswith("conv") or leaf == "downsample_0":
      if field != "weight" or value.ndim != 4:
        raise ConversionError(f"unexpected convolution tensor {key!r} with shape {value.shape} (convs have no bias)")
      out[f"params/{path}/kernel"] = np.transpose(value, (2, 3, 1, 0)).astype(np.float32)
    elif leaf.startswith("bn") or leaf == "downsample_1":
      if field not in _BN_FIELDS:
        raise ConversionError(f"unexpected BatchNorm tensor {key!r}")
      coll, name = _BN_FIELDS[field]
      out[f"{coll}/{path}/{name}"] = value.astype(np.float32)
    else:
      raise ConversionError(f"{key!r} is not part of a torchvision ResNet (conv1, bn1, layer1-4, fc); pass "
                            "strip_prefix for wrapped checkpoints such as 'module.' or 'module.encoder_q.'")
  if not out:
    raise ConversionError(f"no tensors converted (strip_prefix={strip_prefix!r} matched nothing?)")
  return out
