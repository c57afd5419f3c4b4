"""The self-supervised and decoupling parts of "Rethinking the Value of Labels for Improving Class-Imbalanced
Learning" (Yang & Xu, NeurIPS 2020; official imbalanced-semi-self): rotation pre-training (`rotation.py`) and
the ImageNet-LT / iNaturalist decoupling rows, cRT included (`decouple.py`). MoCo pre-training is `ltjax.methods.moco`;
the semi-supervised rows are `supervised` with `config.data.unlabeled`."""

from ltjax.methods.semi_self.decouple import Decouple  # noqa: F401
from ltjax.methods.semi_self.rotation import Rotation  # noqa: F401
