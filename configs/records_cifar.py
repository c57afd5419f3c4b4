"""Long-tailed partial-label learning on CIFAR-10-LT / CIFAR-100-LT (RECORDS README tables, RECORDS' schedules; the
RECORDS README's results): every cell as `--config configs/records_cifar.py:ARGS`.

ARGS = `dataset=cifar10|cifar100,imb=0.01|0.02,q=Q,row=ROW[,nu=1]` (defaults cifar10, 0.01, 0.3, corr_records).
  imb  ρ as imb_factor: 0.02 ⇔ imbalance ratio 50, 0.01 ⇔ 100.
  q    ambiguity (flip probability): CIFAR-10 0.3 | 0.5 | 0.7, CIFAR-100 0.03 | 0.05 | 0.07 (any q in [0, 1] runs).
  nu=1 CIFAR-100-LT-NU (`--hierarchical`): superclass-aware candidates (8q / q) and Python-random-shuffled class
       sizes (seed 123); CIFAR-100 only.
Rows:
  corr                CORR (train.py)
  corr_records        CORR + RECORDS (--records): debiased disambiguation and test-time adjustment
  corr_records_mixup  CORR + RECORDS (w/ Mixup) (--records --mixup, α = 1)
  solar               SoLar (w/ Mixup) (train_solar.py): est_epochs 100 / 20, ρ 0.2→0.6 / 0.2→0.5,
                      γ (0.1, 0.01) / (0.05, 0.01) for CIFAR-10 / CIFAR-100; 800 final epochs after the
                      pre-estimation stage, so train.epochs = 900 / 820.
"CORR + Oracle-LA" (README: 36.27 / 17.61 / 12.77 and 29.97 / 15.80 / 11.75 on CIFAR-10-LT ρ=50 / 100, q = 0.3 / 0.5 /
0.7; 22.56 / 5.59 / 3.12 and 11.37 / 3.32 / 1.98 on CIFAR-100-LT) is not implemented upstream and needs no training
row: it is post-hoc logit adjustment of a `corr` run with the true training prior and τ = 1,
  python -m ltjax.tools.posthoc --workdir runs/c10_corr --adjust la --taus 1

Shared settings (README commands): ResNet-18 (CIFAR, `resnet18_cifar`), SGD lr 0.01, momentum 0.9, weight decay
1e-3, cosine to lr·1e-3 (`records_cosine`), 800 epochs, batch 256 (drop_last), seed 123, upd_start 1; weak/strong
views of RECORDS' transforms normalised with the train statistics (CIFAR-10's for CIFAR-10, CIFAR-100's for CIFAR-100);
test and
SoLar's prior estimation use CIFAR-100's statistics for both datasets (the RECORDS code's known issues); selection on
the test set (the code
logs the best epoch; the README does not say whether its numbers are best or final). Evaluation reports the exact
top-1 (`top1`), the official per-batch mean (`top1_batch_mean`, batches of 1024) and SoLar's rank-based
many/medium/few (`*_rank`).

Commands, e.g. (the README's five):
  python main.py --config configs/records_cifar.py:dataset=cifar10,imb=0.01,q=0.3,row=corr --workdir runs/c10_corr
  python main.py --config configs/records_cifar.py:dataset=cifar10,imb=0.01,q=0.3,row=corr_records --workdir
  runs/c10_rec
  python main.py --config configs/records_cifar.py:dataset=cifar100,imb=0.01,q=0.03,row=corr_records,nu=1 --workdir
  runs/c100nu_rec
  python main.py --config configs/records_cifar.py:dataset=cifar10,imb=0.01,q=0.3,row=solar --workdir runs/c10_solar
  python main.py --config configs/records_cifar.py:dataset=cifar10,imb=0.01,q=0.3,row=corr_records_mixup --workdir
  runs/c10_mix

Published top-1 (%), RECORDS README (`PUBLISHED[(dataset, ratio, q)][row]`; ratio 50 ⇔ imb=0.02, 100 ⇔ 0.01):
  CIFAR-10-LT   ρ=50: q=0.3 / 0.5 / 0.7      ρ=100: q=0.3 / 0.5 / 0.7
    corr                76.12 / 56.45 / 41.56      66.38 / 50.09 / 38.11
    corr_records        82.57 / 80.28 / 67.24      77.66 / 72.90 / 57.46
    solar               83.88 / 76.55 / 54.61      75.38 / 70.63 / 53.15
    corr_records_mixup  84.25 / 82.5  / 71.24      79.79 / 74.07 / 62.25
  CIFAR-100-LT  ρ=50: q=0.03 / 0.05 / 0.07   ρ=100: q=0.03 / 0.05 / 0.07
    corr                42.29 / 38.03 / 36.59      38.39 / 34.09 / 31.05
    corr_records        48.06 / 45.56 / 42.51      42.25 / 40.59 / 38.65
    solar               47.93 / 46.85 / 45.1       42.51 / 41.71 / 39.15
    corr_records_mixup  52.08 / 50.58 / 47.91      46.57 / 45.22 / 44.73
  CIFAR-100-LT-NU: the paper's table could not be retrieved (the RECORDS README's results); no published number here.
Needs TFDS cifar10/cifar100 prepared in --config.data.data_dir (see README: Data).
"""

import ml_collections

from configs.common import parse_arg

from ltjax.config import default
from ltjax.methods.records import CIFAR10_TRAIN_STATS, CIFAR100_STATS, Records, SoLar

ROWS = ("corr", "corr_records", "corr_records_mixup", "solar")
QS = {"cifar10": (0.3, 0.5, 0.7), "cifar100": (0.03, 0.05, 0.07)}
RATIOS = {"0.02": 50, "0.01": 100}
# SoLar's per-dataset settings (README): est_epochs, rho_range, gamma.
SOLAR = {"cifar10": (100, (0.2, 0.6), (0.1, 0.01)), "cifar100": (20, (0.2, 0.5), (0.05, 0.01))}

_TABLE = {
    "cifar10": {
        "corr": (76.12, 56.45, 41.56, 66.38, 50.09, 38.11),
        "corr_records": (82.57, 80.28, 67.24, 77.66, 72.90, 57.46),
        "solar": (83.88, 76.55, 54.61, 75.38, 70.63, 53.15),
        "corr_records_mixup": (84.25, 82.5, 71.24, 79.79, 74.07, 62.25),
    },
    "cifar100": {
        "corr": (42.29, 38.03, 36.59, 38.39, 34.09, 31.05),
        "corr_records": (48.06, 45.56, 42.51, 42.25, 40.59, 38.65),
        "solar": (47.93, 46.85, 45.1, 42.51, 41.71, 39.15),
        "corr_records_mixup": (52.08, 50.58, 47.91, 46.57, 45.22, 44.73),
    },
}
PUBLISHED = {(ds, ratio, q): {row: vals[i * 3 + j] for row, vals in rows.items()}
             for ds, rows in _TABLE.items() for i, ratio in enumerate((50, 100)) for j, q in enumerate(QS[ds])}


def apply_row(c: ml_collections.ConfigDict, row: str, *, q: float, epochs: int, est_epochs: int, views: str = "records",
              train_stats=None, hierarchical: bool = False, solar_settings=None) -> None:
  """Set method, method section and epochs for a table row (shared by the CIFAR and digits configs)."""
  if row == "solar":
    c.method = "solar"
    s = SoLar.config_defaults()
    s.est_epochs = est_epochs
    if solar_settings is not None:
      _, (s.rho_start, s.rho_end), (s.gamma1, s.gamma2) = solar_settings
    c.optim.restart_epoch = est_epochs
    c.train.epochs = est_epochs + epochs
  else:
    c.method = "records"
    s = Records.config_defaults()
    s.debias = row in ("corr_records", "corr_records_mixup")
    s.mixup = row == "corr_records_mixup"
    c.train.epochs = epochs
  s.partial_rate = float(q)
  s.hierarchical = hierarchical
  s.views = views
  if train_stats is not None:
    s.train_mean, s.train_std = train_stats
  c[c.method] = s


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  a = parse_arg(arg, dataset="cifar10", imb="0.01", q="0.3", row="corr_records", nu="0")
  ds, row = a["dataset"], a["row"]
  if row not in ROWS:
    raise ValueError(f"unknown row '{row}' (known: {list(ROWS)})")
  if ds not in QS:
    raise ValueError(f"dataset must be one of {sorted(QS)}, got '{ds}'")
  nu = a["nu"] in ("1", "true", "True")
  if nu and ds != "cifar100":
    raise ValueError("nu=1 (CIFAR-100-LT-NU) needs dataset=cifar100")
  c = default()
  c.seed = 123
  c.data.name = ds
  c.data.imb_factor = float(a["imb"])
  c.data.drop_remainder = True  # drop_last=True
  c.data.mean, c.data.std = CIFAR100_STATS  # the test transform, for both datasets (the RECORDS code's known issues)
  if nu:
    c.data.count_shuffle_seed = c.seed  # --hierarchical also shuffles the class sizes with Python's random
  else:
    c.data.group_bounds = (3, 7) if ds == "cifar10" else (33, 67)
  c.model.name = "resnet18_cifar"
  c.model.head = "linear"
  c.optim.lr = 0.01
  c.optim.momentum = 0.9
  c.optim.weight_decay = 1e-3
  c.optim.schedule = "records_cosine"
  c.train.batch_size = 256
  c.train.eval_batch_size = 1024
  c.train.log_every = 50
  c.train.select_on = "test"
  stats = CIFAR10_TRAIN_STATS if ds == "cifar10" else CIFAR100_STATS
  apply_row(c, row, q=float(a["q"]), epochs=800, est_epochs=SOLAR[ds][0], train_stats=stats, hierarchical=nu,
            solar_settings=SOLAR[ds])
  return c


def published(args: dict):
  """The table runner's cell (`python -m ltjax.tools.table`): {'top1', 'source'} from the README, or None where it
  reports nothing (CIFAR-100-LT-NU)."""
  arg = ",".join(f"{k}={v}" for k, v in args.items())
  try:
    return {"top1": published_top1(arg), "source": "RECORDS README"}
  except KeyError:
    return None


def published_top1(arg: str = "") -> float:
  """The README's top-1 for a config argument string (KeyError for cells the README does not report)."""
  a = parse_arg(arg, dataset="cifar10", imb="0.01", q="0.3", row="corr_records", nu="0")
  if a["nu"] in ("1", "true", "True"):
    raise KeyError("CIFAR-100-LT-NU: no published number (the RECORDS README's results)")
  return PUBLISHED[(a["dataset"], RATIOS[a["imb"]], float(a["q"]))][a["row"]]
