"""MiSLAS label-aware smoothing loss (MiSLAS). The per-class ε vector comes from
`ltjax.losses.weights.las_epsilons`; ARB's shipped configs never enable it (`LAS: False`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ltjax.losses import registry
from ltjax.losses.weights import LAS_SHAPES, las_epsilons


def label_aware_smoothing_loss(logits, labels, eps):
  """Label-aware smoothing. logits z [B, C] (computed in float32), labels y [B] int, eps ε [C] → float32 scalar.

    L = (1/B) Σ_i [(1 − ε_{y_i})·(−log p_{i,y_i}) + ε_{y_i}·(1/C) Σ_c (−log p_ic)],   p = softmax(z).

  ε ≡ 0 gives plain cross-entropy."""
  logp = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)
  y = jnp.asarray(labels).astype(jnp.int32)
  e = jnp.asarray(eps, jnp.float32)[y]
  nll = -jnp.take_along_axis(logp, y[:, None], axis=-1)[:, 0]
  smooth = -jnp.mean(logp, axis=-1)
  return jnp.mean((1.0 - e) * nll + e * smooth)


# ------------------------------------------------------------------------------------ registered losses (config.loss)
@registry.register("las", accepts_class_weights=False, choices={"las_shape": LAS_SHAPES},
                   defaults={"las_head": 0.4, "las_tail": 0.1, "las_shape": "concave", "las_power": 3.0})
def _las(p, counts):
  """label_aware_smoothing_loss(z, y, las_epsilons(counts, las_head, las_tail, las_shape, las_power)); las_power
  is used by the 'exp' shape only."""
  power = None if p.las_power is None else float(p.las_power)
  eps = jnp.asarray(las_epsilons(counts, float(p.las_head), float(p.las_tail), p.las_shape, power))
  return lambda z, y, *, class_weights=None, count_labels=None: label_aware_smoothing_loss(z, y, eps)
