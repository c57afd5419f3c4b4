"""Evaluation metrics on the host (numpy), from logits collected over the whole test set (MiSLAS/ARB's evaluation).

Scales: the building blocks (`per_class_accuracy`, `group_accuracies` on fractions, `calibration`, `macro_f1`) work
in fractions (0–1); `evaluate` reports every accuracy, ECE/MCE and macro F1 in **percent** (0–100), like the
official logs. Softmax is computed in float64.
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np

from ltjax.data.stats import ClassStats


def softmax(logits: np.ndarray) -> np.ndarray:
  """Row softmax in float64 (max-subtracted)."""
  z = np.asarray(logits, dtype=np.float64)
  z = z - z.max(axis=-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=-1, keepdims=True)


def _check(logits: np.ndarray, labels: np.ndarray):
  logits, labels = np.asarray(logits), np.asarray(labels)
  if logits.ndim != 2 or labels.ndim != 1 or logits.shape[0] != labels.shape[0]:
    raise ValueError(f"expected logits [N, C] and labels [N]; got {logits.shape} and {labels.shape}")
  return logits, labels.astype(np.int64)


def topk_correct(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
  """bool [N]: label among the k highest scores. Ranking = stable descending sort, so among equal scores the lower
  class index ranks first."""
  logits, labels = _check(logits, labels)
  if not 1 <= k <= logits.shape[1]:
    raise ValueError(f"k = {k} must lie in [1, C = {logits.shape[1]}]")
  top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
  return (top == labels[:, None]).any(axis=1)


def confusion_matrix(preds: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
  """int64 [C, C]; entry [t, p] = number of examples with true label t predicted as p (rows = true label)."""
  preds, labels = np.asarray(preds, np.int64), np.asarray(labels, np.int64)
  return np.bincount(labels * num_classes + preds, minlength=num_classes * num_classes).reshape(
      num_classes, num_classes)


def per_class_accuracy(preds: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
  """float64 [C]: acc_c = correct_c / test_count_c as a fraction; NaN for classes absent from `labels`."""
  cm = confusion_matrix(preds, labels, num_classes)
  count = cm.sum(axis=1)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(count > 0, np.diag(cm) / np.maximum(count, 1), np.nan)


def group_accuracies(per_class_acc: np.ndarray, groups: Dict[str, np.ndarray]) -> Dict[str, float]:
  """{name: unweighted mean of per_class_acc over the group's classes that occur in the test labels}.

  Classes absent from the test labels carry NaN in `per_class_acc` and are skipped; a group with no such class
  reports None (SS `shot_acc` reports 0.0, which reads as 0% accuracy: here nothing was measured, and tables print
  '–'). Same scale as the input.
  """
  acc = np.asarray(per_class_acc, np.float64)
  out = {}
  for name, mask in groups.items():
    vals = acc[np.asarray(mask, bool)]
    vals = vals[~np.isnan(vals)]
    out[name] = float(vals.mean()) if vals.size else None
  return out


def calibration(scores: np.ndarray, labels: np.ndarray, num_bins: int = 15, from_logits: bool = True) -> dict:
  """Expected / maximum calibration error (ARB/MiSLAS, MiSLAS/ARB's evaluation), as fractions.

  confidence_i = max_c p_ic (p = softmax(scores) in float64 if `from_logits`, else `scores` are probabilities),
  prediction_i = argmax_c p_ic (first index on ties). Bin b (0-based) holds the confidences in (b/B, (b+1)/B]
  (right-closed); a confidence of exactly 0 goes into bin 0 (the official `np.digitize(..., right=True)` would drop
  it; it cannot happen for a softmax, whose maximum is >= 1/C). Values above 1 (rounding of given probabilities)
  go into the last bin.

      ECE = Σ_b |acc_b − conf_b|·count_b / N,   MCE = max over non-empty bins of |acc_b − conf_b|

  Returns dict(ece, mce, bin_acc [B], bin_conf [B], bin_count [B]) with numpy arrays (0 for empty bins).
  """
  scores, labels = _check(scores, labels)
  n = labels.shape[0]
  if n == 0:
    raise ValueError("calibration needs at least one example")
  probs = softmax(scores) if from_logits else np.asarray(scores, np.float64)
  conf = probs.max(axis=1)
  pred = probs.argmax(axis=1)
  correct = (pred == labels).astype(np.float64)
  edges = np.arange(num_bins + 1, dtype=np.float64) / num_bins  # b/B exactly as a float division
  # searchsorted(side='left') = i with edges[i-1] < conf <= edges[i]; bin = i - 1.
  bins = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, num_bins - 1)
  count = np.bincount(bins, minlength=num_bins).astype(np.int64)
  safe = np.maximum(count, 1)
  bin_acc = np.bincount(bins, weights=correct, minlength=num_bins) / safe
  bin_conf = np.bincount(bins, weights=conf, minlength=num_bins) / safe
  gaps = np.abs(bin_acc - bin_conf)
  ece = float(np.sum(gaps * count) / n)
  mce = float(gaps[count > 0].max())
  return {"ece": ece, "mce": mce, "bin_acc": bin_acc, "bin_conf": bin_conf, "bin_count": count}


def macro_f1(preds: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
  """Macro F1 as a fraction, as sklearn's `f1_score(labels, preds, average='macro')` (SS `imagenet_inat` logs it):
  mean over the classes that occur in labels or preds of F1_c = 2·TP_c / (2·TP_c + FP_c + FN_c) (0 when TP_c = 0)."""
  cm = confusion_matrix(preds, labels, num_classes).astype(np.float64)
  tp = np.diag(cm)
  fp = cm.sum(axis=0) - tp
  fn = cm.sum(axis=1) - tp
  present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
  if not present.any():
    return 0.0
  denom = 2 * tp + fp + fn
  f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
  return float(f1[present].mean())


def _pct(x: float) -> float:
  return float(100.0 * x)


def evaluate(logits: np.ndarray, labels: np.ndarray, stats: ClassStats, num_bins: int = 15) -> dict:
  """Everything the results file reports for one evaluation, JSON-serialisable (python floats / ints / lists).

  All accuracies, ECE, MCE and macro F1 are in **percent** (0–100). Keys:
    num_examples, top1, top5 (only when C >= 5), per_class (list [C]; None for classes absent from the test
    labels), many_thr / medium_thr / few_thr (threshold definition on the training counts: >100 / 20..100 / <20),
    many_idx / medium_idx / few_idx (index-range definition, only when `stats.ranges` is set), ece, mce, macro_f1.
  Group accuracies are unweighted means of per-class accuracy over the group's classes present in the test labels
  (empty group → None: nothing measured). Predictions are argmax (first index on ties).
  """
  logits, labels = _check(logits, labels)
  n, c = logits.shape
  if n == 0:
    raise ValueError("evaluate needs at least one example")
  if c != stats.num_classes:
    raise ValueError(f"logits have {c} classes but the class statistics have {stats.num_classes}")
  if labels.min() < 0 or labels.max() >= c:
    raise ValueError(f"labels must lie in [0, {c})")
  preds = np.argmax(logits, axis=1)
  out = {"num_examples": int(n), "top1": _pct(topk_correct(logits, labels, 1).mean())}
  if c >= 5:
    out["top5"] = _pct(topk_correct(logits, labels, 5).mean())
  pca = per_class_accuracy(preds, labels, c)
  out["per_class"] = [None if math.isnan(a) else _pct(a) for a in pca]
  for name, v in group_accuracies(pca, stats.threshold_groups()).items():
    out[f"{name}_thr"] = None if v is None else _pct(v)
  rg: Optional[dict] = stats.range_groups()
  if rg is not None:
    for name, v in group_accuracies(pca, rg).items():
      out[f"{name}_idx"] = None if v is None else _pct(v)
  cal = calibration(logits, labels, num_bins=num_bins)
  out["ece"] = _pct(cal["ece"])
  out["mce"] = _pct(cal["mce"])
  out["macro_f1"] = _pct(macro_f1(preds, labels, c))
  return out
