"""Large-scale long-tailed rows of the ARB-Loss repository (ARB's shipped configs) on ImageNet-LT,
iNaturalist 2018 and Places-LT, as `--config configs/large_lt.py:dataset=D,row=R[,source=files|tfds]` (the thin
configs imagenet_lt.py / inat2018.py / places_lt.py name the same rows).

| dataset     | row             | loss | counts | mixup α | backbone                      | batch | lr  | wd   | epochs
|
|-------------|-----------------|------|--------|---------|-------------------------------|-------|-----|------|--------|
| imagenet_lt | ce              | CE   | –      | –       | ResNet-50                     | 1024  | 0.1 | 5e-4 | 200
|
| imagenet_lt | arb             | ARB  | batch  | –       | ResNet-50                     | 768   | 0.1 | 5e-4 | 200
|
| imagenet_lt | arb_ugcc        | ARB  | global | –       | ResNet-50                     | 768   | 0.1 | 5e-4 | 200
|
| imagenet_lt | arb_ugcc_mixup  | ARB  | global | 0.2     | ResNet-50                     | 1024  | 0.1 | 5e-4 | 200
|
| inat2018    | ce              | CE   | –      | –       | ResNet-50                     | 1024  | 0.1 | 1e-4 | 200
|
| inat2018    | arb_ugcc        | ARB  | global | –       | ResNet-50                     | 1024  | 0.1 | 1e-4 | 200
|
| inat2018    | arb_ugcc_mixup  | ARB  | global | 0.2     | ResNet-50                     | 1024  | 0.1 | 1e-4 | 200
|
| places_lt   | arb_ugcc_mixup  | ARB  | global | 0.2     | frozen R-152 trunk + block    | 1024  | 0.1 | 5e-4 | 90
|

All: SGD momentum 0.9 (weight decay on every trainable parameter), the ARB cosine schedule lr·½(1 + cos(π̃e/E)) set
once per epoch without warm-up, shuffled instance sampling with the last partial batch kept, RandomResizedCrop 224 +
flip + ColorJitter(0.4, 0.4, 0.4) with the dataset's normalisation (iNat: its own statistics), eval Resize 256 +
CenterCrop 224 on the test list every epoch with the best top-1 kept, labels re-indexed by decreasing training count
and many/medium/few by the index ranges ImageNet-LT [0,390)/[390,835)/[835,1000), iNat [0,842)/[842,4543)/
[4543,8142), Places-LT [0,131)/[131,288)/[288,365) (plus the >100/<20 thresholds). BatchNorm statistics span the
global batch (upstream: per GPU under DDP; docs/DEVIATIONS.md).

Places-LT: the ImageNet-pretrained trunk minus its last block is frozen (eval-mode BN, no gradient), a fresh
bottleneck + linear head train (`train.trainable='^(block|fc)/'`). ARB's config names ResNet-50 but cannot load it
(the official ResNets bug); the default here is MiSLAS's ResNet-152 (`depth=152`), `depth=50` gives ARB's stated
backbone.
The trunk comes from torchvision's ImageNet weights converted once with ltjax/tools/convert_torchvision.py into
`pretrained/resnet{depth}_torchvision.npz` (or pass --config.init.workdir=PATH); `pretrained=0` reproduces
upstream's `not_pretrained: True` (a random frozen trunk).

Data: `source=files` (default) reads the split files under --config.data.root (README: Data); `source=tfds` reads
TFDS imagenet_lt / i_naturalist2018 from --config.data.data_dir.

Published numbers: the ARB README has no table and the paper's numbers are not reproduced here (copy them
from arXiv 2204.08735 before using them as targets). The same trainer with CE + mixup (MiSLAS stage 1, README,
top-1 / ECE): ImageNet-LT ResNet-50 45.5% / 7.98%, iNaturalist 2018 ResNet-50 66.9% / 5.37%, Places-LT ResNet-152
29.4% / 16.7%.
Cost: ResNet-50 at 224² is ≈ 4.1 GFLOP forward per image; see docs/BENCHMARKS.md for measured step and input
rates and the host cores an accelerator needs. Use --config.model.dtype=bfloat16 on GPU/TPU for speed (the
official runs are float32).
"""

import ml_collections

from configs.common import parse_arg

from ltjax.config import default

ROWS = {
    # (dataset, row): (loss, arb_counts, mixup α, global batch)
    ("imagenet_lt", "ce"): ("ce", "batch", 0.0, 1024),
    ("imagenet_lt", "arb"): ("arb", "batch", 0.0, 768),
    ("imagenet_lt", "arb_ugcc"): ("arb", "global", 0.0, 768),
    ("imagenet_lt", "arb_ugcc_mixup"): ("arb", "global", 0.2, 1024),
    ("inat2018", "ce"): ("ce", "batch", 0.0, 1024),
    ("inat2018", "arb_ugcc"): ("arb", "global", 0.0, 1024),
    ("inat2018", "arb_ugcc_mixup"): ("arb", "global", 0.2, 1024),
    ("places_lt", "arb_ugcc_mixup"): ("arb", "global", 0.2, 1024),
}
DATASETS = {
    # dataset: (weight decay, epochs, index-range group bounds)
    "imagenet_lt": (5e-4, 200, (390, 835)),
    "inat2018": (1e-4, 200, (842, 4543)),
    "places_lt": (5e-4, 90, (131, 288)),
}
TFDS_NAMES = {"imagenet_lt": "imagenet_lt_tfds", "inat2018": "inat2018_tfds"}


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  a = parse_arg(arg, dataset="imagenet_lt", row="arb_ugcc_mixup", source="files", depth="152", pretrained="1")
  dataset, row = a["dataset"], a["row"]
  if dataset not in DATASETS:
    raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got '{dataset}'")
  if (dataset, row) not in ROWS:
    raise ValueError(f"unknown row '{row}' for {dataset} (known: {sorted(r for d, r in ROWS if d == dataset)})")
  if a["source"] not in ("files", "tfds") or (a["source"] == "tfds" and dataset not in TFDS_NAMES):
    raise ValueError(f"source must be 'files' or, for {sorted(TFDS_NAMES)}, 'tfds'; got '{a['source']}'")
  loss, counts, alpha, batch = ROWS[(dataset, row)]
  wd, epochs, bounds = DATASETS[dataset]
  c = default()
  c.data.name = TFDS_NAMES[dataset] if a["source"] == "tfds" else dataset
  c.data.group_bounds = bounds
  c.data.label_remap = "frequency"
  c.data.image_size, c.data.eval_resize, c.data.color_jitter = 224, 256, 0.4
  c.data.drop_remainder = False
  c.model.name = "resnet50"
  c.model.head = "linear"
  c.loss.name = loss
  c.loss.arb_counts = counts
  c.supervised.train_rule = "none"
  c.supervised.mixup_alpha = alpha
  c.optim.lr = 0.1
  c.optim.momentum = 0.9
  c.optim.weight_decay = wd
  c.optim.nesterov = False
  c.optim.schedule = "arb_cosine"
  c.train.epochs = epochs
  c.train.batch_size = batch
  c.train.eval_batch_size = 512
  c.train.select_on = "test"
  c.train.log_every = 20
  if dataset == "places_lt":
    depth = int(a["depth"])
    if depth not in (50, 152):
      raise ValueError(f"depth must be 50 or 152, got {depth}")
    c.model.name = f"places_resnet{depth}"
    c.init.workdir = f"pretrained/resnet{depth}_torchvision.npz" if a["pretrained"] == "1" else ""
    c.init.exclude = ("^fc/", "^block/")
    c.init.strict = True
    c.train.trainable = "^(block|fc)/"
    c.train.frozen_bn = "train"  # the model itself keeps the trunk's BN in eval mode; the block's BN trains
  return c
