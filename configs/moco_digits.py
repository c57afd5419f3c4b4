"""The MoCo / SBCL-MoCo chains on the embedded digits data (8×8, 10 classes, long-tailed ρ = 0.1: 585 training
images, 144 … 14 per class), ResNet-8: every piece of the ImageNet-LT pipelines (momentum encoder, queue,
shuffle-BN, aug-plus views, cRT with frozen train-mode BN; KCL → SBCL with re-clustering, linear stage 2) in a
couple of minutes on 2 CPU cores. `--config configs/moco_digits.py:stage=STAGE[,init=PATH]`:

  moco          MoCo v2 pre-training (30 epochs, batch 64, K = 512, 4 BN groups, MLP 64 → 64 → 32)
  crt           cRT on the MoCo features: frozen encoder in train mode, fresh classifier, class-aware sampler
  sbcl          SBCL stage 1: KCL for 10 epochs, then the SBCL queue loss with re-clustering every 5 epochs
  sbcl_linear   SBCL stage 2: linear classifier on the frozen stage-1 encoder, fc ~ N(0, 0.01²)

  python main.py --config configs/moco_digits.py:stage=moco --workdir runs/digits_moco
  python main.py --config configs/moco_digits.py:stage=crt,init=runs/digits_moco --workdir runs/digits_crt
  python main.py --config configs/moco_digits.py:stage=sbcl --workdir runs/digits_sbcl
  python main.py --config configs/moco_digits.py:stage=sbcl_linear,init=runs/digits_sbcl --workdir runs/digits_sbcl2

Tiny-data adaptations (the 224² recipe would erase an 8×8 digit): crops of scale (0.6, 1) at the native 8×8,
blur σ ~ U[0.1, 0.4], no flip (digits are not mirror-symmetric; the digits recipe has no flip either), key-encoder
momentum 0.99 (only 270 steps), lr 0.03 at batch 64.
Measured on the 2-core CPU machine, device data path, 2026-12-05 (docs/BENCHMARKS.md, SBCL digits): moco 27 s,
then crt 10 s → best test top-1 89.3 (many 95.0 / medium 91.7 / few 76.7, threshold groups); sbcl 26 s, then
sbcl_linear 10 s → 91.3 (100.0 / 95.6 / 70.0). Each run adds about 4 s of Python start-up.
"""

import ml_collections

from configs.common import parse_arg

from ltjax.config import default
from ltjax.methods.moco import moco_defaults
from ltjax.methods.sbcl.moco_method import SbclMoco
from ltjax.methods.semi_self.decouple import Decouple

STAGES = ("moco", "crt", "sbcl", "sbcl_linear")


def _moco(c):
  c.moco = moco_defaults()
  c.moco.projection = (64, 32)
  c.moco.queue_size = 512
  c.moco.bn_groups = 4
  c.moco.crop_size = 0  # native 8×8
  c.moco.crop_scale = (0.6, 1.0)
  c.moco.blur_sigma = (0.1, 0.4)
  c.moco.flip = False
  c.moco.momentum = 0.99  # 270 steps in all: with 0.999 the key encoder would stay near its initialisation
  c.train.eval_every = 0
  c.train.select_on = "last"


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  a = parse_arg(arg, stage="moco", init="")
  if a["stage"] not in STAGES:
    raise ValueError(f"stage must be one of {list(STAGES)}, got '{a['stage']}'")
  c = default()
  c.data.name = "digits"
  c.data.imb_factor = 0.1
  c.data.drop_remainder = True
  c.model.name = "resnet8"
  c.train.batch_size = 64
  c.train.eval_batch_size = 100
  c.train.log_every = 9
  c.train.progress_bar = False
  c.optim.momentum = 0.9
  c.init.workdir = a["init"]
  stage = a["stage"]
  if stage == "moco":
    c.method = "moco"
    _moco(c)
    c.optim.lr = 0.03
    c.optim.weight_decay = 1e-4
    c.optim.schedule = "moco_cosine"
    c.train.epochs = 30
  elif stage == "sbcl":
    c.method = "sbcl_moco"
    _moco(c)
    c.moco.temperature = 0.07
    c.sbcl_moco = SbclMoco.config_defaults()
    c.sbcl_moco.phase2_epoch = 10
    c.sbcl_moco.cluster = 20
    c.optim.lr = 0.03
    c.optim.weight_decay = 1e-4
    c.optim.schedule = "sbcl_moco_cosine"
    c.train.epochs = 20
  else:
    c.method = "decouple"
    c.decouple = Decouple.config_defaults()
    c.decouple.sampler = "class_aware"
    c.train.trainable = "^fc/"
    c.train.frozen_bn = "train"
    c.init.exclude = ("^fc/",)
    c.train.select_on = "test"
    if stage == "crt":
      c.optim.lr = 0.2
      c.optim.weight_decay = 5e-4
      c.optim.schedule = "decoupling_cosine"
      c.train.epochs = 10
    else:
      c.decouple.fc_init = "normal"
      c.optim.lr = 1.0
      c.optim.weight_decay = 0.0
      c.optim.schedule = "constant"
      c.train.epochs = 10
  return c
