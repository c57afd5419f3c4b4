"""Epoch orders beyond a permutation: the class-aware sampler of the decoupling / MiSLAS / SBCL code.

A method returns one of these from `Method.epoch_order(epoch, seed)`; the pipeline maps the indices to examples.
"""

from __future__ import annotations

from typing import Optional

import numpy as np


def _cycles(rng: np.random.Generator, items: np.ndarray, n: int) -> np.ndarray:
  """The first n draws of a RandomCycleIter over `items`: a fresh shuffle of all items, then another, …"""
  reps = -(-n // len(items))
  return np.concatenate([rng.permutation(items) for _ in range(reps)])[:n]


def class_aware_order(labels: np.ndarray, num_classes: int, seed: int, epoch: int, per_class: int = 4,
                      length: Optional[int] = None) -> np.ndarray:
  """Class-aware sampling (`ClassAwareSampler`, MiSLAS; imbalanced-semi-self `imagenet_inat/main.py`, SBCL SBCL
  `SimCLR/linear_classify.py`).

  The classes are visited in a random order that is reshuffled each time every class has been visited once
  (a RandomCycleIter over the classes present); each visit takes the next `per_class` items of that class from its
  own RandomCycleIter (its indices reshuffled on every wrap). Returns `length` indices (default
  max_c n_c × C, the official epoch length), int64 [length].

  Deviation: the official iterators persist across epochs; here every epoch starts fresh cycles seeded by
  (seed, epoch), so the order is a pure function of (seed, epoch) and a run resumes exactly (statistically the same
  sampler; docs/DEVIATIONS.md).
  """
  labels = np.asarray(labels)
  counts = np.bincount(labels, minlength=num_classes)
  present = np.flatnonzero(counts)
  if present.size == 0:
    raise ValueError("class_aware_order needs at least one labelled example")
  if per_class < 1:
    raise ValueError(f"per_class must be >= 1, got {per_class}")
  n = int(counts.max()) * num_classes if length is None else int(length)
  rng = np.random.default_rng([seed, epoch, 0xca5])
  visits = -(-n // per_class)
  class_seq = _cycles(rng, present, visits)
  out = np.empty(visits * per_class, np.int64)
  slots = out.reshape(visits, per_class)
  for c in present:
    rows = np.flatnonzero(class_seq == c)
    if rows.size:
      members = np.flatnonzero(labels == c)
      slots[rows] = _cycles(rng, members, rows.size * per_class).reshape(rows.size, per_class)
  return out[:n]
