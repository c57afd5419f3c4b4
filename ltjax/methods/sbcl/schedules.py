"""SBCL's ImageNet-LT learning-rate schedules (Hou et al., "Subclass-balancing Contrastive Learning for Long-tailed
Recognition", ICCV 2023; official `main_moco_sbcl.py` / `main_lincls.py`), registered into
`ltjax.train.optim.SCHEDULES` under their function names."""

import math

from ltjax.train import optim


@optim.register_schedule("sbcl_moco_cosine")
def sbcl_moco_cosine(e: int, base_lr: float, num_epochs: int) -> float:
  """SBCL ImageNet stage 1 (SBCL `moco/main.py`): a cosine without floor restarted for phase 2, P = num_epochs / 2:
  lr_e = lr·0.5·(1 + cos(π·(e mod P)/P)) (0-based e; 0.1 at epochs 0 and P)."""
  P = num_epochs // 2
  return base_lr * 0.5 * (1.0 + math.cos(math.pi * (e % P) / P))


@optim.register_schedule("sbcl_imagenet_linear_step")
def sbcl_imagenet_linear_step(e: int, base_lr: float) -> float:
  """SBCL ImageNet stage 2 (SBCL `moco/linear_classify.py`, `--schedule 20 30`): lr·0.1 once e+1 ≥ 20 and again once e+1
  ≥ 30."""
  return base_lr * 0.1 ** sum(1 for m in (20, 30) if e + 1 >= m)
