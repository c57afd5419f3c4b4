"""Places-LT, ARB-Loss (global counts) + mixup α = 0.2 (ARB's shipped configs, places_resnet50_arbloss_ugcc_mixup.yaml):
frozen ImageNet-pretrained trunk minus its last block + a trainable bottleneck + linear head, batch 1024, 90 epochs,
lr 0.1 cosine, wd 5e-4. `--config configs/places_lt.py[:depth=152|50,pretrained=1|0]`; details: configs/large_lt.py.

Prepare the trunk once (needs torch + torchvision, on any machine):
  python -m ltjax.tools.convert_torchvision --torchvision resnet152 --weights IMAGENET1K_V1 --check places_resnet152 \\
      --num-classes 365 --out pretrained/resnet152_torchvision.npz
Command:
  python main.py --config configs/places_lt.py --config.data.root=/data/places365 --workdir runs/places_ugcc_mixup
(--config.data.root: the Places365 root the Places_LT_*.txt paths are relative to.) `depth=50` uses ARB's stated
ResNet-50 (its shipped config cannot load it, the official ResNets); `pretrained=0` trains on a random frozen trunk, as
upstream's `not_pretrained: True`.
Published: the ARB paper's Places-LT number is not reproduced here (arXiv 2204.08735). MiSLAS stage 1 (CE +
mixup, same trainer, ResNet-152): 29.4% top-1, ECE 16.7%.
"""

from configs import large_lt
from configs.common import parse_arg


def get_config(arg: str = ""):
  a = parse_arg(arg, depth="152", pretrained="1")
  return large_lt.get_config(f"dataset=places_lt,row=arb_ugcc_mixup,depth={a['depth']},pretrained={a['pretrained']}")
