"""MoCo v2 self-supervised pre-training on the long-tailed training list (imbalanced-semi-self `pretrain_moco.py`,
imbalanced-semi-self `pretrain_moco.py`), the "SSP" of the ImageNet-LT / iNaturalist rows of imbalanced-semi-self
`imagenet_inat/main.py`, as
`--config configs/moco_pretrain.py:dataset=imagenet_lt|inaturalist`.

Settings (upstream defaults, `--mlp --aug-plus --cos` always on): ResNet-50 query/key encoders with the MLP head
2048 → 2048 → ReLU → 128, momentum m = 0.999, queue K = 65,536, T = 0.2, aug-plus views at 224², SGD lr 0.015,
momentum 0.9, wd 1e-4, global batch 128, 200 epochs, cosine lr_e = lr·½(1 + cos(π e/E)) per epoch, drop_last.
Labels are never used; no evaluation (`train.eval_every = 0`), the last checkpoint is the result. Shuffle-BN over
`moco.bn_groups = 8` groups of 16 images (upstream: one node of 8 GPUs, 16 images each; docs/ARCHITECTURE.md).

Command chain (ImageNet-LT; iNaturalist: dataset=inaturalist and the decouple rows' dataset=inaturalist):
  python main.py --config configs/moco_pretrain.py:dataset=imagenet_lt --workdir runs/moco_imagenet_lt \\
      --config.data.root=/data/imagenet
  python main.py --config configs/decouple.py:dataset=imagenet_lt,row=ce_uniform --workdir runs/dec_in_uniform \\
      --config.init.workdir=runs/moco_imagenet_lt --config.data.root=/data/imagenet
  python main.py --config configs/decouple.py:dataset=imagenet_lt,row=ce_balanced --workdir runs/dec_in_balanced \\
      --config.init.workdir=runs/moco_imagenet_lt --config.data.root=/data/imagenet
  python main.py --config configs/decouple.py:dataset=imagenet_lt,row=crt --workdir runs/dec_in_crt \\
      --config.init.workdir=runs/dec_in_uniform --config.data.root=/data/imagenet
An official checkpoint can replace the first run: `python -m ltjax.tools.convert_moco moco_ckpt_0199.pth.tar
runs/moco_in.npz` and `--config.init.workdir=runs/moco_in.npz` for the decouple rows.

Published numbers (SS README, top-1 ERROR, ResNet-50, 90 epochs of fine-tuning after this pre-training):
  ImageNet-LT  CE(Uniform)+SSP 54.4, CE(Balanced)+SSP 52.4, cRT+SSP 48.7
  iNat 2018    CE(Uniform)+SSP 35.6, CE(Balanced)+SSP 34.1, cRT+SSP 31.9
The pre-training itself reports no accuracy (the logged `accuracy` is the pretext top-1 of the positive key).
Cost: about 1 ResNet-50 img/s on the 2-core CPU machine (two encoders) — run it on accelerators.
"""

import ml_collections

from configs.common import parse_arg

from ltjax.config import default
from ltjax.methods.moco import moco_defaults

DATASETS = {"imagenet_lt": "imagenet_lt", "inaturalist": "inat2018"}


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  a = parse_arg(arg, dataset="imagenet_lt")
  if a["dataset"] not in DATASETS:
    raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got '{a['dataset']}'")
  c = default()
  c.method = "moco"
  c.data.name = DATASETS[a["dataset"]]
  c.data.imb_type = "none"  # the split list already is long-tailed
  c.data.drop_remainder = True  # drop_last=True; K % B == 0
  c.model.name = "resnet50"
  c.moco = moco_defaults()  # K 65536, m 0.999, T 0.2, MLP (2048, 128), aug-plus at 224, 8 BN groups
  c.optim.lr = 0.015
  c.optim.momentum = 0.9
  c.optim.weight_decay = 1e-4
  c.optim.schedule = "moco_cosine"
  c.train.epochs = 200
  c.train.batch_size = 128
  c.train.eval_every = 0
  c.train.select_on = "last"
  c.train.log_every = 50
  return c
