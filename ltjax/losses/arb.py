"""ARB-Loss and its variants (spec ARB_AND_SEMISELF §2.1–2.2).

With clamped logits ẑ = clip(z, −30, 30) (gradient zero outside), counts n [C] and w_ic = n_c / n_{y_i}:
  S_i = Σ_c w_ic·e^{ẑ_ic},   p_i = e^{ẑ_{i,y_i}} / S_i,   ℓ_i = −log p_i
      = −(ẑ_{i,y_i} + log n_{y_i}) + logsumexp_c(ẑ_ic + log n_c)
Classes with n_c = 0 (absent from the batch) drop out of the sum. ∂ℓ_i/∂z_ic = [w_ic e^{ẑ_ic}/S_i − 1{c=y_i}]
·1{|z_ic| ≤ 30}.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

REDUCTIONS = ("mean", "sum")


def batch_class_counts(labels, num_classes: int):
  """n_c = #{i : y_i = c}, float32 [C]."""
  return jnp.zeros([num_classes], jnp.float32).at[labels].add(1.0)


def _reduce(per_example, reduction: str):
  if reduction == "mean":
    return jnp.mean(per_example)
  if reduction == "sum":
    return jnp.sum(per_example)
  raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def arb_log_prob(logits, labels, counts, clamp: float = 30.0):
  """log p_i [B] of the ARB softmax (see module docstring)."""
  z = jnp.clip(jnp.asarray(logits, jnp.float32), -clamp, clamp)
  n = jnp.asarray(counts, jnp.float32)
  present = n > 0
  log_n = jnp.log(jnp.where(present, n, 1.0))
  shifted = jnp.where(present, z + log_n, -jnp.inf)
  lse = jax.nn.logsumexp(shifted, axis=-1)
  target = jnp.take_along_axis(z + log_n, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]
  return target - lse


def arb_loss(logits, labels, counts, clamp: float = 30.0, reduction: str = "mean"):
  """ARB-Loss: reduction over ℓ_i = −log p_i."""
  if reduction not in REDUCTIONS:
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
  return _reduce(-arb_log_prob(logits, labels, counts, clamp), reduction)


def arb_focal_loss(logits, labels, counts, alpha: float = 1.0, gamma: float = 2.0, clamp: float = 30.0,
                   reduction: str = "mean"):
  """ARB focal (§2.2): ℓ_i = −α (1 − p_i)^γ log p_i."""
  if reduction not in REDUCTIONS:
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
  logp = arb_log_prob(logits, labels, counts, clamp)
  return _reduce(-alpha * (1.0 - jnp.exp(logp)) ** gamma * logp, reduction)


def weighted_arb_loss(logits, labels, counts, mode: str = "batch", clamp: float = 30.0, reduction: str = "mean"):
  """Weighted ARB (§2.2): ℓ_i = ω_i·(−log p_i), ω_i = m̄ / n_{y_i}; m̄ = B / #{c : n_c > 0} (batch) or Σ_c n_c / C
  (global)."""
  if reduction not in REDUCTIONS:
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
  n = jnp.asarray(counts, jnp.float32)
  if mode == "batch":
    m = labels.shape[0] / jnp.sum(n > 0)
  elif mode == "global":
    m = jnp.sum(n) / n.shape[0]
  else:
    raise ValueError(f"mode must be 'batch' or 'global', got {mode!r}")
  omega = m / n[labels]
  return _reduce(-omega * arb_log_prob(logits, labels, counts, clamp), reduction)
