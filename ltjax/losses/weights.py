"""Host-side class statistics for losses: class-balanced weights, DRW, resampling, LDAM margins, LAS epsilons
(spec ARB_AND_SEMISELF §3.1, §2.7). numpy in, numpy out."""

from __future__ import annotations

import numpy as np


def _effective_r(counts, beta: float) -> np.ndarray:
  n = np.asarray(counts, np.float64)
  return (1.0 - beta) / (1.0 - np.power(beta, n))


def effective_number_weights(counts, beta: float = 0.9999) -> np.ndarray:
  """r_c = (1 − β)/(1 − β^{n_c}), w_c = C·r_c/Σ_k r_k (sums to C; β = 0 gives all ones). float32 [C]."""
  r = _effective_r(counts, beta)
  return (r / r.sum() * len(r)).astype(np.float32)


def drw_weights(counts, epoch: int, drw_epoch: int = 160, beta: float = 0.9999) -> np.ndarray:
  """Deferred re-weighting: β = [0, beta][epoch // drw_epoch] (ones before drw_epoch, class-balanced after)."""
  idx = epoch // drw_epoch
  if idx > 1:
    raise ValueError(f"DRW defines weights for epochs < 2·drw_epoch = {2 * drw_epoch}; got epoch {epoch} (the "
                     "official code would crash here): raise drw_epoch or train fewer epochs")
  return effective_number_weights(counts, [0.0, beta][idx])


def resample_probabilities(labels, counts, beta: float = 0.9999) -> np.ndarray:
  """Per-example draw probability ∝ r_{y_i} (the unnormalised effective-number weight), float64 [N], sums to 1."""
  p = _effective_r(counts, beta)[np.asarray(labels)]
  return p / p.sum()


def ldam_margins(counts, max_m: float = 0.5) -> np.ndarray:
  """m_c = C_m·n_c^{−1/4} with C_m such that max_c m_c = max_m. float32 [C]."""
  m = 1.0 / np.sqrt(np.sqrt(np.asarray(counts, np.float64)))
  return (m * (max_m / m.max())).astype(np.float32)


def las_epsilons(counts, head: float, tail: float, shape: str = "concave", power: float = 3.0) -> np.ndarray:
  """MiSLAS label-aware smoothing ε_c with r_c = (n_c − n_min)/(n_max − n_min), h = head, t = tail:
  concave t + (h−t)·sin(π r/2); linear t + (h−t) r; convex h + (h−t)·sin(3π/2 + π r/2); exp t + (h−t) r^p."""
  n = np.asarray(counts, np.float64)
  span = n.max() - n.min()
  r = (n - n.min()) / span if span > 0 else np.zeros_like(n)
  if shape == "concave":
    e = tail + (head - tail) * np.sin(np.pi * r / 2)
  elif shape == "linear":
    e = tail + (head - tail) * r
  elif shape == "convex":
    e = head + (head - tail) * np.sin(1.5 * np.pi + np.pi * r / 2)
  elif shape == "exp":
    e = tail + (head - tail) * r ** power
  else:
    raise ValueError(f"las shape must be concave, linear, convex or exp; got {shape!r}")
  return e.astype(np.float32)
