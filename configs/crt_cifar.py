"""cRT, classifier re-training (Kang et al., "Decoupling Representation and Classifier for Long-Tailed Recognition",
ICLR 2020) on a CIFAR-LT (or digits-LT) stage-1 run, as `--config configs/crt_cifar.py:dataset=…,imb=…`.

The stage-1 backbone is frozen (`train.trainable = '^fc/'`; BN keeps re-estimating its statistics on the
class-balanced batches, `train.frozen_bn = 'train'`, as the decoupling code's cRT does), the classifier is
re-initialised (`init.exclude = ('^fc/',)`) and trained with plain CE on class-aware batches (4 images per visited
class, ⌊N/B⌋ steps per epoch) under a cosine LR that ends at 0 (`decoupling_cosine`), with the `decouple` method
(ltjax/methods/semi_self/decouple.py).

Kang et al. give cRT recipes for ImageNet-LT, iNaturalist and Places only (10 / 30 / 10 epochs, batch 512, LR 0.2).
For CIFAR this config is ltjax's choice, stated rather than hidden: 10 epochs, batch 128, LR 0.05 (0.2 scaled
linearly with the batch), weight decay 2e-4 (the CIFAR stage 1's), momentum 0.9. The paper publishes no CIFAR-LT
numbers, so none are given here. The τ-normalised classifier of the same paper needs no training:
`python -m ltjax.tools.posthoc --workdir STAGE1 --adjust tau_norm`.

Commands:
  python main.py --config configs/cifar_lt.py:dataset=cifar10,imb=0.01,row=ce --workdir runs/c10_ce
  python main.py --config configs/crt_cifar.py:dataset=cifar10,imb=0.01 --config.init.workdir=runs/c10_ce --workdir runs/c10_crt
  # digits, on the quickstart run (seconds):
  python main.py --config configs/crt_cifar.py:dataset=digits,imb=0.1 --config.init.workdir=runs/quickstart --workdir runs/qs_crt
"""

import ml_collections

from configs.common import parse_arg

from ltjax.config import default
from ltjax.methods.semi_self.decouple import Decouple

GROUP_BOUNDS = {"cifar10": (3, 7), "cifar100": (36, 71), "digits": (3, 7)}


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  a = parse_arg(arg, dataset="cifar10", imb=0.01)
  if a["dataset"] not in GROUP_BOUNDS:
    raise ValueError(f"dataset must be one of {sorted(GROUP_BOUNDS)}, got '{a['dataset']}'")
  c = default()
  c.method = "decouple"
  c.decouple = Decouple.config_defaults()
  c.decouple.sampler = "class_aware"
  c.data.name = a["dataset"]
  c.data.imb_type = "exp"
  c.data.imb_factor = float(a["imb"])
  c.data.group_bounds = GROUP_BOUNDS[a["dataset"]]
  c.model.head = "linear"
  c.loss.name = "ce"
  c.optim.lr = 0.05
  c.optim.momentum = 0.9
  c.optim.weight_decay = 2e-4
  c.optim.schedule = "decoupling_cosine"
  c.train.epochs = 10
  c.train.batch_size = 128
  c.train.eval_batch_size = 100
  c.train.trainable = "^fc/"
  c.train.frozen_bn = "train"
  c.train.select_on = "test"
  c.init.required = True
  c.init.checkpoint = "best"
  c.init.exclude = ("^fc/",)
  if a["dataset"] == "digits":
    c.train.batch_size = 64
    c.train.eval_every = 1
  return c
