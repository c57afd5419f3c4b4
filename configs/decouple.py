"""ImageNet-LT / iNaturalist 2018 rows of "Rethinking the Value of Labels" (imbalanced-semi-self `imagenet_inat/`,
decoupling-style trainer, imbalanced-semi-self `imagenet_inat/main.py`), as
`--config configs/decouple.py:dataset=imagenet_lt|inaturalist,row=ce_uniform|ce_balanced|crt`.

| row | upstream (ImageNet_LT/, iNaturalist18/) | sampler | features | batch | epochs |
|---|---|---|---|---|---|
| ce_uniform | feat_uniform.yaml, feat_unifrom.yaml (sic) | random shuffling | from MoCo | 128/100 | 90 |
| ce_balanced | feat_balance.yaml (iNat: none, by analogy) | class-aware 4/class + in-batch | from MoCo | 128/100 | 90 |
| crt | cls_crt.yaml | class-aware 4/class | frozen | 512 | 10/30 |
(ImageNet-LT/iNat where two values are given.)
All rows: plain CE, SGD momentum 0.9, lr 0.2 for features and classifier, weight decay 5e-4 (ImageNet-LT) / 1e-4
(iNat), cosine `CosineAnnealingLR(T_max=E, eta_min=0)` stepped at the start of every epoch (`decoupling_cosine`:
lr_e = ½·lr·(1 + cos(π(e+1)/E)), the last epoch at lr 0), ⌊N/B⌋ steps per epoch whatever the sampler,
ResNet-50 (conv N(0, 2/fan_out), classifier PyTorch default init). Labels as in the split files (SS does not
re-index by frequency). Augmentation: RandomResizedCrop 224 → flip → ColorJitter(0.4, 0.4, 0.4) on ImageNet-LT,
no ColorJitter on iNat (the official CIFAR/SVHN transforms). Model selection: ImageNet-LT on its val list (20 per
class), reported on test;
iNat on its val list (which is the split reported). cRT: the classifier is re-initialised (`init.exclude`
keeps the fresh `fc`), every other parameter frozen (`train.trainable = '^fc/'`) but BN still in train mode
(`train.frozen_bn = 'train'`: running statistics keep updating on class-balanced batches, as upstream).

Weights (`init.workdir`; pass `init=PATH` or --config.init.workdir):
  ce_uniform / ce_balanced: the MoCo run (configs/moco_pretrain.py) or a converted official checkpoint
    (`python -m ltjax.tools.convert_moco moco_ckpt_0199.pth.tar moco.npz`); the query encoder minus its MLP head.
  crt: the CE(Uniform)+SSP run (its best checkpoint).

Commands (full chain in configs/moco_pretrain.py):
  python main.py --config configs/decouple.py:dataset=imagenet_lt,row=ce_uniform,init=runs/moco_imagenet_lt \\
      --workdir runs/dec_in_uniform --config.data.root=/data/imagenet
  python main.py --config configs/decouple.py:dataset=imagenet_lt,row=crt,init=runs/dec_in_uniform \\
      --workdir runs/dec_in_crt --config.data.root=/data/imagenet

Published numbers (SS README, top-1 ERROR %, ResNet-50 + MoCo SSP):
  ImageNet-LT  ce_uniform 54.4   ce_balanced 52.4   crt 48.7
  iNat 2018    ce_uniform 35.6   ce_balanced 34.1   crt 31.9   (iNat ce_balanced: no upstream config)
"""

import ml_collections

from configs.common import parse_arg

from ltjax.config import default
from ltjax.methods.semi_self.decouple import Decouple

DATASETS = {
    # name: (data.name, weight decay, batch of the feature rows, cRT epochs, color jitter, select on)
    "imagenet_lt": ("imagenet_lt", 5e-4, 128, 10, 0.4, "val"),
    "inaturalist": ("inat2018", 1e-4, 100, 30, 0.0, "test"),
}
ROWS = ("ce_uniform", "ce_balanced", "crt")
PUBLISHED_ERROR = {("imagenet_lt", "ce_uniform"): 54.4, ("imagenet_lt", "ce_balanced"): 52.4,
                   ("imagenet_lt", "crt"): 48.7, ("inaturalist", "ce_uniform"): 35.6,
                   ("inaturalist", "ce_balanced"): 34.1, ("inaturalist", "crt"): 31.9}


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  a = parse_arg(arg, dataset="imagenet_lt", row="ce_uniform", init="")
  if a["dataset"] not in DATASETS:
    raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got '{a['dataset']}'")
  if a["row"] not in ROWS:
    raise ValueError(f"unknown row '{a['row']}' (known: {list(ROWS)})")
  name, wd, feat_batch, crt_epochs, jitter, select_on = DATASETS[a["dataset"]]
  row = a["row"]
  c = default()
  c.method = "decouple"
  c.decouple = Decouple.config_defaults()
  c.data.name = name
  c.data.imb_type = "none"
  c.data.label_remap = "none"  # SS keeps the split files' labels
  c.data.color_jitter = jitter
  c.data.val_list = select_on == "val"
  c.data.drop_remainder = True  # ⌊N/B⌋ steps per epoch
  c.model.name = "resnet50"
  c.model.head = "linear"
  c.loss.name = "ce"
  c.optim.lr = 0.2
  c.optim.momentum = 0.9
  c.optim.weight_decay = wd
  c.optim.schedule = "decoupling_cosine"
  c.train.select_on = select_on
  c.train.eval_batch_size = 256
  c.init.workdir = a["init"]
  c.init.exclude = ("^fc/",)  # the classifier is never loaded during training (always fresh)
  if row in ("ce_uniform", "ce_balanced"):
    c.train.batch_size = feat_batch
    c.train.epochs = 90
    if row == "ce_balanced":
      c.decouple.sampler = "class_aware"
      c.decouple.in_batch_shuffle = True
  else:  # crt
    c.train.batch_size = 512
    c.train.epochs = crt_epochs
    c.decouple.sampler = "class_aware"
    c.train.trainable = "^fc/"
    c.train.frozen_bn = "train"
    c.init.checkpoint = "best"
  return c
