"""Quick long-tailed partial-label run: CORR + RECORDS (+ mixup) on the embedded digits, 2 CPU cores.

The digits (scikit-learn's 8×8 handwritten digits, no download) made long-tailed with ρ = 0.1 (144 → 14 images per
class, 585 in all), every training image given a candidate set with flip probability q = 0.3 (expected size
1 + 0.3·9 = 3.7) drawn on the selection's RandomState as for CIFAR (RECORDS' candidate-set generation). ResNet-8, both
views the
un-augmented image (`views = plain`: the resized crops of RECORDS' transforms destroy 8×8 digits), the RECORDS schedule
(cosine to lr·1e-3, wd 1e-3) shortened to 30 epochs with lr 0.1.

ARGS = `row=corr|corr_records|corr_records_mixup|solar` (default corr_records_mixup).

Command:
  python main.py --config configs/records_digits.py --workdir runs/records_digits
  python main.py --config configs/records_digits.py:row=corr --workdir runs/records_digits_corr
Expected (docs/BENCHMARKS.md): 70–100 s on 2 CPU cores (SoLar about 2–5 min); top-1 at the last epoch
corr 88.0, corr_records 90.3, corr_records_mixup 91.3, solar 84.7 — RECORDS lifts the three rarest classes from
66.7 to 78.9–80.0.
"""

from configs.common import parse_arg
from configs.records_cifar import ROWS, apply_row

from ltjax.config import default


def get_config(arg: str = ""):
  a = parse_arg(arg, row="corr_records_mixup")
  if a["row"] not in ROWS:
    raise ValueError(f"unknown row '{a['row']}' (known: {sorted(ROWS)})")
  c = default()
  c.seed = 123
  c.data.name = "digits"
  c.data.imb_factor = 0.1
  c.data.group_bounds = (3, 7)
  c.data.drop_remainder = True
  c.model.name = "resnet8"
  c.optim.lr = 0.1
  c.optim.weight_decay = 1e-3
  c.optim.schedule = "records_cosine"
  c.train.batch_size = 64
  c.train.eval_batch_size = 100
  c.train.log_every = 8
  c.train.eval_every = 5
  c.train.checkpoint_every = 5
  epochs = 30
  apply_row(c, a["row"], q=0.3, epochs=epochs, est_epochs=5, views="plain")
  if a["row"] == "solar":
    c.solar.warmup_epoch = 10
    c.solar.queue_length = 4
    c.solar.rho_end = 0.6
  return c
