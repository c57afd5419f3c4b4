"""CDB-CE (Sinha et al., "Class-Wise Difficulty-Balanced Loss for Solving Class-Imbalance", ACCV 2020) on the
embedded digits, long-tailed with ratio 10 (ρ = 0.1), ResNet-32, 2 CPU cores.

The official CIFAR-LT recipe (`CIFAR-LT/cifar_train.py`) made small: class difficulties 1 − acc_c measured after
every epoch on a balanced validation split held out of the training pool (the official 25 per class; here 4, all
that the digits' head class leaves outside the long-tailed subset), dynamic τ, weights normalised to sum C; SGD
0.1, momentum 0.9, wd 5e-4, batch 32, and (a 30-epoch run rather than 240) a cosine schedule instead of the
official steps at epochs 160 and 210. `arg epochs=N` changes the length.

Command:
  python main.py --config configs/cdb_digits.py --workdir runs/cdb_digits
Expected: about a minute on 2 CPU cores; best top-1 88.3% (many/medium/few 98.3 / 88.9 / 76.7), below plain CE on
the same settings (93.7%, `--config.method=supervised`): with 4 validation images per class most classes soon score
100% there, and CDB then gives them zero weight. The logged `mean_weight` moves away from 1 after the first epoch.
"""

from configs.common import parse_arg

from ltjax.config import default
from ltjax.methods.cdb import CDB


def get_config(arg: str = ""):
  a = parse_arg(arg, epochs=30)
  c = default()
  c.method = "cdb"
  c.cdb = CDB.config_defaults()
  c.data.name = "digits"
  c.data.imb_factor = 0.1
  c.data.val_per_class = 4
  c.data.group_bounds = (3, 7)
  c.optim.lr = 0.1
  c.optim.momentum = 0.9
  c.optim.weight_decay = 5e-4
  c.optim.schedule = "arb_cosine"
  c.train.epochs = a["epochs"]
  c.train.batch_size = 32
  c.train.eval_batch_size = 100
  c.train.log_every = 10
  c.train.eval_every = 5
  c.train.checkpoint_every = 5
  return c
