"""MoCo v2 pre-training (He et al., CVPR 2020; Chen et al., arXiv 2003.04297), as used by "Rethinking the Value of
Labels" (Yang & Xu, NeurIPS 2020): `method.py` holds the Method, `core.py` the pure pieces (momentum update, queue,
shuffle-BN). The InfoNCE loss is `ltjax.losses.contrastive`."""

from ltjax.methods.moco.method import MoCo, head_kind, moco_defaults, validate_moco  # noqa: F401
