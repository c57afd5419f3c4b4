"""Fine-tuning from a rotation pre-trained model — the CIFAR SSP rows of "Rethinking the Value of Labels"
(imbalanced-semi-self `train.py` `train.py --pretrained_model`, imbalanced-semi-self `pretrain_rot.py`): step 2 after
configs/ss_rotation.py.

ARGS = `dataset=cifar10|cifar100,imb=0.01|0.02|0.1,row=ROW,pretrained=RUN` (defaults cifar10, 0.01, ce_uniform,
runs/ss_rot_<dataset>_<imb>, the workdir the ss_rotation command of the chain writes).

The run is exactly the supervised row of configs/cifar_lt.py (same loss, train rule, SGD 0.1, wd 2e-4, batch 128,
200 epochs, SS step schedule, best test top-1), initialised from the pre-training run's last checkpoint with every
key containing `fc` or `linear` dropped (init.exclude, the official rule: the head stays freshly initialised) and
everything else — convolutions, BN γ/β and BN running statistics — copied; then the whole network trains (no
freezing, no layer-wise lr).

Rows:
  ce_uniform   CE(Uniform)+SSP: plain CE, instance-uniform batches     (= cifar_lt row ce_ss)
  ce_balanced  CE(Balanced)+SSP: CE with class-balanced resampling      (= cifar_lt row cb_resample; the README does
               not say which code path "Balanced" is on CIFAR, the imbalanced-semi-self code's known issues — row
               cb_reweight is the other reading)
  and the other SS/LDAM rows + SSP: ce_ss, cb_resample, cb_reweight, ce_drw, focal, ldam, ldam_drw.

Chain (docs/SEMI_SELF.md):
  python main.py --config configs/ss_rotation.py:dataset=cifar10,imb=0.01 --workdir runs/ss_rot_cifar10_0.01
  python main.py --config configs/ss_finetune.py:dataset=cifar10,imb=0.01,row=ce_uniform \\
      --workdir runs/ss_ft_cifar10_0.01_ce_uniform
  python main.py --config configs/ss_finetune.py:dataset=cifar10,imb=0.01,row=ce_balanced \\
      --workdir runs/ss_ft_cifar10_0.01_ce_balanced

Published (SS README, ResNet-32, 200 epochs, top-1 *error* %, i.e. 100 − best top-1), ratio 10 / 50 / 100
(imb=0.1 / 0.02 / 0.01):
  CIFAR-10-LT   CE(Uniform)+SSP   12.28 / 21.80 / 26.50     CE(Balanced)+SSP  11.57 / 19.60 / 23.47
  CIFAR-100-LT  CE(Uniform)+SSP   42.93 / 54.96 / 59.60     CE(Balanced)+SSP  41.94 / 52.91 / 56.94
Needs TFDS cifar10/cifar100 prepared in --config.data.data_dir.
"""

from configs import cifar_lt, ss_rotation
from configs.common import parse_arg

ALIASES = {"ce_uniform": "ce_ss", "ce_balanced": "cb_resample"}
SS_ROWS = tuple(sorted(r for r, spec in cifar_lt.ROWS.items() if spec[4] == "ss_step"))
ROWS = tuple(sorted(ALIASES)) + SS_ROWS
# Published top-1 error (%), SS README: {(dataset, imb): (CE(Uniform)+SSP, CE(Balanced)+SSP)}.
PUBLISHED_ERROR = {
    ("cifar10", "0.1"): (12.28, 11.57), ("cifar10", "0.02"): (21.80, 19.60), ("cifar10", "0.01"): (26.50, 23.47),
    ("cifar100", "0.1"): (42.93, 41.94), ("cifar100", "0.02"): (54.96, 52.91), ("cifar100", "0.01"): (59.60, 56.94),
}
# The official rule (imbalanced-semi-self `train.py`): drop every state_dict key containing 'linear' or 'fc'.
EXCLUDE = ("fc", "linear")


def published(args: dict):
  """The table runner's cell: 100 − the SS README's top-1 error for rows ce_uniform / ce_balanced, else None."""
  a = {"dataset": "cifar10", "imb": "0.01", "row": "ce_uniform", **args}
  err = PUBLISHED_ERROR.get((a["dataset"], str(a["imb"])))
  if err is None or a["row"] not in ("ce_uniform", "ce_balanced"):
    return None
  return {"top1": round(100 - err[0 if a["row"] == "ce_uniform" else 1], 2),
          "source": "imbalanced-semi-self README (rotation SSP), 100 − top-1 error"}


def get_config(arg: str = ""):
  a = parse_arg(arg, dataset="cifar10", imb="0.01", row="ce_uniform", pretrained="")
  if a["row"] not in ROWS:
    raise ValueError(f"unknown row '{a['row']}' (known: {list(ROWS)})")
  if a["dataset"] not in ss_rotation.DATASETS:
    raise ValueError(f"dataset must be one of {list(ss_rotation.DATASETS)}, got '{a['dataset']}'")
  c = cifar_lt.get_config(f"dataset={a['dataset']},imb={a['imb']},row={ALIASES.get(a['row'], a['row'])}")
  c.init.workdir = a["pretrained"] or ss_rotation.workdir(a["dataset"], a["imb"])
  c.init.checkpoint = "last"
  c.init.exclude = EXCLUDE
  c.init.strict = True
  return c
