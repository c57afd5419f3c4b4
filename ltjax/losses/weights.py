"""Host-side class statistics for losses (imbalanced-semi-self `losses.py`, MiSLAS): class-balanced ("effective number")
weights, the DRW schedule, resampling probabilities, LDAM margins and label-aware-smoothing epsilons.

numpy in, numpy out; computed in float64 with the official expressions' order of operations, then cast to float32
where the official code stores float32 (`torch.FloatTensor` / `.float()`): weights, margins, epsilons. Counts are
label-indexed per-class training-set counts [C].
"""

from __future__ import annotations

from typing import Optional

import numpy as np

LAS_SHAPES = ("concave", "linear", "convex", "exp")


def _counts(counts, name: str) -> np.ndarray:
  n = np.asarray(counts)
  if n.ndim != 1 or n.size == 0:
    raise ValueError(f"{name}: counts must be a non-empty 1-D per-class vector, got shape {n.shape}")
  if np.any(n <= 0):
    raise ValueError(f"{name}: every class needs a positive count (classes {np.flatnonzero(n <= 0).tolist()} have "
                     "none); the formula divides by zero there")
  return n


def _effective_r(counts, beta: float, name: str) -> np.ndarray:
  """r_c = (1 − β)/(1 − β^{n_c}) in float64 [C]: the unnormalised effective-number weight."""
  n = _counts(counts, name)
  effective_num = 1.0 - np.power(float(beta), n.astype(np.float64))
  return (1.0 - float(beta)) / effective_num


def effective_number_weights(counts, beta: float = 0.9999) -> np.ndarray:
  """Class-balanced (`Reweight`) weights: counts n [C] → float32 [C].

    r_c = (1 − β)/(1 − β^{n_c}),   w_c = C · r_c / Σ_k r_k      (Σ_c w_c = C)

  β = 0 gives exactly 1 for every class. CIFAR-10 ρ=0.01, β=0.9999 → [0.0506, 0.0769, …, 2.4092, 3.9927]."""
  r = _effective_r(counts, beta, "effective_number_weights")
  return (r / np.sum(r) * len(r)).astype(np.float32)


def drw_weights(counts, epoch: int, drw_epoch: int = 160, beta: float = 0.9999) -> np.ndarray:
  """Deferred re-weighting (`DRW`): counts n [C], 0-based epoch → float32 [C].

    β_e = [0, beta][epoch // drw_epoch],   w = effective_number_weights(n, β_e)

  i.e. all ones for epochs 0 … drw_epoch−1 and class-balanced from epoch index drw_epoch on. The official code
  indexes the 2-element list and crashes (IndexError) for epoch ≥ 2·drw_epoch (320 with the default 160: "more than
  319 epochs would crash"); this raises a ValueError saying so instead, and also for a negative epoch (which
  upstream would silently map to β = beta through Python's negative indexing)."""
  epoch, drw_epoch = int(epoch), int(drw_epoch)
  if drw_epoch <= 0:
    raise ValueError(f"drw_epoch must be positive, got {drw_epoch}")
  if epoch < 0 or epoch >= 2 * drw_epoch:
    raise ValueError(f"DRW defines weights for epochs 0 … {2 * drw_epoch - 1} (index epoch // drw_epoch into "
                     f"[0, beta]); got epoch {epoch} with drw_epoch {drw_epoch} (the official code would crash "
                     "here): raise drw_epoch or train fewer epochs")
  return effective_number_weights(counts, [0.0, beta][epoch // drw_epoch])


def resample_probabilities(labels, counts, beta: float = 0.9999) -> np.ndarray:
  """`Resample` train rule: labels y [N] int, counts n [C] → float64 [N], summing to 1.

    P(draw i) = r_{y_i} / Σ_j r_{y_j},   r_c = (1 − β)/(1 − β^{n_c})

  i.e. ∝ the *unnormalised* effective-number weight of the example's class (not 1/n). The epoch draws N indices
  with replacement."""
  p = _effective_r(counts, beta, "resample_probabilities")[np.asarray(labels, np.int64)]
  return p / p.sum()


def ldam_margins(counts, max_m: float = 0.5) -> np.ndarray:
  """LDAM margins: counts n [C] → float32 [C].

    m_c = C_m · n_c^{−1/4},  C_m = max_m / max_k n_k^{−1/4}      (so max_c m_c = max_m, at the rarest class)

  CIFAR-10 ρ=0.01 → [0.158, 0.180, 0.204, 0.232, 0.264, 0.300, 0.341, 0.387, 0.440, 0.500]."""
  m = 1.0 / np.sqrt(np.sqrt(_counts(counts, "ldam_margins").astype(np.float64)))
  return (m * (max_m / np.max(m))).astype(np.float32)


def las_epsilons(counts, head: float, tail: float, shape: str = "concave",
                 power: Optional[float] = None) -> np.ndarray:
  """MiSLAS label-aware smoothing ε_c (MiSLAS): counts n [C] → float32 [C]. With r_c = (n_c − n_min)/(n_max − n_min),
  h = head (`smooth_head`), t = tail (`smooth_tail`), p = power:

    concave  ε_c = t + (h − t)·sin(π r_c / 2)            (MiSLAS's default shape)
    linear   ε_c = t + (h − t)·r_c
    convex   ε_c = h + (h − t)·sin(3π/2 + π r_c / 2)
    exp      ε_c = t + (h − t)·r_c^p                      (needs `power`; upstream leaves ε undefined without it)

  The head class gets h and the tail class t for every shape. Unknown shapes, or 'exp' without a power, raise
  ValueError. With all counts equal upstream divides 0/0 (NaN); here r ≡ 0, so ε ≡ t."""
  if shape not in LAS_SHAPES:
    raise ValueError(f"las shape must be one of {LAS_SHAPES}, got {shape!r}")
  if shape == "exp" and power is None:
    raise ValueError("las shape 'exp' needs a power (las_power); MiSLAS leaves ε undefined without one")
  n = _counts(counts, "las_epsilons")
  n_1, n_k = n.max(), n.min()
  h, t = float(head), float(tail)
  if n_1 == n_k:
    return np.full(n.shape, t, np.float32)
  # The official expressions, operation for operation (int count differences, float64).
  if shape == "concave":
    e = t + (h - t) * np.sin((n - n_k) * np.pi / (2 * (n_1 - n_k)))
  elif shape == "linear":
    e = t + (h - t) * (n - n_k) / (n_1 - n_k)
  elif shape == "convex":
    e = h + (h - t) * np.sin(1.5 * np.pi + (n - n_k) * np.pi / (2 * (n_1 - n_k)))
  else:
    e = t + (h - t) * np.power((n - n_k) / (n_1 - n_k), float(power))
  return np.asarray(e, np.float64).astype(np.float32)
