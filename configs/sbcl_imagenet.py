"""SBCL on ImageNet-LT (`moco/` code base; SBCL's ImageNet-LT data (`moco/`), SBCL `moco/moco.py`; SBCL's stage-2
ImageNet head, SBCL `moco/loss.py`, SBCL `moco/main.py`; SBCL `moco/linear_classify.py`), as
`--config configs/sbcl_imagenet.py:stage=1|2[,rule=cb|drw][,init=PATH]`.

stage=1 — representation (`moco/main.py`), ONE run of 400 epochs holding both upstream phases:
  ResNet-50 query/key encoders + MLP 2048 → 2048 → 128, momentum 0.999, queue K = 65,536 with class and subclass
  label queues, aug-plus views at 224², shuffle-BN over 8 groups of 32 (upstream: 8 GPUs × 32), SGD lr 0.1,
  momentum 0.9, wd 1e-4, global batch 256, drop_last.
  phase 1, epochs 0–199: KCL (6 same-class queue positives, T = 0.07);
  phase 2, epochs 200–399: SBCL queue loss (T = 0.07, ranking T 0.12, γ = 0.2) with per-class k-means subclasses
    (M_c = ⌊n_c / max(n_min, 20)⌋) re-computed from key-encoder features at phase-2 epochs 0, 5, 10, …;
    at epoch 200 the SGD momentum buffers are reset (upstream builds a new optimizer) and the cosine restarts
    (`sbcl_moco_cosine`: lr_e = 0.1·½(1 + cos(π (e mod 200)/200))). Key encoder and queues carry over.
stage=2 — linear classifier (`moco/linear_classify.py`), README `--lr 10 --batch_size 2048 --train_rule CB
  --epochs 40 --schedule 20 30`:
  the stage-1 query encoder (projection dropped) frozen but in train mode (BN keeps updating, SBCL
  `moco/linear_classify.py`), a fresh
  `fc` Linear(2048, 1000) ~ N(0, 0.01²), bias 0; class-aware sampler (4 per class) truncated to
  ⌊115,846/2048⌋ = 56 steps per epoch, drop_last; SGD lr 10, momentum 0.9, wd 0, ×0.1 once e+1 ≥ 20 and again
  once e+1 ≥ 30 (`sbcl_imagenet_linear_step`); train views RandomResizedCrop 224 + flip (no ColorJitter); best test
  top-1
  with many/medium/few (>100 / <20) is reported.
  rule=drw: upstream's `--train_rule DRW` crashes (its cosine head is hard-wired to 64 → 100, the SBCL code's known
  issues) and its
  `epoch // 60` never reaches the re-weighting with 40 epochs. Here it runs as the evident intent with the bug
  fixed: cosine head 2048 → 1000, LDAM (max margin 0.5, s = 30), class weights 1 throughout (β = 0, as
  `epoch // 60 = 0` gives), plain shuffling (no sampler), see docs/DEVIATIONS.md.

Commands:
  python main.py --config configs/sbcl_imagenet.py:stage=1 --workdir runs/sbcl_in_s1 \\
      --config.data.root=/data/imagenet
  python main.py --config configs/sbcl_imagenet.py:stage=2,init=runs/sbcl_in_s1 --workdir runs/sbcl_in_s2 \\
      --config.data.root=/data/imagenet

Published: the SBCL README has no table; the paper's ImageNet-LT figures below (generated from PUBLISHED) are
RECALLED, NOT VERIFIED (the paper could not be opened here).
"""

import ml_collections

from configs.common import Published, parse_arg, published_doc

from ltjax.config import default
from ltjax.methods.moco import moco_defaults
from ltjax.methods.sbcl.moco_method import SbclMoco
from ltjax.methods.semi_self.decouple import Decouple

PUBLISHED = {("imagenet_lt",): Published(53.4, "SBCL paper (arXiv 2306.15925), ImageNet-LT ResNet-50: recalled, UNVERIFIED",
                                          many=63.8, medium=51.3, few=31.2)}
__doc__ += "\n" + published_doc(PUBLISHED, ("dataset",), "top-1 (%) of stage 2")


def published(args: dict = None):
  """The table runner's cell for stage 2 (the paper's ImageNet-LT number), else None."""
  if str((args or {}).get("stage", "2")) != "2":
    return None
  return PUBLISHED[("imagenet_lt",)].cell()


def _data(c):
  c.data.name = "imagenet_lt"
  c.data.imb_type = "none"
  c.data.label_remap = "none"  # labels as in the split files
  c.data.drop_remainder = True


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  a = parse_arg(arg, stage="1", rule="cb", init="")
  if a["stage"] not in ("1", "2"):
    raise ValueError(f"stage must be 1 or 2, got '{a['stage']}'")
  if a["rule"] not in ("cb", "drw"):
    raise ValueError(f"rule must be 'cb' (README) or 'drw', got '{a['rule']}'")
  c = default()
  _data(c)
  c.model.name = "resnet50"
  c.init.workdir = a["init"]
  if a["stage"] == "1":
    c.method = "sbcl_moco"
    c.moco = moco_defaults()
    c.moco.temperature = 0.07  # --moco-t (the SBCL losses read sbcl_moco.temperature)
    c.moco.bn_groups = 8  # 8 GPUs × 32
    c.sbcl_moco = SbclMoco.config_defaults()
    c.optim.lr = 0.1
    c.optim.momentum = 0.9
    c.optim.weight_decay = 1e-4
    c.optim.schedule = "sbcl_moco_cosine"
    c.train.epochs = 400
    c.train.batch_size = 256
    c.train.eval_every = 0
    c.train.select_on = "last"
    c.train.eval_batch_size = 1280  # the clustering pass (upstream: 5 × the per-GPU batch on each of 8 GPUs)
    return c
  c.method = "decouple"
  c.init.required = True  # stage 2 needs the stage-1 encoder: init=runs/...
  c.decouple = Decouple.config_defaults()
  c.data.color_jitter = 0.0  # stage 2: RandomResizedCrop + flip only
  c.train.trainable = "^fc/"
  c.train.frozen_bn = "train"
  c.init.exclude = ("^fc/",)
  c.optim.lr = 10.0
  c.optim.momentum = 0.9
  c.optim.weight_decay = 0.0
  c.optim.schedule = "sbcl_imagenet_linear_step"
  c.train.epochs = 40
  c.train.batch_size = 2048
  c.train.eval_batch_size = 1000
  c.train.select_on = "test"
  if a["rule"] == "cb":
    c.decouple.sampler = "class_aware"
    c.decouple.fc_init = "normal"
    c.decouple.fc_std = 0.01
    c.model.head = "linear"
    c.loss.name = "ce"
  else:
    c.model.head = "cosine"
    c.loss.name = "ldam"
    c.supervised.train_rule = "none"
  return c
