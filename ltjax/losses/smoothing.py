"""MiSLAS label-aware smoothing loss (spec ARB_AND_SEMISELF §2.7). The per-class ε vector comes from
`ltjax.losses.weights.las_epsilons`; ARB's shipped configs never enable it (`LAS: False`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


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
