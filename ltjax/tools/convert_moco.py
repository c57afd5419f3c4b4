"""Official MoCo checkpoints (`moco_ckpt_XXXX.pth.tar`, imbalanced-semi-self `imagenet_inat/main.py`;
imbalanced-semi-self's flags) → ltjax `.npz` weights.

What the SS loader does with such a file (imbalanced-semi-self `imagenet_inat/main.py` "Weight loading",
imbalanced-semi-self `train.py` `--pretrained_model`): keep the keys that
start with `module.encoder_q.` except the encoder's `fc` (the MoCo MLP head), strip the prefix, and copy them into
the feature model. This module does the same and writes the result in the layout `init.workdir` reads: an `.npz`
whose keys are '/'-joined flax paths, `params/<module path>/<name>` and `batch_stats/<module path>/<name>`.

The name mapping is `ltjax.models.convert.torchvision_to_flax` (torchvision ResNet names → the flax paths of
`ltjax/models/resnet_imagenet.py`, kernels transposed, BN running statistics to `batch_stats/`); this module adds
the MoCo specifics: only `module.encoder_q.*` (the key encoder `encoder_k`, the queue and its pointer are ignored),
and the MLP head `fc.0`/`fc.2` (→ `proj/Dense_0`/`proj/Dense_1`) dropped unless `keep_projection=True`.

`convert_state_dict` takes any mapping name → array (numpy arrays, or torch tensors when torch is installed);
reading a `.pth.tar` needs PyTorch (`torch.load`, optional dependency). Command line:

  python -m ltjax.tools.convert_moco moco_ckpt_0199.pth.tar runs/moco_r50.npz [--keep-projection]
"""

from __future__ import annotations

import argparse
from typing import Dict, Mapping

import numpy as np

from ltjax.models.convert import ConversionError, torchvision_to_flax

MOCO_PREFIX = "module.encoder_q."


def _numpy(v):
  if hasattr(v, "detach"):  # a torch tensor
    v = v.detach().cpu().numpy()
  return np.asarray(v)


def convert_state_dict(state_dict: Mapping[str, object], *, prefix: str = MOCO_PREFIX,
                       keep_projection: bool = False) -> Dict[str, np.ndarray]:
  """MoCo state dict → {flat ltjax key: float32 array}: the entries under `prefix` (the query encoder) through
  `torchvision_to_flax`, minus the MLP head (`params/proj/…`) unless `keep_projection`. A prefix that matches
  nothing, or an entry outside the torchvision ResNet layout, raises `ConversionError` naming it."""
  arrays = {k: _numpy(v) for k, v in state_dict.items() if k.startswith(prefix)}
  if not arrays:
    some = ", ".join(list(state_dict)[:5])
    raise ConversionError(f"no state-dict key starts with '{prefix}' (first keys: {some}); for a plain torchvision "
                          "state dict pass prefix=''")
  out = torchvision_to_flax(arrays, strip_prefix=prefix)
  if not keep_projection:
    out = {k: v for k, v in out.items() if not k.startswith("params/proj/")}
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
