"""Long-tailed subsets, exactly as the official code builds them (spec ARB_AND_SEMISELF §1.1–1.2, §3.3).

Per-class counts with imbalance factor ρ ∈ (0, 1] (the paper's imbalance ratio is 1/ρ), C classes, N balanced
images per class:
  exp:   n_c = ⌊N · ρ^{c/(C−1)}⌋, c = 0..C−1 (class 0 the head)
  step:  the first ⌊C/2⌋ classes keep ⌊N⌋, the next ⌊C/2⌋ get ⌊N·ρ⌋
  none:  ⌊N⌋ for every class

Selection: numpy's legacy RandomState seeded once with `rand_number`; for each class in order, its indices in the
dataset's original order are shuffled in place and the first n_c kept; the subset is the concatenation.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def _check_factor(imb_factor: float) -> None:
  if not 0.0 < imb_factor <= 1.0:
    raise ValueError(f"imb_factor = {imb_factor} must lie in (0, 1] (ρ = 1/imbalance ratio: 0.01 for ratio 100)")


def class_counts(n_full: float, num_classes: int, imb_type: str, imb_factor: float) -> np.ndarray:
  """int64 [C] per-position counts (`get_img_num_per_cls` of the official code)."""
  _check_factor(imb_factor)
  if imb_type == "exp":
    if num_classes < 2:
      raise ValueError("the exp profile needs at least 2 classes")
    out = [int(n_full * imb_factor ** (c / (num_classes - 1.0))) for c in range(num_classes)]
  elif imb_type == "step":
    half = num_classes // 2
    out = [int(n_full)] * half + [int(n_full * imb_factor)] * half
  else:
    out = [int(n_full)] * num_classes
  return np.asarray(out, np.int64)


def select_long_tailed(labels: np.ndarray, counts: Sequence[int], seed: int = 0,
                       class_order: Optional[Sequence[int]] = None, allow_fewer: bool = False) -> np.ndarray:
  """Indices of the long-tailed subset (int64), class by class in `class_order` (default 0..C−1).

  `counts[k]` is the count of the k-th class of `class_order` (position-indexed, as in the official code: for SVHN
  the order is [1..9, 0], so label 0 gets the last and smallest count).
  """
  labels = np.asarray(labels)
  order = list(range(len(counts))) if class_order is None else list(class_order)
  if len(order) != len(counts):
    raise ValueError(f"class_order has {len(order)} classes but counts has {len(counts)}")
  rng = np.random.RandomState(seed)
  parts = []
  for c, n in zip(order, counts):
    idx = np.where(labels == c)[0]
    rng.shuffle(idx)
    if len(idx) < n and not allow_fewer:
      raise ValueError(f"class {c} has {len(idx)} examples but the long-tailed profile asks for {n}")
    parts.append(idx[:n])
  return np.concatenate(parts).astype(np.int64) if parts else np.zeros([0], np.int64)


def label_counts(counts: Sequence[int], class_order: Sequence[int]) -> np.ndarray:
  """Position-indexed counts → label-indexed counts."""
  out = np.zeros(len(counts), np.int64)
  for c, n in zip(class_order, counts):
    out[c] = n
  return out


def remaining_indices(num_examples: int, selected: np.ndarray) -> np.ndarray:
  """Sorted indices of range(num_examples) not in `selected`."""
  keep = np.ones(num_examples, bool)
  keep[selected] = False
  return np.nonzero(keep)[0].astype(np.int64)


def balanced_holdout(labels: np.ndarray, candidates: np.ndarray, per_class: int, num_classes: int,
                     seed: int) -> np.ndarray:
  """`per_class` indices of each class drawn from `candidates` by RandomState(seed); sorted by class then draw."""
  rng = np.random.RandomState(seed)
  labels = np.asarray(labels)
  out = []
  for c in range(num_classes):
    pool = candidates[labels[candidates] == c]
    if len(pool) < per_class:
      raise ValueError(f"class {c} has only {len(pool)} images outside the training subset; a validation split of "
                       f"{per_class} per class needs more: lower config.data.val_per_class")
    out.append(rng.permutation(pool)[:per_class])
  return np.concatenate(out).astype(np.int64)


def unlabeled_counts(labeled_counts: Sequence[int], imb_factor_unlabel: float, multiplier: int = 5) -> np.ndarray:
  """D_U@5x (spec §3.3): T = 5·Σn, base = ⌊T/C⌋, raw_c = ⌊base·ρ_U^{c/(C−1)}⌋, u_c = ⌊raw_c·T/Σraw⌋."""
  _check_factor(imb_factor_unlabel)
  n = np.asarray(labeled_counts)
  num_classes = len(n)
  total = multiplier * int(n.sum())
  base = total // num_classes
  raw = [int(base * imb_factor_unlabel ** (c / (num_classes - 1.0))) for c in range(num_classes)]
  s = sum(raw)
  return np.asarray([int(r * total / s) for r in raw], np.int64)
