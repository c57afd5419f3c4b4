"""MiSLAS stage 2 on a stage-1 checkpoint (dvlab-research/MiSLAS `train_stage2.py`, `methods.py`,
`datasets/sampler.py`).

What the official stage 2 does, and where each part lives here:

* The stage-1 backbone is frozen (features computed under no_grad): `train.trainable = '^fc/'`.
* "Shift learning on BN" (`shift_bn`): the frozen backbone runs in train mode, so BatchNorm normalises with the
  batch statistics and re-estimates its running statistics on the class-balanced batches (γ, β stay fixed):
  `train.frozen_bn = 'train'`; without it the backbone runs in eval mode: `train.frozen_bn = 'eval'`.
* The stage-1 classifier is kept and fine-tuned, followed by learnable weight scaling z ← z ⊙ s (s [C], init 1):
  `model.head = 'linear_lws'` (`fc/lws`; `init.exclude = ('^fc/lws$',)` loads everything else from stage 1).
* Label-aware smoothing: `loss.name = 'las'` with the config's smooth_head / smooth_tail (`las_head`, `las_tail`).
* SGD, momentum 0.9, weight decay on both groups; the classifier group at `lr_factor`·lr, LWS at lr:
  `optim.lr_mults = ('^fc/(kernel|bias)$=<lr_factor>',)`.
* lr_e = ½·lr·(1 + cos(π̃·e/E)) with π̃ = 3.1415926535, set per epoch, E = 10: `optim.schedule = 'arb_cosine'`.
* The class-aware sampler (4 consecutive items per visited class, `ClassAwareSampler`): this method's
  `epoch_order`. Its loader holds max_c n_c · C draws, but the loop stops once `i > end_steps` with
  end_steps = ⌈N/B⌉, so every epoch trains ⌈N/B⌉ + 1 batches of B (N = the long-tailed training set): the epoch
  order here is (⌈N/B⌉ + 1)·B class-aware draws.
* Evaluation with the LWS-scaled logits, the best epoch by test top-1 (`train.select_on = 'test'`).

The method itself is `Supervised` (loss, class weights, mixup) with that epoch order; `validate` checks that the
config has the parts above (a frozen backbone, the LWS head, a stage-1 run), each with the fix.
"""

from __future__ import annotations

import numpy as np

from ltjax.data import samplers
from ltjax.errors import ConfigError
from ltjax.methods.supervised import CLASS_AWARE_PER_CLASS, Supervised


def epoch_length(n_train: int, batch_size: int) -> int:
  """Draws per epoch of MiSLAS stage 2: (⌈N/B⌉ + 1)·B (the official loop's `if i > end_steps: break`)."""
  return (-(-int(n_train) // int(batch_size)) + 1) * int(batch_size)


class MiSLASStage2(Supervised):
  name = "mislas"

  @staticmethod
  def config_defaults():
    return None  # its settings are the supervised, loss, model, optim and train sections' (module docstring)

  @staticmethod
  def validate(cfg) -> None:
    Supervised.validate(cfg)
    if cfg.supervised.train_rule != "none":
      raise ConfigError(f"method 'mislas' samples class-aware itself: set config.supervised.train_rule = 'none' (got "
                        f"{cfg.supervised.train_rule!r})")
    if not cfg.train.trainable:
      raise ConfigError("method 'mislas' trains the classifier on a frozen stage-1 backbone: set "
                        "config.train.trainable = '^fc/'")
    if cfg.model.head != "linear_lws":
      raise ConfigError(f"method 'mislas' needs learnable weight scaling: set config.model.head = 'linear_lws' (got "
                        f"{cfg.model.head!r})")

  def epoch_order(self, epoch: int, seed: int) -> np.ndarray:
    """Class-aware draws (4 per visited class), (⌈N/B⌉ + 1)·B of them, a pure function of (seed, epoch)."""
    n = epoch_length(len(self.train_labels), self.cfg.train.batch_size)
    return samplers.class_aware_order(self.train_labels, self.stats.num_classes, seed, epoch,
                                      per_class=CLASS_AWARE_PER_CLASS, length=n)
