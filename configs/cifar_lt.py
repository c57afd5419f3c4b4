"""CIFAR-10/100-LT with ResNet-32: every one-stage row of the ARB-Loss configs (ARB's shipped configs) and the
LDAM-DRW / imbalanced-semi-self baselines (imbalanced-semi-self `losses.py`; imbalanced-semi-self `train.py`), as
`--config configs/cifar_lt.py:ARGS`.

ARGS = `dataset=cifar10|cifar100,imb=0.01|0.02|0.1,row=ROW` (all optional; defaults cifar100, 0.01, arb).

ARB-Loss repository rows (MiSLAS stage-1 trainer: SGD 0.1, momentum 0.9, wd 2e-4, batch 128, 200 epochs, warm-up 5
epochs, ×0.1 at epoch 160; index-range groups CIFAR-10 [0,3)/[3,7)/[7,10), CIFAR-100 [0,36)/[36,71)/[71,100)):
  ce          cross-entropy                                    (cifar*_imb*.yaml)
  arb         ARB-Loss with mini-batch class counts            (cifar*_imb*_arbloss.yaml)
  arb_ugcc    ARB-Loss with global training counts             (cifar*_imb*_arbloss_ugcc.yaml)
  arb_mixup   ARB-Loss (batch counts) + mixup α = 1            (cifar*_imb*_arbloss_mixup.yaml)
  ce_mixup    cross-entropy + mixup α = 1                       (MiSLAS stage 1; its schedule decays ×0.01 at 180)

Baselines on the same trainer (ARB's schedule and settings, so that only the loss differs):
  balanced_softmax  CE on z + log n (Ren et al., NeurIPS 2020); equals arb_ugcc whenever no logit is clipped
  la_loss           logit-adjusted loss: CE on z + τ·log π, τ = 1 (Menon et al., ICLR 2021, eq. (10))
  Post-hoc logit adjustment and τ-normalisation need no row: train `ce` (or any row), then
  `python -m ltjax.tools.posthoc --workdir RUN --adjust la|tau_norm` sweeps τ on the trained model.

LDAM-DRW / imbalanced-semi-self baseline rows (`train.py`: same optimiser, schedule warm-up 5, ×0.01 at 160,
×1e-4 at 180):
  ldam_drw    LDAM (cosine head, max margin 0.5, s = 30) + deferred re-weighting from epoch 160
  ldam        LDAM without re-weighting
  focal       focal loss, γ = 1 (the scripts' value)
  cb_reweight CE with class-balanced (effective number, β = 0.9999) loss weights
  cb_resample CE with class-balanced resampling (with replacement, ∝ effective-number weight)
  ce_drw      CE + deferred re-weighting
  ce_ss       plain CE on the SS/LD schedule

Commands (one per table cell), e.g.:
  python main.py --config configs/cifar_lt.py:dataset=cifar100,imb=0.01,row=arb --workdir runs/c100_001_arb
  python main.py --config configs/cifar_lt.py:dataset=cifar10,imb=0.01,row=ldam_drw --workdir runs/c10_001_ldam

Published numbers (listed below, generated from PUBLISHED):
  * ARB-Loss rows (`arb`, `arb_mixup`): the ARB README has no table and the paper (Xie et al., Neurocomputing 2023,
    arXiv 2204.08735) could not be opened here, so they are marked missing, not guessed: copy them from its CIFAR
    table before using them as targets. The nearest published figure on this trainer is MiSLAS's stage 1 (row
    `ce_mixup`).
  * ERM and LDAM-DRW come from the LDAM-DRW paper (Cao et al., NeurIPS 2019, Table 2, top-1 error turned into top-1),
    not from the repositories' READMEs.
  * Logit adjustment (Menon et al., ICLR 2021) is balanced error on their own recipe, recalled and NOT verified
    against the paper here; orientation only until checked.
Needs TFDS cifar10/cifar100 prepared in --config.data.data_dir (see README: Data).
"""

import ml_collections

from configs.common import Published, parse_arg, published_doc

from ltjax.config import default

ROWS = {
    # row: (loss, loss fields, train_rule, mixup α, schedule)
    "ce": ("ce", {}, "none", 0.0, "arb_step"),
    "arb": ("arb", {"arb_counts": "batch"}, "none", 0.0, "arb_step"),
    "arb_ugcc": ("arb", {"arb_counts": "global"}, "none", 0.0, "arb_step"),
    "arb_mixup": ("arb", {"arb_counts": "batch"}, "none", 1.0, "arb_step"),
    "ce_mixup": ("ce", {}, "none", 1.0, "mislas_step"),
    "balanced_softmax": ("balanced_softmax", {}, "none", 0.0, "arb_step"),
    "la_loss": ("logit_adjust", {"la_tau": 1.0}, "none", 0.0, "arb_step"),
    "ldam_drw": ("ldam", {}, "drw", 0.0, "ss_step"),
    "ldam": ("ldam", {}, "none", 0.0, "ss_step"),
    "focal": ("focal", {"focal_gamma": 1.0}, "none", 0.0, "ss_step"),
    "cb_reweight": ("ce", {}, "reweight", 0.0, "ss_step"),
    "cb_resample": ("ce", {}, "resample", 0.0, "ss_step"),
    "ce_drw": ("ce", {}, "drw", 0.0, "ss_step"),
    "ce_ss": ("ce", {}, "none", 0.0, "ss_step"),
}
GROUP_BOUNDS = {"cifar10": (3, 7), "cifar100": (36, 71)}

# Published top-1 (%) per (dataset, imb, row), with its source: read by `published` (the table runner) and appended
# to the docstring. Rows no paper reports are absent; the ARB rows' numbers exist but are missing here (top1 None).
PUBLISHED = {
    # MiSLAS README, stage 1 (CE + mixup), top-1 %.
    ("cifar10", 0.1, "ce_mixup"): Published(87.6, "MiSLAS README, stage 1"),
    ("cifar10", 0.02, "ce_mixup"): Published(78.1, "MiSLAS README, stage 1"),
    ("cifar10", 0.01, "ce_mixup"): Published(72.8, "MiSLAS README, stage 1"),
    ("cifar100", 0.1, "ce_mixup"): Published(59.1, "MiSLAS README, stage 1"),
    ("cifar100", 0.02, "ce_mixup"): Published(45.4, "MiSLAS README, stage 1"),
    ("cifar100", 0.01, "ce_mixup"): Published(39.5, "MiSLAS README, stage 1"),
    # LDAM-DRW paper (Cao et al., NeurIPS 2019), Table 2, 100 − top-1 error.
    ("cifar10", 0.01, "ce_ss"): Published(100 - 29.64, "Cao et al. 2019, Table 2 (ERM)"),
    ("cifar10", 0.1, "ce_ss"): Published(100 - 13.61, "Cao et al. 2019, Table 2 (ERM)"),
    ("cifar100", 0.01, "ce_ss"): Published(100 - 61.68, "Cao et al. 2019, Table 2 (ERM)"),
    ("cifar100", 0.1, "ce_ss"): Published(100 - 44.30, "Cao et al. 2019, Table 2 (ERM)"),
    ("cifar10", 0.01, "ldam_drw"): Published(100 - 22.97, "Cao et al. 2019, Table 2"),
    ("cifar10", 0.1, "ldam_drw"): Published(100 - 11.84, "Cao et al. 2019, Table 2"),
    ("cifar100", 0.01, "ldam_drw"): Published(100 - 57.96, "Cao et al. 2019, Table 2"),
    ("cifar100", 0.1, "ldam_drw"): Published(100 - 41.29, "Cao et al. 2019, Table 2"),
    # Menon et al. (ICLR 2021), balanced error on their own recipe: recalled, not verified against the paper here.
    ("cifar10", 0.01, "la_loss"): Published(100 - 22.33, "Menon et al. 2021 (recalled, unverified; other recipe)"),
    ("cifar100", 0.01, "la_loss"): Published(100 - 56.11, "Menon et al. 2021 (recalled, unverified; other recipe)"),
}
ARB_MISSING = "ARB paper (arXiv 2204.08735), CIFAR table: missing, the paper could not be opened here"
PUBLISHED.update({(ds, imb, row): Published(None, ARB_MISSING) for ds in ("cifar10", "cifar100")
                  for imb in (0.1, 0.02, 0.01) for row in ("arb", "arb_mixup")})
__doc__ += "\n" + published_doc(PUBLISHED, ("dataset", "imb", "row"))


def published(args: dict):
  """{'top1', 'source'} for a table cell (`args`: this config's arguments, with 'row'); top1 None when the paper's
  number is missing here; None when no paper gives one for it."""
  a = {"dataset": "cifar100", "imb": "0.01", "row": "arb", **args}
  hit = PUBLISHED.get((a["dataset"], float(a["imb"]), a["row"]))
  return None if hit is None else hit.cell()


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  a = parse_arg(arg, dataset="cifar100", imb="0.01", row="arb")
  if a["row"] not in ROWS:
    raise ValueError(f"unknown row '{a['row']}' (known: {sorted(ROWS)})")
  if a["dataset"] not in GROUP_BOUNDS:
    raise ValueError(f"dataset must be one of {sorted(GROUP_BOUNDS)}, got '{a['dataset']}'")
  loss, loss_fields, rule, alpha, schedule = ROWS[a["row"]]
  c = default()
  c.data.name = a["dataset"]
  c.data.imb_type = "exp"
  c.data.imb_factor = float(a["imb"])
  c.data.group_bounds = GROUP_BOUNDS[a["dataset"]]
  c.loss.name = loss
  for k, v in loss_fields.items():
    c.loss[k] = v
  c.supervised.train_rule = rule
  c.supervised.mixup_alpha = alpha
  c.optim.lr = 0.1
  c.optim.momentum = 0.9
  c.optim.weight_decay = 2e-4
  c.optim.schedule = schedule
  c.train.epochs = 200
  c.train.batch_size = 128
  c.train.eval_batch_size = 100
  return c
