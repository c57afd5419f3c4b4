"""Long-tailed subsets, exactly as the official code builds them (LDAM-DRW `imbalance_cifar.py`; imbalanced-semi-self's
SVHN-LT, imbalanced-semi-self `train_semi.py`). Pure numpy.

Per-class counts (`get_img_num_per_cls` of the official code) with imbalance factor ρ ∈ (0, 1] (the paper's
imbalance *ratio* is 1/ρ), C classes and N balanced images per class (CIFAR: len(train)/C; SVHN: 1000):

  exp:   n_k = ⌊N · ρ^{k/(C−1)}⌋ for k = 0..C−1 (position 0 the head)
  step:  the first ⌊C/2⌋ positions keep ⌊N⌋, the next ⌊C/2⌋ get ⌊N·ρ⌋
  other: ⌊N⌋ for every position (balanced; 'none')

Counts are *position*-indexed: n_k belongs to the k-th class of the class order. The order is 0..C−1 for CIFAR (so
position = label) and [1, 2, …, 9, 0] for SVHN (imbalanced-semi-self's SVHN-LT: digit 0, the rarest, goes last).
`label_counts` turns a
position-indexed vector into the label-indexed one the losses use.

Selection (`gen_imbalanced_data`): numpy's *legacy* RNG seeded once with `rand_number`; for each class in order, the
indices of its examples in the dataset's original order are shuffled in place and the first n_k kept; the subset is
the concatenation, class after class. `np.random.RandomState(seed)` yields the same stream as the official
`np.random.seed(seed)` + `np.random.shuffle`, without touching numpy's global state.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def check_imb_factor(imb_factor: float, name: str = "imb_factor") -> None:
  """ValueError unless 0 < imb_factor <= 1."""
  if not 0.0 < imb_factor <= 1.0:
    raise ValueError(f"{name} = {imb_factor} must lie in (0, 1] (ρ = 1/imbalance ratio: 0.01 for ratio 100, "
                     f"1 for balanced)")


def class_counts(n_full: float, num_classes: int, imb_type: str, imb_factor: float) -> np.ndarray:
  """Position-indexed per-class counts, int64 [C] (LDAM-DRW `imbalance_cifar.py`).

  Args:
    n_full: N, the balanced per-class size (a float is fine: the official CIFAR code passes len(data)/C).
    num_classes: C.
    imb_type: 'exp', 'step', or anything else for balanced (the official code treats every other string so).
    imb_factor: ρ ∈ (0, 1].

  With `step` and an odd C the official list has only 2·⌊C/2⌋ entries, so its `zip` gives the last class no
  images at all (and its `get_cls_num_list` then fails with a KeyError). Here that class gets an explicit 0, which
  selects the same subset; `sources.load` refuses a profile that leaves a class empty.
  """
  check_imb_factor(imb_factor)
  if num_classes < 1:
    raise ValueError(f"num_classes = {num_classes} must be positive")
  if imb_type == "exp":
    if num_classes < 2:
      raise ValueError(f"the exp profile needs at least 2 classes, got num_classes = {num_classes}")
    out = [int(n_full * imb_factor ** (k / (num_classes - 1.0))) for k in range(num_classes)]
  elif imb_type == "step":
    out = [int(n_full) for _ in range(num_classes // 2)]
    out += [int(n_full * imb_factor) for _ in range(num_classes // 2)]
    out += [0] * (num_classes - len(out))  # odd C: the official list is one short (see docstring)
  else:
    out = [int(n_full)] * num_classes
  return np.asarray(out, np.int64)


def shuffle_counts(counts: Sequence[int], seed: int) -> np.ndarray:
  """RECORDS `--hierarchical` (RECORDS `utils/imbalance_cifar.py`): the class-size list permuted in place by Python's
  `random.shuffle` after
  `random.seed(seed)` (upstream seeds Python's global `random` with `--seed` and draws nothing from it before), so
  head and tail classes become random classes. Position-indexed int64 [C] in, the same out."""
  import random
  out = [int(x) for x in counts]
  random.Random(int(seed)).shuffle(out)
  return np.asarray(out, np.int64)


def label_counts(counts: Sequence[int], class_order: Optional[Sequence[int]] = None) -> np.ndarray:
  """Position-indexed counts (k-th entry for the k-th class of `class_order`) → label-indexed int64 [C]."""
  counts = np.asarray(counts, np.int64)
  if class_order is None:
    return counts.copy()
  order = _check_order(class_order, len(counts))
  out = np.zeros(len(counts), np.int64)
  out[order] = counts
  return out


def _check_order(class_order: Sequence[int], num_counts: int) -> np.ndarray:
  order = np.asarray(list(class_order), np.int64)
  if len(order) != num_counts:
    raise ValueError(f"class_order has {len(order)} classes but counts has {num_counts}")
  if len(set(order.tolist())) != len(order):
    raise ValueError(f"class_order {order.tolist()} repeats a class")
  return order


def select_long_tailed(labels: np.ndarray, counts: Sequence[int], seed: int = 0,
                       class_order: Optional[Sequence[int]] = None, *, allow_fewer: bool = False,
                       rng: Optional[np.random.RandomState] = None) -> np.ndarray:
  """Indices (int64) of the long-tailed subset, class by class in `class_order` (default 0..C−1).

  Args:
    labels: [N] labels of the full training set, in the dataset's original order.
    counts: position-indexed counts: `counts[k]` is the number kept of class `class_order[k]` (for SVHN, order
      [1..9, 0], `counts[0]` belongs to label 1 and `counts[9]` to label 0).
    seed: `rand_number`, seeds `np.random.RandomState` (same stream as the official `np.random.seed`).
    class_order: the order in which classes are visited (and counts assigned).
    allow_fewer: the official code silently keeps fewer images when a class is too small; by default that is an
      error here.
    rng: continue an existing legacy stream instead of seeding a new one (`seed` is then ignored). The
      semi-supervised D_U selection (imbalanced-semi-self `train_semi.py`) draws from the same stream right after the
      labeled selection.

  Returns:
    int64 indices into `labels`: the concatenation over classes of each class's shuffled indices, truncated.
  """
  labels = np.asarray(labels)
  order = (np.arange(len(counts)) if class_order is None else _check_order(class_order, len(counts)))
  if rng is None:
    rng = np.random.RandomState(seed)
  parts = []
  for c, n in zip(order.tolist(), [int(x) for x in counts]):
    idx = np.where(labels == c)[0]  # int64, ascending = original order
    rng.shuffle(idx)
    if len(idx) < n and not allow_fewer:
      raise ValueError(f"class {c} has {len(idx)} examples but the long-tailed profile asks for {n} "
                       f"(counts in class order {order.tolist()}: {[int(x) for x in counts]})")
    parts.append(idx[:n])
  return np.concatenate(parts).astype(np.int64) if parts else np.zeros([0], np.int64)


def remaining_indices(num_examples: int, selected: np.ndarray) -> np.ndarray:
  """Sorted int64 indices of range(num_examples) that are not in `selected`."""
  keep = np.ones(num_examples, bool)
  keep[np.asarray(selected, np.int64)] = False
  return np.nonzero(keep)[0].astype(np.int64)


def balanced_holdout(labels: np.ndarray, candidates: np.ndarray, per_class: int, seed: int,
                     num_classes: Optional[int] = None) -> np.ndarray:
  """`per_class` indices of every class drawn from `candidates`, int64, class 0's first.

  For each class c = 0..C−1 in turn, the candidates of class c (in the order given) are permuted by one
  `np.random.RandomState(seed)` stream and the first `per_class` kept. Deterministic in (labels, candidates,
  per_class, seed). `sources.load` passes `rand_number + 1` as the seed so the draw is independent of the
  selection stream. Raises ValueError when a class has fewer than `per_class` candidates.
  """
  labels = np.asarray(labels)
  candidates = np.asarray(candidates, np.int64)
  if num_classes is None:
    num_classes = int(labels.max()) + 1 if labels.size else 0
  rng = np.random.RandomState(seed)
  cand_labels = labels[candidates]
  out = []
  for c in range(num_classes):
    pool = candidates[cand_labels == c]
    if len(pool) < per_class:
      raise ValueError(f"class {c} has only {len(pool)} images outside the long-tailed training subset; a balanced "
                       f"validation split of {per_class} per class needs more: lower config.data.val_per_class")
    out.append(rng.permutation(pool)[:per_class])
  return np.concatenate(out).astype(np.int64) if out else np.zeros([0], np.int64)


def unlabeled_counts(labeled_counts: Sequence[int], imb_factor_unlabel: float, multiplier: int = 5) -> np.ndarray:
  """Position-indexed unlabeled counts, D_U@5x (imbalanced-semi-self `train_semi.py`), int64 [C].

  T = multiplier·Σ_c n_c; base = ⌊T/C⌋; raw_c = ⌊base·ρ_U^{c/(C−1)}⌋; u_c = ⌊raw_c·(T/Σ_k raw_k)⌋, with the official
  floating-point evaluation order (factor = T/Σraw first, then raw_c·factor), so Σ u_c ≈ T.
  """
  check_imb_factor(imb_factor_unlabel, "imb_factor_unlabel")
  n = np.asarray(labeled_counts, np.int64)
  num_classes = len(n)
  if num_classes < 2:
    raise ValueError(f"unlabeled_counts needs at least 2 classes, got {num_classes}")
  total = int(n.sum()) * int(multiplier)
  base = total // num_classes
  raw = [int(base * imb_factor_unlabel ** (c / (num_classes - 1.0))) for c in range(num_classes)]
  factor = total / sum(raw)
  return np.asarray([int(r * factor) for r in raw], np.int64)
