"""Semi-supervised learning with pseudo-labels, CE + D_U@5x — the semi-supervised rows of "Rethinking the Value of
Labels" (imbalanced-semi-self `train_semi.py`), CIFAR-10-LT with TinyImages and SVHN-LT with SVHN extra.

ARGS = `dataset=cifar10|svhn,imb=0.02,imb_u=1.0|0.04|0.02|0.01,row=ce_ss,pool=POOL,pseudo=FILE,pretrained=RUN`
(defaults cifar10, 0.02, 0.02, ce_ss; pool data/ti_80M_selected.pickle for cifar10 and svhn_extra (TFDS
svhn_cropped `extra`) for svhn; pseudo data/pseudo_labeled_<dataset>_<imb>.npz; no pre-training). imb_u is ρ_U as a
factor: 1.0 balanced, 0.04 / 0.02 / 0.01 ↔ unlabeled imbalance ratio 25 / 50 / 100. `pretrained=RUN` also
initialises from a rotation pre-training run (train_semi.py --pretrained_model; head dropped as in ss_finetune).

Training set: the labeled long-tailed subset (LDAM-DRW `imbalance_cifar.py`; imbalanced-semi-self's SVHN-LT, ρ = imb)
followed by D_U — T = 5·Σn_c pool images,
u_c = ⌊⌊⌊T/C⌋·ρ_U^{c/(C−1)}⌋·T/Σraw⌋ per class, chosen by the pool's own ("truth") labels with the same legacy
RandomState stream right after the labeled selection, each with its *pseudo* label as target (ltjax/data/unlabeled.py).
Then the ordinary supervised run on the merged set: uniform batches of 256 mixing labeled and pseudo-labeled
images in proportion to their sizes, no separate unlabeled weight, no consistency loss, no re-labelling; CE,
train_rule none (other rows of configs/cifar_lt.py via row=, their LDAM margins / DRW weights then use labeled +
pseudo-label counts, as the official cls_num_list); SGD 0.1, wd 2e-4, 200 epochs, SS step schedule, best test top-1.

Chain (docs/SEMI_SELF.md), e.g. CIFAR-10-LT ρ = 50, ρ_U = 50:
  python main.py --config configs/cifar_lt.py:dataset=cifar10,imb=0.02,row=ce_ss --workdir runs/ss_base_cifar10_0.02
  python -m ltjax.tools.pseudolabel --workdir runs/ss_base_cifar10_0.02 --pool data/ti_80M_selected.pickle \\
      --out data/pseudo_labeled_cifar10_0.02.npz
  python main.py --config configs/ss_semi.py:dataset=cifar10,imb=0.02,imb_u=0.02 --workdir
  runs/ss_semi_cifar10_0.02_u0.02
SVHN-LT: base `configs/svhn_lt.py:imb=0.02,row=ce_ss` → runs/ss_base_svhn_0.02, then `--pool svhn_extra --out
data/pseudo_labeled_svhn_0.02.npz`, then `configs/ss_semi.py:dataset=svhn,imb=0.02,imb_u=…`. The official pseudo-label
pickles (pseudo_labeled_cifar.pickle, `extrapolated_targets`) work as `pseudo=` too (length-checked only).

Published (SS README, ResNet-32, ρ = 50, pseudo-labels from a CE base model; top-1 *error* %), ρ_U = 1 / 25 / 50 / 100:
  CIFAR-10-LT  16.79 / 16.88 / 18.36 / 19.94
  SVHN-LT      13.07 / 13.36 / 13.16 / 14.54
Needs TFDS cifar10 (or svhn_cropped with its extra split) in --config.data.data_dir and, for CIFAR-10,
ti_80M_selected.pickle (the semisup-adv TinyImages selection: a dict with `data` N×32×32×3 uint8 and
`extrapolated_targets`).
"""

from configs import cifar_lt, svhn_lt
from configs.common import parse_arg

DATASETS = ("cifar10", "svhn")
DEFAULT_POOL = {"cifar10": "data/ti_80M_selected.pickle", "svhn": "svhn_extra"}
# Published top-1 error (%), SS README, ρ = 50: {dataset: {imb_u: error}}.
PUBLISHED_ERROR = {
    "cifar10": {"1.0": 16.79, "0.04": 16.88, "0.02": 18.36, "0.01": 19.94},
    "svhn": {"1.0": 13.07, "0.04": 13.36, "0.02": 13.16, "0.01": 14.54},
}


def pseudo_label_file(dataset: str, imb: str) -> str:
  return f"data/pseudo_labeled_{dataset}_{imb}.npz"


def get_config(arg: str = ""):
  a = parse_arg(arg, dataset="cifar10", imb="0.02", imb_u="0.02", row="ce_ss", pool="", pseudo="",
                          pretrained="")
  if a["dataset"] not in DATASETS:
    raise ValueError(f"semi-supervised rows exist for {list(DATASETS)} (imbalanced-semi-self `train_semi.py`), "
                     f"got dataset '{a['dataset']}'")
  if a["dataset"] == "svhn":
    c = svhn_lt.get_config(f"imb={a['imb']},row={a['row']}")
  else:
    c = cifar_lt.get_config(f"dataset=cifar10,imb={a['imb']},row={a['row']}")
  c.train.batch_size = 256  # train_semi.py's default (-b 256)
  u = c.data.unlabeled
  u.pool = a["pool"] or DEFAULT_POOL[a["dataset"]]
  u.pseudo_labels = a["pseudo"] or pseudo_label_file(a["dataset"], a["imb"])
  u.imb_factor = float(a["imb_u"])
  u.multiplier = 5
  u.select_by = "truth"
  u.allow_fewer = False
  if a["pretrained"]:  # SSP + semi (train_semi.py --pretrained_model): head dropped, the rest copied
    from configs import ss_finetune
    c.init.workdir = a["pretrained"]
    c.init.checkpoint = "last"
    c.init.exclude = ss_finetune.EXCLUDE
    c.init.strict = True
  return c
