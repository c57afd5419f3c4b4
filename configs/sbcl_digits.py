"""SBCL quick pair on the embedded digits data (ρ = 0.1, 582 images, 144 → 14 per class), ResNet-8, 2 CPU cores:
the CIFAR recipe of configs/sbcl_cifar.py scaled down (both stages, every mechanism: two views, SupCon warm-up,
per-class k-means re-clustering every 2 epochs from epoch 2 — 10 subclasses for the largest class, 37 in all —
class temperatures, bi-granularity loss; stage 2 a frozen encoder with an LDAM cosine classifier). Changed from
the CIFAR recipe for 8×8 digits: ResNet-8, 16 epochs, batch 128, lr 0.1, crops of at least 60% of the image
(scale (0.6, 1); with CIFAR's 0.2 an 8×8 digit is unreadable and the loss does not move).
ARGS = `stage=1|2,rule=drw|reweight|cb|ce` (defaults stage 1, rule drw).

Commands:
  python main.py --config configs/sbcl_digits.py:stage=1 --workdir runs/sbcl_digits_s1
  python main.py --config configs/sbcl_digits.py:stage=2,rule=drw --config.init.workdir=runs/sbcl_digits_s1 \
      --workdir runs/sbcl_digits_s2
Expected (2 CPU cores, device data path, measured 2026-12-05): stage 1 about 30 s, stage 2 (drw, 10 epochs) about
15 s; stage 2 best test top-1 81.0% (many/medium/few 90.0 / 81.7 / 70.0, threshold groups) — docs/BENCHMARKS.md:
SBCL. No published number (a smoke-scale setting of our own).
"""

import ml_collections

from configs.common import parse_arg
from configs.sbcl_cifar import stage1, stage2

from ltjax.config import default


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  a = parse_arg(arg, stage="1", rule="drw")
  if a["stage"] not in ("1", "2"):
    raise ValueError(f"stage must be 1 or 2, got '{a['stage']}'")
  c = default()
  c.data.name = "digits"
  c.data.imb_factor = 0.1
  c.data.group_bounds = (3, 7)
  if a["stage"] == "1":
    c = stage1(c)
    c.optim.lr = 0.1
    c.optim.warmup_epochs = 2
    c.train.epochs = 16
    c.train.batch_size = 128
    c.train.checkpoint_every = 1
    c.train.log_every = 5
    c.sbcl.warm_epochs = 2
    c.sbcl.step = 2
    c.sbcl.crop_scale = (0.6, 1.0)
  else:
    c = stage2(c, a["rule"])
    c.optim.warmup_epochs = 2
    c.train.epochs = 10
    c.train.batch_size = 64
    c.train.log_every = 5
  c.model.name = "resnet8"
  return c
