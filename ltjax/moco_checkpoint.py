"""Official MoCo checkpoints (`moco_ckpt_XXXX.pth.tar`, spec ARB_AND_SEMISELF §3.5–3.7) → ltjax `.npz` weights.

What the SS loader does with such a file (§3.5 "Weight loading", §3.2 `--pretrained_model`): keep the keys that
start with `module.encoder_q.` except the encoder's `fc` (the MoCo MLP head), strip the prefix, and copy them into
the feature model. This module does the same and writes the result in the layout `init.workdir` reads: an `.npz`
whose keys are '/'-joined flax paths, `params/<module path>/<name>` and `batch_stats/<module path>/<name>`.

torchvision → ltjax names (the ImageNet ResNets of `ltjax/models/resnet_imagenet.py`):
  <m>.weight [O, I, kh, kw]  (conv)      params/<m>/kernel [kh, kw, I, O]
  <m>.weight [O, I]          (linear)    params/<m>/kernel [I, O]
  <m>.weight [C], <m>.bias [C] (BN)      params/<m>/scale, params/<m>/bias
  <m>.bias [O]               (linear)    params/<m>/bias
  <m>.running_mean / running_var         batch_stats/<m>/mean, batch_stats/<m>/var
  <m>.num_batches_tracked                dropped (PyTorch bookkeeping)
  module paths: `layerL.i.` → `layerL_i/`, `downsample.0` / `downsample.1` → `downsample_0` / `downsample_1`,
  the MoCo MLP `fc.0` / `fc.2` → `proj/Dense_0` / `proj/Dense_1` (kept only with `keep_projection=True`).

`convert_state_dict` takes any mapping name → array (numpy arrays, or torch tensors when torch is installed);
reading a `.pth.tar` needs PyTorch (`torch.load`, optional dependency). Command line:

  python -m ltjax.moco_checkpoint moco_ckpt_0199.pth.tar runs/moco_r50.npz [--keep-projection]
"""

from __future__ import annotations

import argparse
import re
from typing import Dict, Mapping, Optional

import numpy as np

MOCO_PREFIX = "module.encoder_q."
_PROJ = {"fc.0": "proj/Dense_0", "fc.2": "proj/Dense_1"}


def _module_path(module: str) -> str:
  m = re.sub(r"^layer(\d+)\.(\d+)\.", r"layer\1_\2.", module)
  m = re.sub(r"downsample\.(\d+)", r"downsample_\1", m)
  return m.replace(".", "/")


def convert_key(name: str, value: np.ndarray, is_bn: bool) -> Optional[tuple]:
  """(flat ltjax key, converted array) for one torchvision state-dict entry, or None for bookkeeping entries."""
  module, _, leaf = name.rpartition(".")
  if leaf == "num_batches_tracked":
    return None
  path = _PROJ.get(module) or _module_path(module)
  v = np.asarray(value)
  if leaf == "running_mean":
    return f"batch_stats/{path}/mean", v.astype(np.float32)
  if leaf == "running_var":
    return f"batch_stats/{path}/var", v.astype(np.float32)
  if leaf == "weight":
    if v.ndim == 4:
      return f"params/{path}/kernel", np.transpose(v, (2, 3, 1, 0)).astype(np.float32)
    if v.ndim == 2:
      return f"params/{path}/kernel", v.T.astype(np.float32)
    if v.ndim == 1 and is_bn:
      return f"params/{path}/scale", v.astype(np.float32)
  if leaf == "bias" and v.ndim == 1:
    return f"params/{path}/bias", v.astype(np.float32)
  raise ValueError(f"cannot map state-dict entry '{name}' with shape {v.shape} to an ltjax parameter")


def _numpy(v):
  if hasattr(v, "detach"):  # a torch tensor
    v = v.detach().cpu().numpy()
  return np.asarray(v)


def convert_state_dict(state_dict: Mapping[str, object], *, prefix: str = MOCO_PREFIX,
                       keep_projection: bool = False) -> Dict[str, np.ndarray]:
  """MoCo (or plain torchvision, with prefix='') state dict → {flat ltjax key: float32 array}.

  Keys outside `prefix` (the key encoder `module.encoder_k.*`, the queue, `module.queue_ptr`) are ignored, as the
  official loader ignores them; the encoder's `fc` (the MoCo MLP, or a torchvision classifier) is dropped unless
  `keep_projection` (then `fc.0`/`fc.2` become `proj/Dense_0`/`proj/Dense_1`). Every other entry must map, or a
  ValueError names it; a prefix that matches nothing is an error too.
  """
  entries = {k[len(prefix):]: _numpy(v) for k, v in state_dict.items() if k.startswith(prefix)}
  if not entries:
    some = ", ".join(list(state_dict)[:5])
    raise ValueError(f"no state-dict key starts with '{prefix}' (first keys: {some}); for a plain torchvision "
                     "state dict pass prefix=''")
  bn_modules = {k.rpartition(".")[0] for k in entries if k.endswith(".running_mean")}
  out: Dict[str, np.ndarray] = {}
  for name, value in entries.items():
    module = name.rpartition(".")[0]
    if module.split(".")[0] == "fc" and not (keep_projection and module in _PROJ):
      continue
    r = convert_key(name, value, module in bn_modules)
    if r is None:
      continue
    key, arr = r
    if key in out:
      raise ValueError(f"two state-dict entries map to '{key}'")
    out[key] = arr
  return out


def load_torch_checkpoint(path: str) -> Dict[str, object]:
  """The `state_dict` of a `.pth.tar` (MoCo saves {'epoch', 'arch', 'state_dict', 'optimizer'}); needs PyTorch."""
  try:
    import torch
  except ImportError as e:  # optional dependency
    raise ImportError("reading a .pth.tar checkpoint needs PyTorch (pip install torch); or convert it on a machine "
                      "with PyTorch and copy the .npz") from e
  ckpt = torch.load(path, map_location="cpu", weights_only=False)
  return ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt


def convert_file(src: str, dst: str, keep_projection: bool = False) -> Dict[str, np.ndarray]:
  """Convert a MoCo `.pth.tar` to an `.npz` for `init.workdir`; returns the arrays written."""
  arrays = convert_state_dict(load_torch_checkpoint(src), keep_projection=keep_projection)
  np.savez(dst, **arrays)
  return arrays


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("src", help="official MoCo checkpoint (moco_ckpt_XXXX.pth.tar)")
  p.add_argument("dst", help="output .npz (give it to --config.init.workdir)")
  p.add_argument("--keep-projection", action="store_true", help="also write the MLP head as proj/Dense_0, Dense_1")
  a = p.parse_args(argv)
  arrays = convert_file(a.src, a.dst, a.keep_projection)
  print(f"wrote {len(arrays)} arrays to {a.dst}")


if __name__ == "__main__":
  main()
