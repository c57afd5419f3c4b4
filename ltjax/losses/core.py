"""Softmax-family losses over logits z [B, C] and integer labels y [B] (spec ARB_AND_SEMISELF §3.1, §2.7).

All return a scalar. Computation in float32 (bf16 inputs are upcast).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp


def _f32(x):
  return jnp.asarray(x, jnp.float32)


def per_example_ce(logits, labels):
  """CE_i = −log softmax(z_i)_{y_i}, [B]."""
  logp = jax.nn.log_softmax(_f32(logits), axis=-1)
  return -jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]


def softmax_cross_entropy(logits, labels, class_weights: Optional[jax.Array] = None):
  """Mean CE, or PyTorch's weighted mean L = Σ_i w_{y_i} CE_i / Σ_i w_{y_i} when class_weights [C] are given."""
  ce = per_example_ce(logits, labels)
  if class_weights is None:
    return jnp.mean(ce)
  w = _f32(class_weights)[labels]
  return jnp.sum(w * ce) / jnp.sum(w)


def focal_loss(logits, labels, gamma: float = 1.0, class_weights: Optional[jax.Array] = None):
  """The LDAM-DRW/SS focal loss with its quirk: ℓ_i = w_{y_i}·CE_i (w ≡ 1 without weights), p̃_i = exp(−ℓ_i),
  L = (1/B) Σ_i (1 − p̃_i)^γ ℓ_i (a plain mean; with weights p̃_i is not the true class probability)."""
  ell = per_example_ce(logits, labels)
  if class_weights is not None:
    ell = _f32(class_weights)[labels] * ell
  p = jnp.exp(-ell)
  return jnp.mean((1.0 - p) ** gamma * ell)


def ldam_loss(cosines, labels, margins, s: float = 30.0, class_weights: Optional[jax.Array] = None):
  """LDAM: z'_ic = s·(z_ic − m_{y_i}·1{c = y_i}) on cosine logits, then (weighted) CE(z', y)."""
  z = _f32(cosines)
  onehot = jax.nn.one_hot(labels, z.shape[-1], dtype=jnp.float32)
  adjusted = s * (z - onehot * _f32(margins)[labels][:, None])
  return softmax_cross_entropy(adjusted, labels, class_weights)


def balanced_softmax_loss(logits, labels, counts):
  """Balanced softmax: CE on z_ic + log n_c (equals ARB-Loss with global counts while no logit is clamped)."""
  return softmax_cross_entropy(_f32(logits) + jnp.log(_f32(counts)), labels)


def label_aware_smoothing_loss(logits, labels, eps):
  """MiSLAS LAS: mean_i [(1 − ε_{y_i})·(−log p_{i,y_i}) + ε_{y_i}·mean_c(−log p_ic)] with ε [C] per class."""
  logp = jax.nn.log_softmax(_f32(logits), axis=-1)
  e = _f32(eps)[labels]
  nll = -jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]
  return jnp.mean((1.0 - e) * nll + e * (-jnp.mean(logp, axis=-1)))


def mixup_loss(loss_fn, logits, labels_a, labels_b, lam, **kw):
  """Mixup composition λ·L(z, y_a) + (1 − λ)·L(z, y_b) (spec §2.3; ARB's own `methods.py` is missing, this is the
  natural reading, recorded in docs/DEVIATIONS.md)."""
  return lam * loss_fn(logits, labels_a, **kw) + (1.0 - lam) * loss_fn(logits, labels_b, **kw)
