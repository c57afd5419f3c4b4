"""SBCL (Hou et al., "Subclass-balancing Contrastive Learning for Long-tailed Recognition", ICCV 2023).

  method.py       `SBCL`: the CIFAR two-view SupCon stage with per-class subclasses
  moco_method.py  `SbclMoco`: the ImageNet-LT stage on a MoCo encoder with class / subclass label queues
  clustering.py   host/device k-means and the subclass layout
  schedules.py    the ImageNet-LT LR schedules (registered into ltjax.train.optim)
The losses are `ltjax.losses.contrastive` and `ltjax.losses.contrastive_queue`."""

from ltjax.methods.sbcl import schedules  # noqa: F401  (registers the SBCL schedules)
from ltjax.methods.sbcl.method import SBCL  # noqa: F401
from ltjax.methods.sbcl.moco_method import SbclMoco  # noqa: F401
