"""Loss functions (pure, jit-able, over arrays), one module per kind, and the supervised loss registry.

Functions (formula and shapes in each docstring):
  core.py               softmax_cross_entropy, per_example_ce, focal_loss, ldam_loss, balanced_softmax_loss,
                        mixup_loss
  arb.py                arb_loss, arb_focal_loss, weighted_arb_loss, batch_class_counts, arb_log_prob, clamp_logits
  smoothing.py          label_aware_smoothing_loss
  weights.py            (numpy, host side) effective_number_weights, drw_weights, resample_probabilities,
                        ldam_margins, las_epsilons
  contrastive.py        l2_normalize, InfoNCE, SupCon and SBCL's losses (self-supervised / contrastive methods)
  contrastive_queue.py  SBCL-MoCo's losses against label queues
  partial_label.py      CORR, RECORDS, SoLar (partial-label methods)
  logit_adjust.py       logit_adjusted_loss (Menon et al., ICLR 2021)

Registry (`registry.py`): `config.loss.name` picks one of the losses registered with `registry.register`, each next to
its function, with its config fields and their defaults; `make(name, cfg, class_counts)` builds

    fn(logits [B, C], labels [B], *, class_weights=None, count_labels=None) -> float32 scalar

  name               fields (default)
  ce                 —
  focal              focal_gamma (1.0)
  ldam               ldam_max_m (0.5), ldam_s (30.0)                           head 'cosine': logits are cosines
  balanced_softmax   —                                                         z + log n, global counts
  arb                arb_counts ('batch' | 'global'), arb_clamp (30.0), reduction ('mean' | 'sum')
  arb_focal          arb_focal_alpha (1.0), arb_focal_gamma (2.0), arb_counts, arb_clamp, reduction
  warb               arb_counts (also the m̄ mode), arb_clamp, reduction
  las                las_head (0.4), las_tail (0.1), las_shape ('concave'), las_power (3.0; used by 'exp')
  logit_adjust       la_tau (1.0)                                              logit_adjust.py (Menon et al. 2021)

Every module of this package is imported here, so a loss registered in a new module is found without further edits.
"""

from __future__ import annotations

import importlib
import pkgutil

from ltjax.losses.arb import (ARB_COUNT_MODES, REDUCTIONS, arb_focal_loss, arb_log_prob, arb_loss,  # noqa: F401
                              batch_class_counts, check_reduction, clamp_logits, weighted_arb_loss)
from ltjax.losses.core import (balanced_softmax_loss, focal_loss, ldam_loss, mixup_loss, per_example_ce,  # noqa: F401
                               softmax_cross_entropy)
from ltjax.losses.registry import (REGISTRY, config_defaults, eval_scale, head_for, make, register,  # noqa: F401
                                   validate)
from ltjax.losses.smoothing import label_aware_smoothing_loss  # noqa: F401
from ltjax.losses.weights import (LAS_SHAPES, drw_weights, effective_number_weights, las_epsilons,  # noqa: F401
                                  ldam_margins, resample_probabilities)

__all__ = [
    "REGISTRY", "make", "register", "config_defaults", "validate", "head_for", "REDUCTIONS", "LAS_SHAPES",
    "ARB_COUNT_MODES", "softmax_cross_entropy", "per_example_ce", "focal_loss", "ldam_loss", "balanced_softmax_loss",
    "label_aware_smoothing_loss", "mixup_loss",
    "arb_loss", "arb_log_prob", "arb_focal_loss", "weighted_arb_loss", "batch_class_counts", "clamp_logits",
    "check_reduction",
    "effective_number_weights", "drw_weights", "resample_probabilities", "ldam_margins", "las_epsilons",
]

# Every loss module registers its losses on import.
for _m in pkgutil.iter_modules(__path__):
  importlib.import_module(f"{__name__}.{_m.name}")
