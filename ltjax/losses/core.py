"""Softmax-family losses over logits z [B, C] and integer labels y [B] (imbalanced-semi-self `losses.py`, ARB/MiSLAS
mixup (`train_stage1.py`)).

All return a float32 scalar; log-softmax is computed in float32 (bf16/f16 inputs are upcast). All are jit-able and
differentiable; the per-class vectors (class weights w [C], margins m [C], counts n [C]) are explicit arguments.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from ltjax.losses import registry
from ltjax.losses.weights import ldam_margins


def _f32(x):
  return jnp.asarray(x, jnp.float32)


def _int(labels):
  return jnp.asarray(labels).astype(jnp.int32)


def per_example_ce(logits, labels):
  """CE_i = −log softmax(z_i)_{y_i}: logits [B, C], labels [B] → [B] float32."""
  logp = jax.nn.log_softmax(_f32(logits), axis=-1)
  return -jnp.take_along_axis(logp, _int(labels)[:, None], axis=-1)[:, 0]


def softmax_cross_entropy(logits, labels, class_weights: Optional[jax.Array] = None):
  """Cross-entropy (imbalanced-semi-self `losses.py`). logits [B, C], labels [B] int, class_weights [C] or None →
  float32 scalar.

    no weights:   L = (1/B) Σ_i CE_i
    with weights: L = Σ_i w_{y_i} CE_i / Σ_i w_{y_i}      (PyTorch's weighted mean, `F.cross_entropy(weight=w)`)

  with CE_i = −log softmax(z_i)_{y_i}."""
  ce = per_example_ce(logits, labels)
  if class_weights is None:
    return jnp.mean(ce)
  w = _f32(class_weights)[_int(labels)]
  return jnp.sum(w * ce) / jnp.sum(w)


def focal_loss(logits, labels, gamma: float = 1.0, class_weights: Optional[jax.Array] = None):
  """The LDAM-DRW / imbalanced-semi-self focal loss, with its quirk (imbalanced-semi-self `losses.py`).
  logits [B, C], labels [B] int, class_weights [C] or None → float32 scalar.

    ℓ_i = w_{y_i}·CE_i (w ≡ 1 without weights),   p̃_i = exp(−ℓ_i),   L = (1/B) Σ_i (1 − p̃_i)^γ ℓ_i

  The weights sit *inside* the exponent, so with weights p̃_i is not the true class probability, and the mean is a
  plain mean over B (not weight-normalised). γ = 0 gives (1/B) Σ_i w_{y_i} CE_i."""
  ell = per_example_ce(logits, labels)
  if class_weights is not None:
    ell = _f32(class_weights)[_int(labels)] * ell
  p = jnp.exp(-ell)
  return jnp.mean((1.0 - p) ** gamma * ell)


def ldam_loss(cosines, labels, margins, s: float = 30.0, class_weights: Optional[jax.Array] = None):
  """LDAM (imbalanced-semi-self `losses.py`). cosines z [B, C] (the cosine head's output), labels [B] int, margins m [C]
  (`ldam_margins`),
  class_weights [C] or None → float32 scalar.

    z'_ic = s·(z_ic − m_{y_i}·1{c = y_i}),   L = softmax_cross_entropy(z', y, class_weights)   (weighted mean)"""
  z = _f32(cosines)
  y = _int(labels)
  onehot = jax.nn.one_hot(y, z.shape[-1], dtype=jnp.float32)
  adjusted = s * (z - onehot * _f32(margins)[y][:, None])
  return softmax_cross_entropy(adjusted, y, class_weights)


def balanced_softmax_loss(logits, labels, counts):
  """Balanced softmax. logits z [B, C], labels [B] int, counts n [C] → float32 scalar.

    L = (1/B) Σ_i −log softmax(z_i + log n)_{y_i}          (no clamp)

  This equals `arb_loss(z, y, n)` with the global counts whenever no logit is clamped (|z| ≤ 30): ARB's ℓ_i is
  exactly this cross-entropy on the clamped logits. A class with n_c = 0 drops out of the softmax (log 0 = −∞, zero
  gradient); the labels' classes need n_{y_i} > 0 (otherwise the loss is +∞)."""
  return softmax_cross_entropy(_f32(logits) + jnp.log(_f32(counts)), labels)


def mixup_loss(loss_fn, logits, labels_a, labels_b, lam, **kw):
  """Mixup composition (ARB/MiSLAS mixup (`train_stage1.py`)): L = λ·L(z, y_a) + (1 − λ)·L(z, y_b); keyword arguments
  `kw` go to both calls.
  logits [B, C], labels_a/labels_b [B] int (y_b = y_a permuted), lam scalar in [0, 1] → scalar.

  Exact for CE (MiSLAS's `mixup_criterion`). ASSUMPTION for ARB: ARB imports a 7-argument `mixup_criterion` from a
  `methods.py` that is missing from its repository; we use its natural reading
  λ·ARB(z, y_a, n) + (1 − λ)·ARB(z, y_b, n) with the *same* count vector n in both terms (batch counts of the
  un-mixed labels y_a — equal to those of the permutation y_b — or the global counts). With a registry loss pass
  `count_labels=y_a` in `kw` so both terms use y_a's counts. Recorded in docs/DEVIATIONS.md."""
  return lam * loss_fn(logits, labels_a, **kw) + (1.0 - lam) * loss_fn(logits, labels_b, **kw)


# ------------------------------------------------------------------------------------ registered losses (config.loss)
@registry.register("ce", accepts_class_weights=True)
def _ce(p, counts):
  """softmax_cross_entropy(z, y, class_weights)."""
  return lambda z, y, *, class_weights=None, count_labels=None: softmax_cross_entropy(z, y, class_weights)


@registry.register("focal", accepts_class_weights=True, defaults={"focal_gamma": 1.0})
def _focal(p, counts):
  """focal_loss(z, y, focal_gamma, class_weights)."""
  gamma = float(p.focal_gamma)
  return lambda z, y, *, class_weights=None, count_labels=None: focal_loss(z, y, gamma, class_weights)


@registry.register("ldam", accepts_class_weights=True, defaults={"ldam_max_m": 0.5, "ldam_s": 30.0}, head="cosine",
                   scale_field="ldam_s")
def _ldam(p, counts):
  """ldam_loss(cos, y, ldam_margins(counts, ldam_max_m), ldam_s, class_weights); needs cosine logits."""
  margins = jnp.asarray(ldam_margins(counts, float(p.ldam_max_m)))
  s = float(p.ldam_s)
  return lambda z, y, *, class_weights=None, count_labels=None: ldam_loss(z, y, margins, s, class_weights)


@registry.register("balanced_softmax", accepts_class_weights=False)
def _balanced_softmax(p, counts):
  """balanced_softmax_loss(z, y, global counts)."""
  n = jnp.asarray(np.asarray(counts, np.float32))
  return lambda z, y, *, class_weights=None, count_labels=None: balanced_softmax_loss(z, y, n)
