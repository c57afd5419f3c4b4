"""ARB-Loss and its variants (ARB `methods.py`; ARB `methods.py` variants).

Shapes: logits z [B, C] (any float dtype, computed in float32), labels y [B] int, counts n [C] float (non-negative;
n_{y_i} > 0 is required for every label in the batch, which batch counts of the same labels — or of a permutation of
them, as under mixup — guarantee; for a label with n_{y_i} = 0 the value is meaningless, upstream gives NaN).

With clamped logits ẑ = clip(z, −clamp, clamp) (clamp = 30; the gradient passes where −clamp ≤ z ≤ clamp,
*inclusive*, as torch.clamp does, and is zero outside) and w_ic = n_c / n_{y_i}:

  S_i = Σ_c w_ic·e^{ẑ_ic},   p_i = e^{ẑ_{i,y_i}} / S_i,   ℓ_i = −log p_i
      = −(ẑ_{i,y_i} + log n_{y_i}) + logsumexp_c(ẑ_ic + log n_c)        (the form computed here)

Classes with n_c = 0 (absent from the batch) drop out of the sum (log n_c = −∞, masked without NaN in value or
gradient). ∂ℓ_i/∂z_ic = [w_ic e^{ẑ_ic}/S_i − 1{c=y_i}]·1{|z_ic| ≤ clamp}.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ltjax.losses import registry

REDUCTIONS = ("mean", "sum")
ARB_COUNT_MODES = ("batch", "global")


def check_reduction(reduction: str) -> str:
  """Raise ValueError unless `reduction` is 'mean' or 'sum' (anything else raises upstream too)."""
  if reduction not in REDUCTIONS:
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
  return reduction


def batch_class_counts(labels, num_classes: int):
  """n_c = #{i : y_i = c} over the batch labels [B] → float32 [C] (0 for absent classes)."""
  return jnp.zeros([num_classes], jnp.float32).at[jnp.asarray(labels).astype(jnp.int32)].add(1.0)


def _reduce(per_example, reduction: str):
  return jnp.mean(per_example) if reduction == "mean" else jnp.sum(per_example)


def clamp_logits(logits, clamp: float = 30.0):
  """ẑ = min(max(z, −clamp), clamp): logits [..] → float32 [..], with torch.clamp's gradient: 1 where
  −clamp ≤ z ≤ clamp (bounds inclusive), 0 outside.

  Neither jnp primitive has that gradient at the bounds (checked in jax 0.10.2): `jnp.clip` (= minimum∘maximum)
  gives 1/2 at z = ±clamp, `lax.clamp` gives 0 there. Hence the explicit `where`."""
  z = jnp.asarray(logits, jnp.float32)
  inside = (z >= -clamp) & (z <= clamp)
  return jnp.where(inside, z, jax.lax.stop_gradient(jnp.clip(z, -clamp, clamp)))


def arb_log_prob(logits, labels, counts, clamp: float = 30.0):
  """log p_i [B] of the ARB softmax: (ẑ_{i,y_i} + log n_{y_i}) − logsumexp_c(ẑ_ic + log n_c) over classes n_c > 0."""
  z = clamp_logits(logits, clamp)
  n = jnp.asarray(counts, jnp.float32)
  present = n > 0
  log_n = jnp.log(jnp.where(present, n, 1.0))          # safe log; absent classes are masked below
  shifted = jnp.where(present, z + log_n, -jnp.inf)
  lse = jax.nn.logsumexp(shifted, axis=-1)
  y = jnp.asarray(labels).astype(jnp.int32)
  target = jnp.take_along_axis(z + log_n, y[:, None], axis=-1)[:, 0]
  return target - lse


def arb_loss(logits, labels, counts, clamp: float = 30.0, reduction: str = "mean"):
  """ARB-Loss (ARB `methods.py`): L = mean_i ℓ_i (or Σ_i ℓ_i for reduction='sum'), ℓ_i = −log p_i (module docstring).
  logits [B, C], labels [B], counts [C] → scalar float32. Other reductions raise ValueError."""
  return _reduce(-arb_log_prob(logits, labels, counts, clamp), check_reduction(reduction))


def arb_focal_loss(logits, labels, counts, alpha: float = 1.0, gamma: float = 2.0, clamp: float = 30.0,
                   reduction: str = "mean"):
  """ARB focal (ARB `methods.py` variants, `ARB_Loss_FL`): ℓ_i = −α (1 − p_i)^γ log p_i with p_i the ARB probability;
  mean or sum.
  logits [B, C], labels [B], counts [C] → scalar."""
  check_reduction(reduction)
  logp = arb_log_prob(logits, labels, counts, clamp)
  return _reduce(-alpha * (1.0 - jnp.exp(logp)) ** gamma * logp, reduction)


def weighted_arb_loss(logits, labels, counts, mode: str = "batch", clamp: float = 30.0, reduction: str = "mean"):
  """Weighted ARB (ARB `methods.py` variants, `WARB_Loss`): ℓ_i = ω_i·(−log p_i), ω_i = m̄ / n_{y_i} with
  m̄ = B / #{c : n_c > 0} (mode 'batch', counts are batch counts) or m̄ = Σ_c n_c / C (mode 'global'); mean or sum.
  logits [B, C], labels [B], counts [C] → scalar."""
  check_reduction(reduction)
  if mode not in ("batch", "global"):
    raise ValueError(f"weighted ARB mode must be 'batch' or 'global', got {mode!r}")
  n = jnp.asarray(counts, jnp.float32)
  if mode == "batch":
    m = jnp.float32(jnp.shape(labels)[0]) / jnp.sum(n > 0).astype(jnp.float32)
  else:
    m = jnp.sum(n) / jnp.float32(n.shape[0])
  omega = m / n[jnp.asarray(labels).astype(jnp.int32)]
  return _reduce(-omega * arb_log_prob(logits, labels, counts, clamp), reduction)


# ------------------------------------------------------------------------------------ registered losses (config.loss)
# Fields the ARB family shares: n from the batch's labels or the training set ('global', "ugcc"), the logit clamp,
# and the reduction over the batch.
_ARB_DEFAULTS = {"arb_counts": "batch", "arb_clamp": 30.0, "reduction": "mean"}
_ARB_CHOICES = {"arb_counts": ARB_COUNT_MODES, "reduction": REDUCTIONS}


def _counts_fn(p, counts):
  """count_labels → n [C]: the batch counts, or the training set's (`arb_counts = 'global'`)."""
  if p.arb_counts == "global":
    n = jnp.asarray(np.asarray(counts, np.float32))
    return lambda labels: n
  c = len(counts)
  return lambda labels: batch_class_counts(labels, c)


@registry.register("arb", accepts_class_weights=False, defaults=_ARB_DEFAULTS, choices=_ARB_CHOICES)
def _arb(p, counts):
  """arb_loss(z, y, n, arb_clamp, reduction); n = batch counts of count_labels or the global counts."""
  n_of, clamp, red = _counts_fn(p, counts), float(p.arb_clamp), p.reduction
  return lambda z, y, *, class_weights=None, count_labels=None: arb_loss(
      z, y, n_of(y if count_labels is None else count_labels), clamp, red)


@registry.register("arb_focal", accepts_class_weights=False, choices=_ARB_CHOICES,
                   defaults=dict(_ARB_DEFAULTS, arb_focal_alpha=1.0, arb_focal_gamma=2.0))
def _arb_focal(p, counts):
  """arb_focal_loss(z, y, n, arb_focal_alpha, arb_focal_gamma, arb_clamp, reduction)."""
  n_of, clamp, red = _counts_fn(p, counts), float(p.arb_clamp), p.reduction
  a, g = float(p.arb_focal_alpha), float(p.arb_focal_gamma)
  return lambda z, y, *, class_weights=None, count_labels=None: arb_focal_loss(
      z, y, n_of(y if count_labels is None else count_labels), a, g, clamp, red)


@registry.register("warb", accepts_class_weights=False, defaults=_ARB_DEFAULTS, choices=_ARB_CHOICES)
def _warb(p, counts):
  """weighted_arb_loss(z, y, n, arb_counts, arb_clamp, reduction)."""
  n_of, clamp, red = _counts_fn(p, counts), float(p.arb_clamp), p.reduction
  return lambda z, y, *, class_weights=None, count_labels=None: weighted_arb_loss(
      z, y, n_of(y if count_labels is None else count_labels), p.arb_counts, clamp, red)
