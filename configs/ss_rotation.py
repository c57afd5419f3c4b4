"""Rotation self-supervised pre-training on CIFAR-10/100-LT (imbalanced-semi-self `pretrain_rot.py`, `pretrain_rot.py -a
resnet32`): step 1 of the "Rethinking the Value of Labels" SSP rows (NeurIPS 2020, Table 4 / the SS README).

ARGS = `dataset=cifar10|cifar100,imb=0.01|0.02|0.1` (defaults cifar10, 0.01). The training set is the long-tailed
subset of LDAM-DRW `imbalance_cifar.py` with the same ρ (labels ignored). Each batch (after crop/flip/normalise) gets
rotation ids k = the
first B of a permutation of [0,1,2,3]·(⌊B/4⌋+1), image i is rotated by k_i·90° and a 4-way ResNet-32 head is trained
with CE on k (ltjax/methods/semi_self/rotation.py). SGD 0.1, momentum 0.9, wd 2e-4, batch 128, 200 epochs, the SS step
schedule (warm-up 5, ×0.01 after epoch 160, ×1e-4 after 180; `--config.optim.legacy_order=True` for the pre-2021
order the 2020 checkpoints presumably used, see docs/DEVIATIONS.md). No class-label evaluation (eval_every = 0);
the last checkpoint is the pre-trained model.

Chain (one pre-training per dataset × ρ, used by both fine-tuning rows; docs/SEMI_SELF.md):
  python main.py --config configs/ss_rotation.py:dataset=cifar10,imb=0.01 --workdir runs/ss_rot_cifar10_0.01
  python -m ltjax.tools.rotation_eval --workdir runs/ss_rot_cifar10_0.01        # rotation accuracy on the test split
  python main.py --config configs/ss_finetune.py:dataset=cifar10,imb=0.01,row=ce_uniform \\
      --workdir runs/ss_ft_cifar10_0.01_ce_uniform                       # reads runs/ss_rot_cifar10_0.01

Published: the SS README ships these pre-trained ResNet-32 models but reports no number for the pretext task
itself; the fine-tuned results are in configs/ss_finetune.py. Time: as a ResNet-32 supervised run (one pass per
image per step). Needs TFDS cifar10/cifar100 prepared in --config.data.data_dir.
"""

from configs import cifar_lt
from configs.common import parse_arg

DATASETS = ("cifar10", "cifar100")


def workdir(dataset: str, imb: str) -> str:
  """The --workdir the chain uses for this pre-training (ss_finetune's default init.workdir)."""
  return f"runs/ss_rot_{dataset}_{imb}"


def get_config(arg: str = ""):
  a = parse_arg(arg, dataset="cifar10", imb="0.01")
  if a["dataset"] not in DATASETS:
    raise ValueError(f"rotation pre-training runs on {list(DATASETS)} (imbalanced-semi-self `pretrain_rot.py`), "
                     f"got dataset '{a['dataset']}'")
  c = cifar_lt.get_config(f"dataset={a['dataset']},imb={a['imb']},row=ce_ss")
  c.method = "rotation"
  c.train.eval_every = 0
  c.train.select_on = "last"
  return c
