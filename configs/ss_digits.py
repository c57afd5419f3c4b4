"""The two chains of "Rethinking the Value of Labels" (Yang & Xu, NeurIPS 2020; imbalanced-semi-self) on the embedded
digits-LT (ρ = 0.1, 585 labeled images, 144 … 14 per class), each a few minutes on 2 CPU cores, as
`--config configs/ss_digits.py:stage=STAGE[,row=ROW][,init=RUN]`:

  rotation    self-supervised rotation pre-training (`pretrain_rot.py`): 4-way head on k·90° rotations, labels
              ignored, no class evaluation; the last checkpoint is the pre-trained model
  finetune    the supervised row initialised from it (`train.py --pretrained_model`): every weight but the head
              (keys with 'fc' or 'linear') copied, then the whole network trains. row=ce_uniform (plain CE) |
              ce_balanced (class-balanced resampling)
  base        the CE base model whose predictions become pseudo labels (= configs/digits_lt.py:row=ce)
  semi        CE on the labeled subset + D_U (`train_semi.py`): the unlabeled pool is the 912 digits training
              images the long-tailed subset left out ('unused'), with the base model's pseudo labels as targets

Chains (runs/ paths are the defaults of `init=` and of the pseudo-label file):
  python main.py --config configs/ss_digits.py:stage=rotation --workdir runs/ssd_rot
  python main.py --config configs/ss_digits.py:stage=finetune,row=ce_uniform --workdir runs/ssd_ft
  python main.py --config configs/ss_digits.py:stage=base --workdir runs/ssd_base
  python -m ltjax.tools.pseudolabel --workdir runs/ssd_base --pool unused --out runs/ssd_pseudo.npz
  python main.py --config configs/ss_digits.py:stage=semi --workdir runs/ssd_semi

Every run uses the digits_lt recipe (ResNet-32, 30 epochs, batch 64, SGD 0.1, wd 5e-4, ARB's cosine LR) instead of
the CIFAR 200-epoch step schedule. Tiny-data adaptation of D_U@5x: T = 5·585 = 2,925 pool images cannot come from
912, and the left-out images are reverse-imbalanced (class 0 keeps 4 of its 148, class 9 136 of 150). So D_U is
drawn by the official rule with multiplier 1 and a balanced request (ρ_U = 1: ⌊585/10⌋ = 58 per class, by the pool's
real labels, continuing the selection's random stream) and `allow_fewer` (the official silent behaviour: a class
short of images adds what it has), which gives 4 + 41 + 58·8 = 509 images.
Measured results are in docs/BENCHMARKS.md (semi-/self-supervised digits); there is no published number for this
data.
"""

import ml_collections

from configs import digits_lt, ss_finetune
from configs.common import parse_arg

STAGES = ("rotation", "finetune", "base", "semi")
ROWS = {"ce_uniform": "none", "ce_balanced": "resample"}
DEFAULT_INIT = {"finetune": "runs/ssd_rot"}
DEFAULT_PSEUDO = "runs/ssd_pseudo.npz"


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  a = parse_arg(arg, stage="rotation", row="ce_uniform", init="", pseudo="")
  if a["stage"] not in STAGES:
    raise ValueError(f"stage must be one of {list(STAGES)}, got '{a['stage']}'")
  if a["row"] not in ROWS:
    raise ValueError(f"row must be one of {list(ROWS)}, got '{a['row']}'")
  c = digits_lt.get_config("row=ce")
  if a["stage"] == "rotation":
    c.method = "rotation"
    c.train.eval_every = 0
    c.train.select_on = "last"
  elif a["stage"] == "finetune":
    c.supervised.train_rule = ROWS[a["row"]]
    c.init.workdir = a["init"] or DEFAULT_INIT["finetune"]
    c.init.checkpoint = "last"
    c.init.exclude = ss_finetune.EXCLUDE
    c.init.strict = True
    c.init.required = True
  elif a["stage"] == "semi":
    u = c.data.unlabeled
    u.pool = "unused"
    u.pseudo_labels = a["pseudo"] or DEFAULT_PSEUDO
    u.imb_factor = 1.0
    u.multiplier = 1
    u.select_by = "truth"
    u.allow_fewer = True
  return c
