"""Post-hoc corrections of a trained classifier's logits, applied at evaluation with no retraining (pure numpy).

  logit_adjust(z, counts, τ)        z_ic − τ·log π_c,  π_c = n_c / Σ_k n_k           Menon et al., ICLR 2021, eq. (9)
  tau_normalize(f, W, τ, b=None)    z_ic = f_i · w_c / ‖w_c‖^τ  (+ b_c if given)       Kang et al., ICLR 2020, §4
  sweep(adjust, taus, select, report)   evaluate every τ on the selection split, report the best τ on another

`python -m ltjax.tools.posthoc` runs them on a run directory. Post-hoc logit adjustment
with the true training prior and τ = 1 on a CORR run is the RECORDS paper's "CORR + Oracle-LA" row (Hong et al., ICLR
2023, Table 1), which the RECORDS repository does not implement.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

import numpy as np


def log_prior(counts) -> np.ndarray:
  """log π [C], π_c = n_c / Σ n (float64). Every class must have a training example (log 0 is −∞)."""
  n = np.asarray(counts, np.float64)
  if n.ndim != 1 or (n <= 0).any():
    raise ValueError(f"class counts must be a positive vector [C], got {n}")
  return np.log(n / n.sum())


def logit_adjust(logits, counts, tau: float) -> np.ndarray:
  """z − τ·log π: logits [N, C], counts [C] → [N, C] float32. τ = 0 returns z unchanged; τ = 1 is the Bayes-optimal
  correction for a balanced test set when softmax(z) estimates the training distribution p(y | x)."""
  z = np.asarray(logits, np.float64)
  return (z - float(tau) * log_prior(counts)[None, :]).astype(np.float32)


def tau_normalize(features, kernel, tau: float, bias: Optional[np.ndarray] = None) -> np.ndarray:
  """Logits of the τ-normalised classifier: features f [N, D], kernel W [D, C] (column w_c per class) →
  z_ic = Σ_d f_id W_dc / ‖W_:c‖₂^τ  [N, C] float32, plus `bias` [C] when given. τ = 0 is the plain classifier
  without its bias; τ = 1 classifies by f·ŵ_c (unit-norm weights). Kang et al.'s formula has no bias term, so the
  bias is left out unless passed."""
  f = np.asarray(features, np.float64)
  w = np.asarray(kernel, np.float64)
  norms = np.linalg.norm(w, axis=0)
  z = f @ (w / norms[None, :] ** float(tau))
  if bias is not None:
    z = z + np.asarray(bias, np.float64)[None, :]
  return z.astype(np.float32)


def sweep(adjust: Callable[[str, float], np.ndarray], taus: Sequence[float], evaluate: Callable[[np.ndarray, str], Dict],
          select_on: str, report_on: str) -> Dict:
  """For every τ: `evaluate(adjust(select_on, τ), select_on)`; the τ with the highest top-1 there (the smallest τ on
  ties) is then evaluated on `report_on`. Returns {'taus': [...], 'select_on', 'report_on', 'sweep': [{'tau', 'top1',
  ...}], 'best_tau', 'report': metrics of report_on at best_tau, 'report_tau0': metrics of report_on at τ = 0}."""
  if not len(taus):
    raise ValueError("give at least one τ")
  rows = []
  for t in taus:
    m = evaluate(adjust(select_on, float(t)), select_on)
    rows.append(dict(tau=float(t), **{k: m[k] for k in ("top1", "many_thr", "medium_thr", "few_thr", "ece") if k in m}))
  best = max(rows, key=lambda r: (r["top1"], -r["tau"]))["tau"]
  return {"taus": [float(t) for t in taus], "select_on": select_on, "report_on": report_on, "sweep": rows,
          "best_tau": best, "report": evaluate(adjust(report_on, best), report_on),
          "report_tau0": evaluate(adjust(report_on, 0.0), report_on)}
