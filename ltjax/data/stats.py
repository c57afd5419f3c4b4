"""Class statistics, computed once from the training labels and passed to losses and metrics."""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Tuple

import numpy as np

# Spec MiSLAS/ARB's evaluation, threshold definition: many > 100, few < 20, medium 20..100 inclusive.
MANY_THRESHOLD = 100
FEW_THRESHOLD = 20


@dataclasses.dataclass(frozen=True)
class ClassStats:
  """Per-class training counts and the many/medium/few groups that follow from them.

  Attributes:
    counts: int64 [C], training images per label.
    ranges: optional index-range definition of the groups, ((0, a), (a, b), (b, C)) half-open label ranges, as in
      the ARB/MiSLAS configs (MiSLAS/ARB's evaluation). None when the config gives none.
  """

  counts: np.ndarray
  ranges: Optional[Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int]]] = None

  @classmethod
  def from_labels(cls, labels: np.ndarray, num_classes: int,
                  ranges: Optional[Sequence[Sequence[int]]] = None) -> "ClassStats":
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
      raise ValueError(f"labels must lie in [0, {num_classes}); got range [{labels.min()}, {labels.max()}]")
    counts = np.bincount(labels, minlength=num_classes).astype(np.int64)
    rng = None
    if ranges:
      rng = tuple((int(a), int(b)) for a, b in ranges)
      if len(rng) != 3 or rng[0][0] != 0 or rng[-1][1] != num_classes or any(
          rng[i][1] != rng[i + 1][0] for i in range(2)):
        raise ValueError(f"group ranges must be three contiguous half-open ranges covering [0, {num_classes}); "
                         f"got {list(rng)}")
    return cls(counts=counts, ranges=rng)

  @property
  def num_classes(self) -> int:
    return int(self.counts.shape[0])

  @property
  def total(self) -> int:
    return int(self.counts.sum())

  def threshold_groups(self) -> dict:
    """Boolean [C] masks by the threshold definition (>100 many, <20 few, else medium)."""
    many = self.counts > MANY_THRESHOLD
    few = self.counts < FEW_THRESHOLD
    return {"many": many, "medium": ~many & ~few, "few": few}

  def range_groups(self) -> Optional[dict]:
    """Boolean [C] masks by the index-range definition, or None when no ranges are configured."""
    if self.ranges is None:
      return None
    out = {}
    for name, (a, b) in zip(("many", "medium", "few"), self.ranges):
      m = np.zeros(self.num_classes, bool)
      m[a:b] = True
      out[name] = m
    return out
