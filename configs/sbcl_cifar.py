"""SBCL (Hou et al., ICCV 2023) on CIFAR-10/100-LT with ResNet-32, both stages (SBCL (Hou et al., ICCV 2023; official
code)),
as `--config configs/sbcl_cifar.py:ARGS`, ARGS = `dataset=cifar10|cifar100,imb=0.01|0.02|0.1,stage=1|2,rule=...`
(all optional; defaults cifar100, 0.01, stage 1, rule drw).

Stage 1 (`SimCLR/main.py`, method `sbcl`): two SupCon views per image (RandomResizedCrop 32 scale (0.2, 1), flip,
ColorJitter(0.4, 0.4, 0.4, 0.1) p = 0.8, grayscale p = 0.2), ResNet-32 + projection 64 → 64 → 128, SGD lr 0.5,
momentum 0.9, wd 1e-4, batch 1024 (no drop_last), 1000 epochs, cosine to 5e-5 with the official per-step warm-up of
epochs 0–10 (negative LRs in epoch 0 as upstream; `--config.optim.fix_negative_warmup=True` fixes it), class
SupCon for epochs 0–9, then per-class cosine k-means every 10 epochs (M_c = ⌊n_c / max(n_min, 10)⌋: CIFAR-100-LT
ρ=0.01 → 1051 subclasses, CIFAR-10-LT → 242) and the bi-granularity loss with class temperatures (`Rank`;
`--config.sbcl.loss_mode=ccl` for SupConLoss_ccl). No classifier is trained: no evaluation (train.eval_every 0).

Stage 2 (`SimCLR/linear_classify.py`, method `supervised`): the stage-1 encoder, frozen and in eval mode
(train.trainable '^fc/', train.frozen_bn 'eval'), loaded from the stage-1 run (`init.workdir`, last checkpoint;
the projection head is dropped), classifier on the 64-d features of the augmented image (pad-4 crop + flip), SGD
lr 0.1, momentum 0.9, wd 0, batch 128, test accuracy every epoch, best epoch reported. Rules (`--train_rule`):
  drw       LDAM (s 30, max margin 0.5) + class-balanced weights (β 0.9999) from epoch 0, cosine head, 200 epochs,
            warm-up 5 then ×0.1 after e' = 140, ×0.01 after 180 — what the paper reports on CIFAR
  reweight  LDAM without weights + effective-number sampler (draws ∝ (1−β)/(1−β^{n_y})), cosine head, 200
            epochs, warm-up 5 then cosine to 0
  cb        class-aware sampler (4 per class, max_c n_c · C draws per epoch) + CE, linear head, 45 epochs (README),
            warm-up 5 then cosine to 0
  ce        plain CE, linear head, 200 epochs, the step schedule of drw

Commands (stage 1, then stage 2 on its run):
  python main.py --config configs/sbcl_cifar.py:dataset=cifar100,imb=0.01,stage=1 --workdir runs/sbcl_c100_s1
  python main.py --config configs/sbcl_cifar.py:dataset=cifar100,imb=0.01,stage=2,rule=drw \
      --config.init.workdir=runs/sbcl_c100_s1 --workdir runs/sbcl_c100_s2_drw
(`rule=cb` for the classifier-balancing row; `dataset=cifar10` / `imb=0.02|0.1` for the other settings.)

Published numbers: the SBCL README has no table. The paper's (arXiv 2306.15925, ICCV 2023) CIFAR-100-LT top-1 with
the LDAM stage 2 (`rule=drw`) is listed at the end of this docstring from PUBLISHED; those figures are RECALLED, NOT
VERIFIED (the paper could not be opened here; check its CIFAR table before using them as targets), and their source
says so wherever they are printed, the table runner's output included. No CIFAR-10-LT number is recorded.
Expected cost: stage 1 is 1000 epochs of 2 × 10,847 ResNet-32 forward/backward passes plus 99 re-clusterings
(docs/BENCHMARKS.md: SBCL) — an accelerator job; stage 2 trains one linear layer.
Needs TFDS cifar10/cifar100 prepared in --config.data.data_dir (see README: Data).
"""

import ml_collections

from configs.common import Published, parse_arg, published_doc

from ltjax.config import default

_RECALLED = "SBCL paper (arXiv 2306.15925), CIFAR-100-LT, stage 2 LDAM-DRW: recalled, UNVERIFIED"
PUBLISHED = {("cifar100", 0.01): Published(44.9, _RECALLED), ("cifar100", 0.02): Published(48.7, _RECALLED),
             ("cifar100", 0.1): Published(57.9, _RECALLED)}
__doc__ += "\n" + published_doc(PUBLISHED, ("dataset", "imb"), "top-1 (%) of stage 2 with rule=drw")


def published(args: dict):
  """The table runner's cell for stage 2 with rule=drw (the paper's CIFAR setting), else None."""
  a = {"dataset": "cifar100", "imb": "0.01", "stage": "2", "rule": "drw", **args}
  if str(a["stage"]) != "2" or a["rule"] != "drw":
    return None
  p = PUBLISHED.get((a["dataset"], float(a["imb"])))
  return None if p is None else p.cell()


STAGE2_RULES = {
    # rule: (loss, head, train_rule, schedule, epochs)
    "drw": ("ldam", "cosine", "reweight", "sbcl_linear_step", 200),
    "reweight": ("ldam", "cosine", "resample", "sbcl_linear_cosine", 200),
    "cb": ("ce", "linear_torch", "class_aware", "sbcl_linear_cosine", 45),
    "ce": ("ce", "linear_torch", "none", "sbcl_linear_step", 200),
}


def stage1(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The stage-1 recipe of SimCLR/main.py on top of a data section (SBCL `SimCLR/main.py`)."""
  from ltjax.methods.sbcl import SBCL
  c.method = "sbcl"
  c.sbcl = SBCL.config_defaults()
  c.model.name = "resnet32"
  c.model.head = "linear"  # the unused classifier of the stage-1 model (ignored by the loss)
  c.optim.lr = 0.5
  c.optim.momentum = 0.9
  c.optim.weight_decay = 1e-4
  c.optim.schedule = "sbcl_cosine"
  c.optim.warmup_epochs = 10
  c.optim.fix_negative_warmup = False
  c.train.epochs = 1000
  c.train.batch_size = 1024
  c.train.eval_every = 0
  c.train.select_on = "last"
  c.train.checkpoint_every = 10
  c.data.drop_remainder = False
  c.sbcl.loss_mode = "rank"
  c.sbcl.warm_epochs = 10
  c.sbcl.step = 10
  c.sbcl.cluster = 10
  return c


def stage2(c: ml_collections.ConfigDict, rule: str) -> ml_collections.ConfigDict:
  """The stage-2 recipe of SimCLR/linear_classify.py (SBCL's stage-2 heads, SBCL `SimCLR/linear_classify.py`, SBCL
  `SimCLR/linear_classify.py`) for `rule`."""
  if rule not in STAGE2_RULES:
    raise ValueError(f"unknown stage-2 rule '{rule}' (known: {sorted(STAGE2_RULES)})")
  loss, head, train_rule, schedule, epochs = STAGE2_RULES[rule]
  c.method = "supervised"
  c.model.name = "resnet32"
  c.model.head = head
  c.loss.name = loss
  c.loss.ldam_max_m = 0.5
  c.loss.ldam_s = 30.0
  c.supervised.train_rule = train_rule
  c.supervised.cb_beta = 0.9999
  c.init.workdir = ""  # the stage-1 run: --config.init.workdir=runs/...
  c.init.required = True  # a linear probe on a random encoder is refused unless asked for
  c.init.checkpoint = "last"  # stage 1 keeps no 'best' (no evaluation)
  c.init.strict = True  # every encoder leaf must match (the stage-1 projection head `proj/` is ignored)
  c.train.trainable = "^fc/"
  c.train.frozen_bn = "eval"
  c.optim.lr = 0.1
  c.optim.momentum = 0.9
  c.optim.weight_decay = 0.0
  c.optim.schedule = schedule
  c.optim.warmup_epochs = 5
  c.train.epochs = epochs
  c.train.batch_size = 128
  c.train.eval_batch_size = 100
  c.train.eval_every = 1
  c.train.select_on = "test"
  return c


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  a = parse_arg(arg, dataset="cifar100", imb="0.01", stage="1", rule="drw")
  if a["dataset"] not in ("cifar10", "cifar100"):
    raise ValueError(f"dataset must be cifar10 or cifar100, got '{a['dataset']}'")
  if a["stage"] not in ("1", "2"):
    raise ValueError(f"stage must be 1 or 2, got '{a['stage']}'")
  c = default()
  c.data.name = a["dataset"]
  c.data.imb_type = "exp"
  c.data.imb_factor = float(a["imb"])
  c.data.rand_number = 0
  c.data.group_bounds = {"cifar10": (3, 7), "cifar100": (36, 71)}[a["dataset"]]
  return stage1(c) if a["stage"] == "1" else stage2(c, a["rule"])
