"""Headline: ARB-Loss (mini-batch class counts) on CIFAR-100-LT, imbalance ratio 100, ResNet-32, 200 epochs.

The ARB repository's `cifar100_imb001_arbloss.yaml`: SGD lr 0.1, momentum 0.9, weight decay 2e-4, batch 128,
warm-up 5 epochs then ×0.1 at epoch 160; evaluation on the balanced test set every epoch, best top-1 kept;
many/medium/few by the index ranges [0,36)/[36,71)/[71,100) and by the >100/<20 thresholds.

Command:
  python main.py --config configs/arb_cifar100.py --workdir runs/arb_cifar100
Expected: the target is the ARB paper's CIFAR-100-LT ratio-100 top-1, which is MISSING here (the ARB README has no
table and arXiv 2204.08735 could not be opened offline; `published()` below reports it as missing, and the table
runner prints "missing" beside this row). Orientation: the same trainer with CE + mixup (MiSLAS stage 1,
configs/cifar_lt.py row ce_mixup) is published at 39.5% top-1.
Cost: about 2.2M training images: 1.5 h on a 2-core Intel CPU (measured tf.data-fed rate, 410 img/s, with the
defaults: 4 steps per compiled call, one-pass BatchNorm statistics; docs/BENCHMARKS.md), minutes on one GPU.
Other rows: configs/cifar_lt.py.
"""

from configs import cifar_lt

ARGS = {"dataset": "cifar100", "imb": "0.01", "row": "arb"}
__doc__ += "\nPublished: " + cifar_lt.PUBLISHED[("cifar100", 0.01, "arb")].text() + " (" + \
    cifar_lt.PUBLISHED[("cifar100", 0.01, "arb")].source + ")\n"


def published(args: dict = None):
  """The headline cell's published number, from configs/cifar_lt.py's PUBLISHED (one place)."""
  return cifar_lt.published(dict(ARGS))


def get_config():
  return cifar_lt.get_config("dataset=cifar100,imb=0.01,row=arb")
