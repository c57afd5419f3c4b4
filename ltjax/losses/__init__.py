"""Loss functions and the loss registry.

`make(name, cfg, class_counts)` returns `fn(logits, labels, *, class_weights=None, count_labels=None) -> scalar`
with the static constants (margins, counts, hyper-parameters from the config's `loss` section) bound.
`count_labels` are the un-mixed batch labels from which ARB counts classes (default: `labels`).

`REGISTRY[name]` is a factory `(cfg, class_counts) -> fn`; each factory carries `accepts_class_weights` (True for
ce, focal, ldam: the only losses that use `class_weights`; the others ignore the argument). Config fields read
(getattr with default): reduction ('mean'; ARB family only), focal_gamma (1.0), ldam_max_m (0.5), ldam_s (30.0),
arb_counts ('batch' | 'global'), arb_clamp (30.0), arb_focal_alpha (1.0), arb_focal_gamma (2.0), las_head (0.4),
las_tail (0.1), las_shape ('concave'), las_power (3.0).
"""

from __future__ import annotations

from typing import Callable, Dict

import jax.numpy as jnp
import numpy as np

from ltjax.losses.arb import (REDUCTIONS, arb_focal_loss, arb_log_prob, arb_loss, batch_class_counts,  # noqa: F401
                              check_reduction, clamp_logits, weighted_arb_loss)
from ltjax.losses.core import (balanced_softmax_loss, focal_loss, label_aware_smoothing_loss,  # noqa: F401
                               ldam_loss, mixup_loss, per_example_ce, softmax_cross_entropy)
from ltjax.losses.weights import (LAS_SHAPES, drw_weights, effective_number_weights, las_epsilons,  # noqa: F401
                                  ldam_margins, resample_probabilities)

__all__ = [
    "REGISTRY", "make", "register", "REDUCTIONS", "LAS_SHAPES", "ARB_COUNT_MODES",
    "softmax_cross_entropy", "per_example_ce", "focal_loss", "ldam_loss", "balanced_softmax_loss",
    "label_aware_smoothing_loss", "mixup_loss",
    "arb_loss", "arb_log_prob", "arb_focal_loss", "weighted_arb_loss", "batch_class_counts", "clamp_logits",
    "check_reduction",
    "effective_number_weights", "drw_weights", "resample_probabilities", "ldam_margins", "las_epsilons",
]

ARB_COUNT_MODES = ("batch", "global")

REGISTRY: Dict[str, Callable] = {}


def register(name: str, accepts_class_weights: bool):
  """Decorator: put a factory `(cfg, class_counts) -> fn` into REGISTRY under `name`."""
  def deco(factory):
    factory.accepts_class_weights = accepts_class_weights
    REGISTRY[name] = factory
    return factory
  return deco


def _get(cfg, name, default):
  return getattr(cfg, name, default) if cfg is not None else default


@register("ce", accepts_class_weights=True)
def _ce(cfg, counts):
  return lambda z, y, *, class_weights=None, count_labels=None: softmax_cross_entropy(z, y, class_weights)


@register("focal", accepts_class_weights=True)
def _focal(cfg, counts):
  gamma = float(_get(cfg, "focal_gamma", 1.0))
  return lambda z, y, *, class_weights=None, count_labels=None: focal_loss(z, y, gamma, class_weights)


@register("ldam", accepts_class_weights=True)
def _ldam(cfg, counts):
  margins = jnp.asarray(ldam_margins(counts, float(_get(cfg, "ldam_max_m", 0.5))))
  s = float(_get(cfg, "ldam_s", 30.0))
  return lambda z, y, *, class_weights=None, count_labels=None: ldam_loss(z, y, margins, s, class_weights)


@register("balanced_softmax", accepts_class_weights=False)
def _balanced_softmax(cfg, counts):
  n = jnp.asarray(np.asarray(counts, np.float32))
  return lambda z, y, *, class_weights=None, count_labels=None: balanced_softmax_loss(z, y, n)


def _arb_setup(cfg, counts):
  """(mode, count function count_labels → n [C], clamp, reduction), validated at build time."""
  mode = _get(cfg, "arb_counts", "batch")
  if mode not in ARB_COUNT_MODES:
    raise ValueError(f"arb_counts must be one of {ARB_COUNT_MODES}, got {mode!r}")
  if mode == "global":
    n = jnp.asarray(np.asarray(counts, np.float32))
    n_of = lambda labels: n  # noqa: E731
  else:
    c = len(counts)
    n_of = lambda labels: batch_class_counts(labels, c)  # noqa: E731
  return mode, n_of, float(_get(cfg, "arb_clamp", 30.0)), check_reduction(_get(cfg, "reduction", "mean"))


@register("arb", accepts_class_weights=False)
def _arb(cfg, counts):
  _, n_of, clamp, red = _arb_setup(cfg, counts)
  return lambda z, y, *, class_weights=None, count_labels=None: arb_loss(
      z, y, n_of(y if count_labels is None else count_labels), clamp, red)


@register("arb_focal", accepts_class_weights=False)
def _arb_focal(cfg, counts):
  _, n_of, clamp, red = _arb_setup(cfg, counts)
  a, g = float(_get(cfg, "arb_focal_alpha", 1.0)), float(_get(cfg, "arb_focal_gamma", 2.0))
  return lambda z, y, *, class_weights=None, count_labels=None: arb_focal_loss(
      z, y, n_of(y if count_labels is None else count_labels), a, g, clamp, red)


@register("warb", accepts_class_weights=False)
def _warb(cfg, counts):
  mode, n_of, clamp, red = _arb_setup(cfg, counts)
  return lambda z, y, *, class_weights=None, count_labels=None: weighted_arb_loss(
      z, y, n_of(y if count_labels is None else count_labels), mode, clamp, red)


@register("las", accepts_class_weights=False)
def _las(cfg, counts):
  eps = jnp.asarray(las_epsilons(counts, float(_get(cfg, "las_head", 0.4)), float(_get(cfg, "las_tail", 0.1)),
                                 _get(cfg, "las_shape", "concave"), float(_get(cfg, "las_power", 3.0))))
  return lambda z, y, *, class_weights=None, count_labels=None: label_aware_smoothing_loss(z, y, eps)


def make(name: str, cfg, class_counts) -> Callable:
  """Build `fn(logits, labels, *, class_weights=None, count_labels=None) -> scalar` = REGISTRY[name](cfg, counts)."""
  if name not in REGISTRY:
    raise ValueError(f"unknown loss {name!r} (known: {sorted(REGISTRY)})")
  return REGISTRY[name](cfg, np.asarray(class_counts))
