"""MiSLAS stage 2 (Zhong et al., CVPR 2021; dvlab-research/MiSLAS `train_stage2.py` and its
`config/cifar*/cifar*_imb*_stage2_mislas.yaml`) on a stage-1 run, as
`--config configs/mislas_stage2.py:dataset=cifar10|cifar100|digits,imb=0.01|0.02|0.1`.

Ten epochs on the frozen stage-1 backbone: class-aware batches (4 per class), label-aware smoothing, learnable
weight scaling, the stage-1 classifier fine-tuned at lr_factor × the LR, cosine LR from 0.1, SGD momentum 0.9, weight
decay 2e-4, batch 128; "shift BN" re-estimates the backbone's BN statistics on those batches (ltjax/methods/mislas).

The settings per dataset and ρ, with MiSLAS's published results, are in the table at the end of this docstring
(generated from SETTINGS and PUBLISHED, which the table runner reads through `published()`).

The published numbers are MiSLAS's, on top of its stage 1 (CE + mixup: `configs/cifar_lt.py:row=ce_mixup`, whose
published figures are listed in that config). The ARB repository's commented-out stage 2 has the
same shape, so this is also the ARB rows' optional stage 2: pass an `arb` run as the stage 1.

Commands:
  python main.py --config configs/cifar_lt.py:dataset=cifar10,imb=0.01,row=ce_mixup --workdir runs/c10_s1
  python main.py --config configs/mislas_stage2.py:dataset=cifar10,imb=0.01 --config.init.workdir=runs/c10_s1 \\
      --workdir runs/c10_mislas
  # on the embedded digits, minutes on 2 CPU cores:
  python main.py --config configs/quickstart.py --workdir runs/quickstart
  python main.py --config configs/mislas_stage2.py:dataset=digits,imb=0.1 --config.init.workdir=runs/quickstart \\
      --workdir runs/quickstart_mislas
"""

import ml_collections

from configs.common import Published, parse_arg

from ltjax.config import default

# (dataset, imb) → (smooth_head, smooth_tail, shift_bn, lr_factor), from the official yaml files.
SETTINGS = {
    ("cifar10", 0.1): (0.1, 0.0, False, 0.2),
    ("cifar10", 0.02): (0.2, 0.0, False, 0.2),
    ("cifar10", 0.01): (0.3, 0.0, False, 0.5),
    ("cifar100", 0.1): (0.2, 0.0, True, 0.1),
    ("cifar100", 0.02): (0.3, 0.0, True, 0.1),
    ("cifar100", 0.01): (0.4, 0.1, True, 0.2),
    ("digits", 0.1): (0.1, 0.0, False, 0.2),
}
_README = "MiSLAS README, stage 2 (MiSLAS)"
PUBLISHED = {
    ("cifar10", 0.1): Published(90.0, _README, ece=1.20),
    ("cifar10", 0.02): Published(85.7, _README, ece=2.01),
    ("cifar10", 0.01): Published(82.5, _README, ece=3.66),
    ("cifar100", 0.1): Published(63.2, _README, ece=1.73),
    ("cifar100", 0.02): Published(52.3, _README, ece=2.47),
    ("cifar100", 0.01): Published(47.0, _README, ece=4.83),
}
GROUP_BOUNDS = {"cifar10": (3, 7), "cifar100": (36, 71), "digits": (3, 7)}


def _settings_table() -> str:
  lines = ["| dataset, ρ | smooth_head | smooth_tail | shift_bn | lr_factor | published top-1 / ECE (%) |",
           "|---|---|---|---|---|---|"]
  for (ds, imb), (head, tail, shift_bn, lr_factor) in SETTINGS.items():
    p = PUBLISHED.get((ds, imb))
    res = f"{p.top1} / {p.ece:.2f} ({p.source})" if p else "ltjax's own setting, no published number (docs/BENCHMARKS.md)"
    lines.append(f"| {ds} {imb} | {head} | {tail} | {'yes' if shift_bn else 'no'} | {lr_factor} | {res} |")
  return "\n".join(lines) + "\n"


__doc__ += "\n" + _settings_table()


def published(args: dict):
  """{'top1', 'ece', 'source'} of a (dataset, imb) cell for the table runner, or None (digits)."""
  a = {"dataset": "cifar10", "imb": "0.01", **args}
  p = PUBLISHED.get((a["dataset"], float(a["imb"])))
  return None if p is None else p.cell()


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  a = parse_arg(arg, dataset="cifar10", imb=0.01)
  key = (a["dataset"], float(a["imb"]))
  if key not in SETTINGS:
    raise ValueError(f"no MiSLAS stage-2 setting for dataset={key[0]}, imb={key[1]} (known: {sorted(SETTINGS)})")
  head, tail, shift_bn, lr_factor = SETTINGS[key]
  c = default()
  c.method = "mislas"
  c.data.name = a["dataset"]
  c.data.imb_type = "exp"
  c.data.imb_factor = key[1]
  c.data.group_bounds = GROUP_BOUNDS[a["dataset"]]
  c.model.head = "linear_lws"
  c.loss.name = "las"
  c.loss.las_head = head
  c.loss.las_tail = tail
  c.loss.las_shape = "concave"
  c.supervised.train_rule = "none"
  c.optim.lr = 0.1
  c.optim.momentum = 0.9
  c.optim.weight_decay = 2e-4
  c.optim.schedule = "arb_cosine"
  c.optim.lr_mults = (f"^fc/(kernel|bias)$={lr_factor}",)
  c.train.epochs = 10
  c.train.batch_size = 128
  c.train.eval_batch_size = 100
  c.train.checkpoint_every = 5
  c.train.trainable = "^fc/"
  c.train.frozen_bn = "train" if shift_bn else "eval"
  c.train.select_on = "test"
  c.init.required = True
  c.init.checkpoint = "best"
  c.init.exclude = ("^fc/lws$",)
  if a["dataset"] == "digits":
    c.train.batch_size = 64
    c.train.log_every = 10
    c.train.eval_every = 1
  return c
