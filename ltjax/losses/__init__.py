"""Loss functions (pure, jit-able, over arrays) and the loss registry.

Functions (formula and shapes in each docstring):
  core.py       softmax_cross_entropy, per_example_ce, focal_loss, ldam_loss, balanced_softmax_loss, mixup_loss
  arb.py        arb_loss, arb_focal_loss, weighted_arb_loss, batch_class_counts, arb_log_prob, clamp_logits
  smoothing.py  label_aware_smoothing_loss
  weights.py    (numpy, host side) effective_number_weights, drw_weights, resample_probabilities, ldam_margins,
                las_epsilons

Registry: `make(name, cfg, class_counts)` returns

    fn(logits [B, C], labels [B], *, class_weights=None, count_labels=None) -> float32 scalar

with the static constants (margins, global counts, smoothing ε, hyper-parameters) bound from `cfg`, an attribute
object (the config's `loss` section, an ml_collections ConfigDict) read with getattr and these defaults:

  name               fields (default)
  ce                 —
  focal              focal_gamma (1.0)
  ldam               ldam_max_m (0.5), ldam_s (30.0)                           logits must be cosines
  balanced_softmax   —                                                         z + log n, global counts
  arb                arb_counts ('batch' | 'global'), arb_clamp (30.0), reduction ('mean' | 'sum')
  arb_focal          arb_focal_alpha (1.0), arb_focal_gamma (2.0), arb_counts, arb_clamp, reduction
  warb               arb_counts (also the m̄ mode), arb_clamp, reduction
  las                las_head (0.4), las_tail (0.1), las_shape ('concave'), las_power (None; needed by 'exp')

`count_labels` are the un-mixed batch labels from which the ARB family counts classes in 'batch' mode (default:
`labels`); the other losses ignore it. `class_weights` ([C] float32 or None) is used by ce, focal and ldam only:
those factories — and the functions they return — carry `accepts_class_weights = True`; every other loss has
`accepts_class_weights = False` and raises ValueError (at trace time) when given class weights that are not None,
rather than silently dropping them. Bad names, reductions, count modes or smoothing shapes raise ValueError when
the loss is built.
"""

from __future__ import annotations

from typing import Callable, Dict

import jax.numpy as jnp
import numpy as np

from ltjax.losses.arb import (REDUCTIONS, arb_focal_loss, arb_log_prob, arb_loss, batch_class_counts,  # noqa: F401
                              check_reduction, clamp_logits, weighted_arb_loss)
from ltjax.losses.core import (balanced_softmax_loss, focal_loss, ldam_loss, mixup_loss,  # noqa: F401
                               per_example_ce, softmax_cross_entropy)
from ltjax.losses.smoothing import label_aware_smoothing_loss  # noqa: F401
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

# name → factory (cfg, class_counts np.ndarray [C]) → fn(logits, labels, *, class_weights, count_labels).
REGISTRY: Dict[str, Callable] = {}


def register(name: str, accepts_class_weights: bool):
  """Decorator: put a factory `(cfg, class_counts) -> fn` into REGISTRY under `name`.

  The factory and every fn it builds get `accepts_class_weights`; when False, the built fn raises ValueError if it
  is called with `class_weights` that are not None."""
  def deco(factory):
    def build(cfg, class_counts):
      inner = factory(cfg, class_counts)
      if accepts_class_weights:
        fn = inner
      else:
        def fn(logits, labels, *, class_weights=None, count_labels=None):
          if class_weights is not None:
            raise ValueError(f"loss {name!r} takes no class weights (losses that do: "
                             f"{[k for k, f in REGISTRY.items() if f.accepts_class_weights]})")
          return inner(logits, labels, class_weights=None, count_labels=count_labels)
      fn.accepts_class_weights = accepts_class_weights
      fn.loss_name = name
      return fn
    build.__name__ = build.__qualname__ = f"make_{name}"
    build.__doc__ = factory.__doc__
    build.accepts_class_weights = accepts_class_weights
    REGISTRY[name] = build
    return build
  return deco


def _get(cfg, name, default):
  return getattr(cfg, name, default) if cfg is not None else default


def _global_counts(counts):
  return jnp.asarray(np.asarray(counts, np.float32))


@register("ce", accepts_class_weights=True)
def _ce(cfg, counts):
  """softmax_cross_entropy(z, y, class_weights)."""
  return lambda z, y, *, class_weights=None, count_labels=None: softmax_cross_entropy(z, y, class_weights)


@register("focal", accepts_class_weights=True)
def _focal(cfg, counts):
  """focal_loss(z, y, focal_gamma, class_weights)."""
  gamma = float(_get(cfg, "focal_gamma", 1.0))
  return lambda z, y, *, class_weights=None, count_labels=None: focal_loss(z, y, gamma, class_weights)


@register("ldam", accepts_class_weights=True)
def _ldam(cfg, counts):
  """ldam_loss(cos, y, ldam_margins(counts, ldam_max_m), ldam_s, class_weights)."""
  margins = jnp.asarray(ldam_margins(counts, float(_get(cfg, "ldam_max_m", 0.5))))
  s = float(_get(cfg, "ldam_s", 30.0))
  return lambda z, y, *, class_weights=None, count_labels=None: ldam_loss(z, y, margins, s, class_weights)


@register("balanced_softmax", accepts_class_weights=False)
def _balanced_softmax(cfg, counts):
  """balanced_softmax_loss(z, y, global counts)."""
  n = _global_counts(counts)
  return lambda z, y, *, class_weights=None, count_labels=None: balanced_softmax_loss(z, y, n)


def _arb_setup(cfg, counts):
  """(mode, count function count_labels → n [C], clamp, reduction), validated at build time."""
  mode = _get(cfg, "arb_counts", "batch")
  if mode not in ARB_COUNT_MODES:
    raise ValueError(f"arb_counts must be one of {ARB_COUNT_MODES}, got {mode!r}")
  if mode == "global":
    n = _global_counts(counts)
    n_of = lambda labels: n  # noqa: E731
  else:
    c = len(counts)
    n_of = lambda labels: batch_class_counts(labels, c)  # noqa: E731
  return mode, n_of, float(_get(cfg, "arb_clamp", 30.0)), check_reduction(_get(cfg, "reduction", "mean"))


@register("arb", accepts_class_weights=False)
def _arb(cfg, counts):
  """arb_loss(z, y, n, arb_clamp, reduction); n = batch counts of count_labels or the global counts."""
  _, n_of, clamp, red = _arb_setup(cfg, counts)
  return lambda z, y, *, class_weights=None, count_labels=None: arb_loss(
      z, y, n_of(y if count_labels is None else count_labels), clamp, red)


@register("arb_focal", accepts_class_weights=False)
def _arb_focal(cfg, counts):
  """arb_focal_loss(z, y, n, arb_focal_alpha, arb_focal_gamma, arb_clamp, reduction)."""
  _, n_of, clamp, red = _arb_setup(cfg, counts)
  a, g = float(_get(cfg, "arb_focal_alpha", 1.0)), float(_get(cfg, "arb_focal_gamma", 2.0))
  return lambda z, y, *, class_weights=None, count_labels=None: arb_focal_loss(
      z, y, n_of(y if count_labels is None else count_labels), a, g, clamp, red)


@register("warb", accepts_class_weights=False)
def _warb(cfg, counts):
  """weighted_arb_loss(z, y, n, arb_counts, arb_clamp, reduction)."""
  mode, n_of, clamp, red = _arb_setup(cfg, counts)
  return lambda z, y, *, class_weights=None, count_labels=None: weighted_arb_loss(
      z, y, n_of(y if count_labels is None else count_labels), mode, clamp, red)


@register("las", accepts_class_weights=False)
def _las(cfg, counts):
  """label_aware_smoothing_loss(z, y, las_epsilons(counts, las_head, las_tail, las_shape, las_power))."""
  power = _get(cfg, "las_power", None)
  eps = jnp.asarray(las_epsilons(counts, float(_get(cfg, "las_head", 0.4)), float(_get(cfg, "las_tail", 0.1)),
                                 _get(cfg, "las_shape", "concave"), None if power is None else float(power)))
  return lambda z, y, *, class_weights=None, count_labels=None: label_aware_smoothing_loss(z, y, eps)


def make(name: str, cfg, class_counts) -> Callable:
  """Build `fn(logits, labels, *, class_weights=None, count_labels=None) -> scalar` = REGISTRY[name](cfg, counts).

  name: a key of REGISTRY (ValueError listing the known names otherwise); cfg: attribute object with the loss's
  hyper-parameters (missing fields take the defaults in the module docstring); class_counts: training-set counts
  [C] (label-indexed)."""
  if name not in REGISTRY:
    raise ValueError(f"unknown loss {name!r} (known: {sorted(REGISTRY)})")
  counts = np.asarray(class_counts)
  if counts.ndim != 1 or counts.size == 0:
    raise ValueError(f"class_counts must be a non-empty 1-D per-class vector, got shape {counts.shape}")
  return REGISTRY[name](cfg, counts)
