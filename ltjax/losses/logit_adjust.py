"""Logit-adjusted cross-entropy (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021, eq. 10).

With training-set class priors π_c = n_c / Σ_k n_k and a temperature τ, for logits z [B, C] and labels y [B]:

  ℓ_i = −log softmax(z_i + τ·log π)_{y_i} = −(z_{i,y_i} + τ log π_{y_i}) + logsumexp_c(z_ic + τ log π_c)
  L   = (1/B) Σ_i ℓ_i

∂ℓ_i/∂z_ic = softmax(z_i + τ log π)_c − 1{c = y_i}. At test time the raw logits z are used (the adjustment lives in
the loss only). τ = 1 is the paper's default; τ = 0 is plain cross-entropy. Classes with n_c = 0 would get log 0:
their prior is floored at 1 / (2·Σ_k n_k), half an example.

Config: `loss.name = 'logit_adjust'`, `loss.la_tau` (1.0).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ltjax.losses import registry


def log_priors(counts) -> np.ndarray:
  """log π_c = log(n_c / Σ n), float32 [C]; an empty class counts as half an example."""
  n = np.asarray(counts, np.float64)
  total = n.sum()
  return np.log(np.maximum(n, 0.5) / total).astype(np.float32)


def logit_adjusted_loss(logits: jax.Array, labels: jax.Array, log_prior: jax.Array, tau: float = 1.0) -> jax.Array:
  """Mean over the batch of −log softmax(z + τ·log π)_y. logits [B, C] (computed in float32), labels [B] int,
  log_prior [C] → float32 scalar."""
  z = jnp.asarray(logits, jnp.float32) + tau * jnp.asarray(log_prior, jnp.float32)
  logp = jax.nn.log_softmax(z, axis=-1)
  return -jnp.mean(jnp.take_along_axis(logp, jnp.asarray(labels, jnp.int32)[:, None], axis=-1))


@registry.register("logit_adjust", accepts_class_weights=False, defaults={"la_tau": 1.0})
def _logit_adjust(p, counts):
  """logit_adjusted_loss(z, y, log π(counts), la_tau)."""
  log_prior, tau = jnp.asarray(log_priors(counts)), float(p.la_tau)
  return lambda z, y, *, class_weights=None, count_labels=None: logit_adjusted_loss(z, y, log_prior, tau)
