"""SVHN-LT (imbalanced-semi-self's SVHN-LT) with ResNet-32: the imbalanced-semi-self supervised recipe.

N_full = 1000 per class, classes in the order [1..9, 0] (digit 0 is the rarest), normalisation 0.5/0.5, CIFAR
augmentation. ARGS = `imb=0.02,row=ce_ss` with the rows of configs/cifar_lt.py.

Command:
  python main.py --config configs/svhn_lt.py:imb=0.02,row=ce_ss --workdir runs/svhn_002_ce
Published: the SS README reports SVHN-LT only for its semi-supervised rows (top-1 error 13.07–14.54 with D_U@5x,
ρ = 50); the supervised base model that produces the pseudo-labels is this config.
Needs TFDS svhn_cropped prepared in --config.data.data_dir.
"""

from configs import cifar_lt
from configs.common import parse_arg


def get_config(arg: str = ""):
  a = parse_arg(arg, imb="0.02", row="ce_ss")
  c = cifar_lt.get_config(f"dataset=cifar10,imb={a['imb']},row={a['row']}")
  c.data.name = "svhn"
  return c
