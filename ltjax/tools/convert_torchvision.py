"""Convert a torchvision ResNet / ResNeXt checkpoint to the .npz that ltjax's `config.init.workdir` accepts.

Needs PyTorch (an optional extra, never needed by ltjax itself or its tests): `pip install torch torchvision`.

  # torchvision's ImageNet weights (downloaded by torchvision on a networked machine):
  python -m ltjax.tools.convert_torchvision --torchvision resnet152 --weights IMAGENET1K_V1 --out r152.npz
  # a saved state_dict / checkpoint (e.g. MoCo: --strip-prefix module.encoder_q.):
  python -m ltjax.tools.convert_torchvision --checkpoint model.pth --key state_dict --strip-prefix module. --out r50.npz
  # then, e.g. for Places-LT:
  python main.py --config configs/places_lt.py --config.init.workdir=r152.npz --config.data.root=... --workdir ...

With --check ARCH (e.g. resnet152, places_resnet152) the result is loaded into that ltjax model (strict, the fc head
and Places' fresh block excluded) so shape mismatches surface here rather than at training time.
"""

import argparse

import numpy as np

from ltjax.models.convert import torchvision_to_flax


def _load_state_dict(args):
  import torch  # optional dependency
  if args.torchvision:
    import torchvision
    model = getattr(torchvision.models, args.torchvision)(weights=args.weights)
    sd = model.state_dict()
  else:
    sd = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    if args.key:
      sd = sd[args.key]
  return {k: v.detach().cpu().numpy() for k, v in sd.items()}


def check(flat, arch: str, num_classes: int) -> None:
  import jax
  import jax.numpy as jnp

  from ltjax.models import create_model
  from ltjax.train import pretrained
  model = create_model(arch, num_classes)
  fresh = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
  loaded = pretrained._unflatten(flat)
  pretrained.merge(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), dict(fresh)), loaded,
                   exclude=("^fc/", "^block/"), strict=True)


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  src = p.add_mutually_exclusive_group(required=True)
  src.add_argument("--torchvision", help="torchvision.models constructor, e.g. resnet50, resnet152, resnext50_32x4d")
  src.add_argument("--checkpoint", help="a torch.save'd state_dict or checkpoint dict")
  p.add_argument("--weights", default="DEFAULT", help="torchvision weights enum name (with --torchvision)")
  p.add_argument("--key", default="", help="key of the state_dict inside a checkpoint dict (e.g. state_dict)")
  p.add_argument("--strip-prefix", default="", help="prefix to remove from every key (e.g. module.)")
  p.add_argument("--check", default="", help="ltjax model name to load the result into (strict shape check)")
  p.add_argument("--num-classes", type=int, default=1000, help="classes of the --check model")
  p.add_argument("--out", required=True, help="output .npz")
  args = p.parse_args()
  flat = torchvision_to_flax(_load_state_dict(args), strip_prefix=args.strip_prefix)
  if args.check:
    check(flat, args.check, args.num_classes)
  np.savez(args.out, **flat)
  print(f"wrote {len(flat)} arrays ({sum(v.size for v in flat.values()):,} values) to {args.out}")


if __name__ == "__main__":
  main()
