"""Evaluation figures of the partial-label papers, host side (numpy).

* `batch_mean_top1`: the official RECORDS `train.py` test accuracy — the unweighted mean of per-batch top-1 over
  test batches in split order (Hong et al., "Long-Tailed Partial Label Learning via Dynamic Rebalancing", ICLR 2023,
  official code `train.py`, `test()`).
* `rank_groups` / `rank_group_accuracies`: SoLar's many / medium / few groups by class-size rank (Wang et al.,
  "SoLar: Sinkhorn Label Refinery for Imbalanced Partial-Label Learning", NeurIPS 2022, official `utils/utils_algo.py`).
"""

from __future__ import annotations

from typing import Dict

import numpy as np


def batch_mean_top1(logits: np.ndarray, labels: np.ndarray, batch_size: int) -> float:
  """train.py's test accuracy (RECORDS' evaluation, `train.py`): split order, batches of `batch_size` (the last one
  smaller), the unweighted
  mean of the per-batch top-1 accuracies, in percent."""
  pred = np.argmax(np.asarray(logits), axis=1)
  correct = pred == np.asarray(labels)
  accs = [correct[i:i + batch_size].mean() for i in range(0, len(correct), batch_size)]
  return float(100.0 * np.mean(accs))


def rank_groups(counts: np.ndarray, k: int) -> Dict[str, np.ndarray]:
  """SoLar's many/medium/few (RECORDS' evaluation, `train.py`): with counts sorted ascending, many = n_c > sorted[C − k
  − 1],
  few = n_c < sorted[k], medium the rest. Boolean [C] masks."""
  counts = np.asarray(counts)
  s = np.sort(counts)
  many = counts > s[len(s) - k - 1]
  few = counts < s[k]
  return {"many": many, "medium": ~many & ~few, "few": few}


def rank_group_accuracies(logits, labels, counts, k: int) -> Dict[str, float]:
  """Per-class top-1 averaged within each rank group (percent); classes absent from the labels are skipped."""
  pred = np.argmax(np.asarray(logits), axis=1)
  labels = np.asarray(labels)
  c = len(counts)
  acc = np.full(c, np.nan)
  for j in range(c):
    m = labels == j
    if m.any():
      acc[j] = (pred[m] == j).mean()
  out = {}
  for name, g in rank_groups(counts, k).items():
    v = acc[g & ~np.isnan(acc)]
    out[f"{name}_rank"] = float(100.0 * v.mean()) if v.size else 0.0
  return out
