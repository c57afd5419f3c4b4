"""The data a run trains on: `Split` (one split, in memory or file-backed), `Dataset` (what `sources.load` returns:
the long-tailed training subset, test and optional validation splits, and their normalisation and augmentation
settings) and `Raw` (a source's full data before the long-tailed selection)."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Tuple

import numpy as np


@dataclasses.dataclass
class Split:
  """One split, held in memory (`images`) or file-backed (`files` or `encoded`, decoded in the input pipeline).

  Exactly one of images / files / encoded is set. Examples are addressed by row index either way.
  """

  images: Optional[np.ndarray]  # uint8 [N, H, W, C], or None for a file-backed split
  labels: np.ndarray  # int32 [N]
  indices: np.ndarray  # int64 [N]: index of each example in the source's original (full, balanced) order
  files: Optional[np.ndarray] = None  # str [N]: image file paths (split-file datasets)
  encoded: Optional[np.ndarray] = None  # object [N]: encoded image bytes (TFDS large-scale datasets)

  def __post_init__(self):
    if sum(x is not None for x in (self.images, self.files, self.encoded)) != 1:
      raise ValueError("a Split holds exactly one of images, files or encoded")

  @property
  def file_backed(self) -> bool:
    return self.images is None

  def take(self, idx: np.ndarray) -> "Split":
    sub = lambda a: None if a is None else a[idx]
    return Split(sub(self.images), self.labels[idx], self.indices[idx], sub(self.files), sub(self.encoded))

  def __len__(self) -> int:
    return len(self.labels)


@dataclasses.dataclass
class Dataset:
  name: str
  num_classes: int
  train: Split  # the long-tailed subset (already selected)
  test: Split
  val: Optional[Split]  # balanced hold-out from train images the subset does not use, or None
  mean: Tuple[float, ...]  # per channel, for pixels in [0, 1]
  std: Tuple[float, ...]
  crop_padding: int  # random-crop padding of the train augmentation
  flip: bool  # horizontal flip in the train augmentation
  recipe: Optional[Any] = None  # ltjax.data.augment.ImageRecipe of file-backed (large-scale) datasets, else None
  # Semi-supervised runs (config.data.unlabeled): what was appended to `train` (unlabeled.UnlabeledInfo), else None.
  unlabeled: Optional[object] = None
  # The legacy RandomState of the long-tailed selection, advanced past it: upstream code that keeps drawing from the
  # same global numpy stream (RECORDS' candidate sets, RECORDS' candidate-set generation) continues from here.
  selection_rng: Optional[np.random.RandomState] = None
  # The training images neither the long-tailed subset nor the validation hold-out took, with their real labels:
  # the unlabeled pool 'unused' (ltjax.data.unlabeled). Kept only when asked for (sources.load(keep_unused=True),
  # or config.data.unlabeled.pool = 'unused'), else None.
  unused: Optional[Split] = None

  def example_input(self) -> np.ndarray:
    """float32 [1, H, W, C]: an input of the model's shape (for initialisation)."""
    if self.train.images is not None:
      return self.train.images[:1].astype(np.float32)
    s = self.recipe.image_size
    return np.zeros((1, s, s, 3), np.float32)


@dataclasses.dataclass
class Raw:
  """A source's full data in original order, before the long-tailed selection."""

  train: Split  # the pool the long-tailed subset is selected from
  test: Split
  num_classes: int
  n_full: float  # N of the count formulas
  class_order: Tuple[int, ...]  # order in which classes receive the position-indexed counts
  mean: Optional[Tuple[float, ...]]  # None: computed from the selected training subset
  std: Optional[Tuple[float, ...]]
  crop_padding: int = 4
  flip: bool = True
  # imb_type 'none' keeps every training image (the data's own imbalance) instead of N per class.
  natural: bool = False
  val: Optional[Split] = None  # a validation split the source provides itself (an image tree's val/)
