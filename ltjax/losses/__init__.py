"""Loss functions and the loss registry.

`make(name, cfg, class_counts)` returns `fn(logits, labels, *, class_weights=None, count_labels=None) -> scalar`
with the static constants (margins, counts, hyper-parameters from the config's `loss` section) bound.
`count_labels` are the un-mixed batch labels from which ARB counts classes (default: `labels`).
"""

from __future__ import annotations

from typing import Callable, Dict

import jax.numpy as jnp
import numpy as np

from ltjax.losses.arb import (arb_focal_loss, arb_log_prob, arb_loss, batch_class_counts,  # noqa: F401
                              weighted_arb_loss)
from ltjax.losses.core import (balanced_softmax_loss, focal_loss, label_aware_smoothing_loss,  # noqa: F401
                               ldam_loss, mixup_loss, per_example_ce, softmax_cross_entropy)
from ltjax.losses.weights import (drw_weights, effective_number_weights, las_epsilons,  # noqa: F401
                                  ldam_margins, resample_probabilities)

REGISTRY: Dict[str, Callable] = {}


def register(name: str, accepts_class_weights: bool):
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


def _arb_counts(cfg, counts):
  """A function count_labels → n [C]: batch counts, or the global training counts ('ugcc')."""
  mode = _get(cfg, "arb_counts", "batch")
  if mode == "global":
    n = jnp.asarray(np.asarray(counts, np.float32))
    return lambda labels: n
  if mode == "batch":
    c = len(counts)
    return lambda labels: batch_class_counts(labels, c)
  raise ValueError(f"arb_counts must be 'batch' or 'global', got {mode!r}")


@register("arb", accepts_class_weights=False)
def _arb(cfg, counts):
  n_of, clamp, red = _arb_counts(cfg, counts), float(_get(cfg, "arb_clamp", 30.0)), _get(cfg, "reduction", "mean")
  return lambda z, y, *, class_weights=None, count_labels=None: arb_loss(
      z, y, n_of(y if count_labels is None else count_labels), clamp, red)


@register("arb_focal", accepts_class_weights=False)
def _arb_focal(cfg, counts):
  n_of, clamp, red = _arb_counts(cfg, counts), float(_get(cfg, "arb_clamp", 30.0)), _get(cfg, "reduction", "mean")
  a, g = float(_get(cfg, "arb_focal_alpha", 1.0)), float(_get(cfg, "arb_focal_gamma", 2.0))
  return lambda z, y, *, class_weights=None, count_labels=None: arb_focal_loss(
      z, y, n_of(y if count_labels is None else count_labels), a, g, clamp, red)


@register("warb", accepts_class_weights=False)
def _warb(cfg, counts):
  mode = _get(cfg, "arb_counts", "batch")
  n_of, clamp, red = _arb_counts(cfg, counts), float(_get(cfg, "arb_clamp", 30.0)), _get(cfg, "reduction", "mean")
  return lambda z, y, *, class_weights=None, count_labels=None: weighted_arb_loss(
      z, y, n_of(y if count_labels is None else count_labels), mode, clamp, red)


@register("las", accepts_class_weights=False)
def _las(cfg, counts):
  eps = jnp.asarray(las_epsilons(counts, float(_get(cfg, "las_head", 0.4)), float(_get(cfg, "las_tail", 0.1)),
                                 _get(cfg, "las_shape", "concave"), float(_get(cfg, "las_power", 3.0))))
  return lambda z, y, *, class_weights=None, count_labels=None: label_aware_smoothing_loss(z, y, eps)


def make(name: str, cfg, class_counts) -> Callable:
  if name not in REGISTRY:
    raise ValueError(f"unknown loss '{name}' (known: {sorted(REGISTRY)})")
  return REGISTRY[name](cfg, np.asarray(class_counts))
