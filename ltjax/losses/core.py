"""Softmax-family losses over logits z [B, C] and integer labels y [B] (spec ARB_AND_SEMISELF §3.1, §2.7, §2.3).

All return a float32 scalar; log-softmax is computed in float32 (bf16 inputs are upcast). All are jit-able; the
per-class vectors (class weights w [C], margins m [C], counts n [C], smoothing ε [C]) are explicit arguments.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp


def _f32(x):
  return jnp.asarray(x, jnp.float32)


def _int(labels):
  return jnp.asarray(labels).astype(jnp.int32)


def per_example_ce(logits, labels):
  """CE_i = −log softmax(z_i)_{y_i}: logits [B, C], labels [B] → [B] float32."""
  logp = jax.nn.log_softmax(_f32(logits), axis=-1)
  return -jnp.take_along_axis(logp, _int(labels)[:, None], axis=-1)[:, 0]


def softmax_cross_entropy(logits, labels, class_weights: Optional[jax.Array] = None):
  """Cross-entropy (§3.1). logits [B, C], labels [B], class_weights [C] or None → scalar.

  L = (1/B) Σ_i CE_i without weights; PyTorch's weighted mean L = Σ_i w_{y_i} CE_i / Σ_i w_{y_i} with weights."""
  ce = per_example_ce(logits, labels)
  if class_weights is None:
    return jnp.mean(ce)
  w = _f32(class_weights)[_int(labels)]
  return jnp.sum(w * ce) / jnp.sum(w)


def focal_loss(logits, labels, gamma: float = 1.0, class_weights: Optional[jax.Array] = None):
  """The LDAM-DRW/SS focal loss with its quirk (§3.1). logits [B, C], labels [B], class_weights [C] or None → scalar.

  ℓ_i = w_{y_i}·CE_i (w ≡ 1 without weights), p̃_i = exp(−ℓ_i), L = (1/B) Σ_i (1 − p̃_i)^γ ℓ_i — a plain mean (not
  weight-normalised); with weights p̃_i is not the true class probability. γ = 0 gives mean_i ℓ_i."""
  ell = per_example_ce(logits, labels)
  if class_weights is not None:
    ell = _f32(class_weights)[_int(labels)] * ell
  p = jnp.exp(-ell)
  return jnp.mean((1.0 - p) ** gamma * ell)


def ldam_loss(cosines, labels, margins, s: float = 30.0, class_weights: Optional[jax.Array] = None):
  """LDAM (§3.1). cosines [B, C] (cosine head), labels [B], margins m [C], class_weights [C] or None → scalar.

  z'_ic = s·(z_ic − m_{y_i}·1{c = y_i}), then the (weighted) cross-entropy CE(z', y) of `softmax_cross_entropy`."""
  z = _f32(cosines)
  y = _int(labels)
  onehot = jax.nn.one_hot(y, z.shape[-1], dtype=jnp.float32)
  adjusted = s * (z - onehot * _f32(margins)[y][:, None])
  return softmax_cross_entropy(adjusted, y, class_weights)


def balanced_softmax_loss(logits, labels, counts):
  """Balanced softmax. logits [B, C], labels [B], counts n [C] (all > 0) → scalar: mean CE on z_ic + log n_c.
  (Equals ARB-Loss with global counts while no logit is clamped.)"""
  return softmax_cross_entropy(_f32(logits) + jnp.log(_f32(counts)), labels)


def label_aware_smoothing_loss(logits, labels, eps):
  """MiSLAS label-aware smoothing (§2.7). logits [B, C], labels [B], eps ε [C] (from `las_epsilons`) → scalar.

  L = mean_i [(1 − ε_{y_i})·(−log p_{i,y_i}) + ε_{y_i}·mean_c(−log p_ic)], p = softmax(z)."""
  logp = jax.nn.log_softmax(_f32(logits), axis=-1)
  y = _int(labels)
  e = _f32(eps)[y]
  nll = -jnp.take_along_axis(logp, y[:, None], axis=-1)[:, 0]
  return jnp.mean((1.0 - e) * nll + e * (-jnp.mean(logp, axis=-1)))


def mixup_loss(loss_fn, logits, labels_a, labels_b, lam, **kw):
  """Mixup composition (§2.3): L = λ·L(z, y_a) + (1 − λ)·L(z, y_b), extra keyword arguments passed to both calls.

  Exact for CE (MiSLAS). ASSUMPTION for ARB: ARB imports a 7-argument `mixup_criterion` from a `methods.py` that is
  missing from its repository; we use the natural reading λ·ARB(z, y_a, n) + (1 − λ)·ARB(z, y_b, n) with the *same*
  count vector n for both terms (batch counts of the un-mixed labels y_a — equal to those of the permutation y_b —
  or the global counts). Recorded in docs/DEVIATIONS.md."""
  return lam * loss_fn(logits, labels_a, **kw) + (1.0 - lam) * loss_fn(logits, labels_b, **kw)
