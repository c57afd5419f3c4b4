"""Host-side class statistics for losses (spec ARB_AND_SEMISELF §3.1, §2.7): class-balanced weights, DRW,
resampling probabilities, LDAM margins, label-aware-smoothing epsilons. numpy in, numpy out (computed in float64)."""

from __future__ import annotations

import numpy as np

LAS_SHAPES = ("concave", "linear", "convex", "exp")


def _effective_r(counts, beta: float) -> np.ndarray:
  """r_c = (1 − β)/(1 − β^{n_c}) in float64 [C] (the unnormalised effective-number weight; n_c > 0)."""
  n = np.asarray(counts, np.float64)
  return (1.0 - beta) / (1.0 - np.power(beta, n))


def effective_number_weights(counts, beta: float = 0.9999) -> np.ndarray:
  """Class-balanced ("Reweight") weights: counts [C] → float32 [C].

  r_c = (1 − β)/(1 − β^{n_c}), w_c = C·r_c / Σ_k r_k (sums to C; β = 0 gives exactly ones)."""
  r = _effective_r(counts, beta)
  return (r / np.sum(r) * len(r)).astype(np.float32)


def drw_weights(counts, epoch: int, drw_epoch: int = 160, beta: float = 0.9999) -> np.ndarray:
  """Deferred re-weighting: `effective_number_weights(counts, β)` with β = [0, beta][epoch // drw_epoch], i.e. all
  ones for epochs 0 … drw_epoch−1 and class-balanced from epoch index drw_epoch on. float32 [C].

  The official code indexes a 2-element list and crashes for epoch ≥ 2·drw_epoch; this raises a ValueError instead
  (also for a negative epoch, which upstream would silently map to β = beta)."""
  epoch, drw_epoch = int(epoch), int(drw_epoch)
  if drw_epoch <= 0:
    raise ValueError(f"drw_epoch must be positive, got {drw_epoch}")
  if epoch < 0 or epoch >= 2 * drw_epoch:
    raise ValueError(f"DRW defines weights for epochs 0 … {2 * drw_epoch - 1} (index epoch // drw_epoch into "
                     f"[0, beta]); got epoch {epoch} with drw_epoch {drw_epoch} (the official code would crash "
                     "here): raise drw_epoch or train fewer epochs")
  return effective_number_weights(counts, [0.0, beta][epoch // drw_epoch])


def resample_probabilities(labels, counts, beta: float = 0.9999) -> np.ndarray:
  """`Resample` train rule: per-example draw probability ∝ r_{y_i} (the *unnormalised* effective-number weight,
  not 1/n). labels [N], counts [C] → float64 [N], sums to 1 (draws are with replacement)."""
  p = _effective_r(counts, beta)[np.asarray(labels, np.int64)]
  return p / p.sum()


def ldam_margins(counts, max_m: float = 0.5) -> np.ndarray:
  """LDAM margins: counts [C] → float32 [C], m_c = C_m·n_c^{−1/4} with C_m such that max_c m_c = max_m."""
  m = 1.0 / np.sqrt(np.sqrt(np.asarray(counts, np.float64)))
  return (m * (max_m / np.max(m))).astype(np.float32)


def las_epsilons(counts, head: float, tail: float, shape: str = "concave", power: float = 3.0) -> np.ndarray:
  """MiSLAS label-aware smoothing ε_c (§2.7): counts [C] → float32 [C], with r_c = (n_c − n_min)/(n_max − n_min),
  h = head, t = tail:
    concave t + (h−t)·sin(π r_c/2); linear t + (h−t)·r_c; convex h + (h−t)·sin(3π/2 + π r_c/2); exp t + (h−t)·r_c^p.
  With all counts equal (upstream divides 0/0 → NaN) r ≡ 0 is used, giving ε ≡ t for every shape."""
  if shape not in LAS_SHAPES:
    raise ValueError(f"las shape must be one of {LAS_SHAPES}, got {shape!r}")
  n = np.asarray(counts, np.float64)
  span = n.max() - n.min()
  r = (n - n.min()) / span if span > 0 else np.zeros_like(n)
  if shape == "concave":
    e = tail + (head - tail) * np.sin(np.pi * r / 2)
  elif shape == "linear":
    e = tail + (head - tail) * r
  elif shape == "convex":
    e = head + (head - tail) * np.sin(1.5 * np.pi + np.pi * r / 2)
  else:
    e = tail + (head - tail) * np.power(r, power)
  return e.astype(np.float32)
