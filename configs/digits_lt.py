"""Supervised baselines on the embedded digits-LT (ρ = 0.1), one trainer for every row so that only the loss or the
train rule differs: the quickstart recipe (ResNet-32, 30 epochs, batch 64, SGD 0.1, momentum 0.9, weight decay 5e-4,
ARB's cosine LR), as `--config configs/digits_lt.py:row=ROW`. Minutes per row on 2 CPU cores.

  ce                cross-entropy
  arb               ARB-Loss, mini-batch class counts (= configs/quickstart.py)
  arb_ugcc          ARB-Loss, global training counts
  balanced_softmax  CE on z + log n (Ren et al., NeurIPS 2020)
  la_loss           logit-adjusted loss, τ = 1 (Menon et al., ICLR 2021)
  ldam_drw          LDAM (cosine head, max margin 0.5, s = 30) + deferred re-weighting from epoch 24 (4/5 of the run,
                    as 160 of 200)
  focal             focal loss, γ = 1
  cb_reweight       CE with class-balanced weights (effective number, β = 0.9999)

Post-hoc logit adjustment and τ-norm run on a trained `ce` row (`python -m ltjax.tools.posthoc`); MiSLAS stage 2
and cRT on any linear-head row (`configs/mislas_stage2.py:dataset=digits,imb=0.1`, `configs/crt_cifar.py:dataset=digits,imb=0.1`).

The whole table over seeds, with mean ± std per cell:
  python -m ltjax.tools.table configs/digits_lt.py --rows ce,arb,balanced_softmax,la_loss --seeds 0,1 --workdir runs/digits_table
No published numbers exist for this data; measured tables are in docs/BENCHMARKS.md.
"""

import ml_collections

from configs.common import parse_arg

from ltjax.config import default

ROWS = {
    # row: (loss, loss fields, train_rule)
    "ce": ("ce", {}, "none"),
    "arb": ("arb", {"arb_counts": "batch"}, "none"),
    "arb_ugcc": ("arb", {"arb_counts": "global"}, "none"),
    "balanced_softmax": ("balanced_softmax", {}, "none"),
    "la_loss": ("logit_adjust", {"la_tau": 1.0}, "none"),
    "ldam_drw": ("ldam", {}, "drw"),
    "focal": ("focal", {"focal_gamma": 1.0}, "none"),
    "cb_reweight": ("ce", {}, "reweight"),
}


def published(args: dict):
  """No paper reports this data: every cell is None (the table runner prints '–')."""
  del args
  return None


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  a = parse_arg(arg, row="arb")
  if a["row"] not in ROWS:
    raise ValueError(f"unknown row '{a['row']}' (known: {sorted(ROWS)})")
  loss, fields, rule = ROWS[a["row"]]
  c = default()
  c.data.name = "digits"
  c.data.imb_factor = 0.1
  c.data.group_bounds = (3, 7)
  c.loss.name = loss
  for k, v in fields.items():
    c.loss[k] = v
  c.supervised.train_rule = rule
  c.supervised.drw_epoch = 24
  c.optim.lr = 0.1
  c.optim.weight_decay = 5e-4
  c.optim.schedule = "arb_cosine"
  c.train.epochs = 30
  c.train.batch_size = 64
  c.train.eval_batch_size = 100
  c.train.log_every = 10
  c.train.eval_every = 5
  c.train.checkpoint_every = 5
  return c
