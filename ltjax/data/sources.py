"""Dataset sources: each returns the full balanced train/test images of a dataset in its original order; `load`
then selects the long-tailed training subset with the official procedure (ltjax.data.imbalance).

| name     | source                                   | N per class   | class order | normalisation            |
|----------|------------------------------------------|---------------|-------------|--------------------------|
| digits   | scikit-learn load_digits (embedded)      | min pool size | 0..9        | digits' own mean/std     |
| cifar10  | TFDS cifar10, original pickle order      | 5000          | 0..9        | CIFAR-10 (spec §1.4)     |
| cifar100 | TFDS cifar100 (fine labels)              | 500           | 0..99       | CIFAR-10 statistics      |
| svhn     | TFDS svhn_cropped (digit 0 = label 0)    | 1000          | 1..9, 0     | 0.5 / 0.5                |

TFDS data must already be prepared in the data directory: nothing is ever downloaded (a download attempt without
network blocks for minutes); a missing dataset raises DataNotFoundError at once with the way to prepare it.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from ltjax.data import imbalance

log = logging.getLogger("ltjax")

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
# Pixel statistics of the digits train pool (scaled to [0, 1]), computed once and rounded.
DIGITS_MEAN = (0.3058,)
DIGITS_STD = (0.3760,)
DIGITS_TEST_PER_CLASS = 30
DIGITS_SPLIT_SEED = 12345


class DataNotFoundError(FileNotFoundError):
  pass


@dataclasses.dataclass
class Split:
  images: np.ndarray  # uint8 [N, H, W, C]
  labels: np.ndarray  # int32 [N]
  indices: np.ndarray  # int64 [N]: row of each example in the source's original (full, balanced) order

  def take(self, idx: np.ndarray) -> "Split":
    return Split(self.images[idx], self.labels[idx], self.indices[idx])

  def __len__(self) -> int:
    return len(self.labels)


@dataclasses.dataclass
class Dataset:
  name: str
  num_classes: int
  train: Split  # the long-tailed subset
  test: Split
  val: Optional[Split]  # balanced hold-out from train images the subset does not use, or None
  mean: Tuple[float, ...]
  std: Tuple[float, ...]
  crop_padding: int
  flip: bool


@dataclasses.dataclass
class Raw:
  """A source's full data, before the long-tailed selection."""

  train: Split
  test: Split
  num_classes: int
  n_full: float  # N of the count formulas
  class_order: Tuple[int, ...]
  mean: Tuple[float, ...]
  std: Tuple[float, ...]
  crop_padding: int = 4
  flip: bool = True


def _digits(data_cfg) -> Raw:
  from sklearn.datasets import load_digits
  d = load_digits()
  images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  labels = d.target.astype(np.int32)
  rng = np.random.RandomState(DIGITS_SPLIT_SEED)
  test = np.sort(np.concatenate([rng.permutation(np.where(labels == c)[0])[:DIGITS_TEST_PER_CLASS]
                                 for c in range(10)]))
  pool = imbalance.remaining_indices(len(labels), test)
  full = Split(images, labels, np.arange(len(labels), dtype=np.int64))
  train = full.take(pool)
  n_full = int(np.bincount(train.labels, minlength=10).min())
  return Raw(train, full.take(test), 10, n_full, tuple(range(10)), DIGITS_MEAN, DIGITS_STD, crop_padding=1,
             flip=False)


def original_order(ids) -> Optional[np.ndarray]:
  """Permutation that sorts TFDS CIFAR examples into the original pickle order (data_batch_1..5, as torchvision
  reads it), or None when the ids are not of that form.

  TFDS's CIFAR builder names example k of the original files '<split>_<k:05d>' and stores examples in a hashed
  order; sorting on k restores the original order, so the legacy-RandomState selection picks the official subset.
  """
  nums = [re.fullmatch(r"[a-z]+_(\d+)", i.decode() if isinstance(i, bytes) else str(i)) for i in ids]
  if not all(nums):
    return None
  return np.argsort([int(m.group(1)) for m in nums], kind="stable")


def _tfds_split(name: str, split: str, data_dir: Optional[str], label_key: str) -> Split:
  import tensorflow as tf
  import tensorflow_datasets as tfds
  tf.config.set_visible_devices([], "GPU")
  builder = tfds.builder(name, data_dir=data_dir or None)
  try:
    ds = builder.as_dataset(split=split, shuffle_files=False)
  except AssertionError as e:  # raised at once when the prepared files are missing; never downloads
    where = data_dir or "the TFDS default data dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"
    raise DataNotFoundError(
        f"TFDS dataset '{name}' is not prepared in {where}. ltjax never downloads (there may be no network). "
        f"Prepare it on a networked machine with `tfds build {name} --data_dir DIR` (or "
        f"`python -c \"import tensorflow_datasets as tfds; tfds.builder('{name}', data_dir='DIR')"
        f".download_and_prepare()\"`), then copy DIR/{name} here and pass --config.data.data_dir=DIR. "
        f"(TFDS said: {str(e).splitlines()[0][:200]})") from None
  parts: Dict[str, list] = {"image": [], label_key: [], "id": []}
  for batch in tfds.as_numpy(ds.batch(10000)):
    for k in parts:
      if k in batch:
        parts[k].append(batch[k])
  images = np.concatenate(parts["image"])
  labels = np.concatenate(parts[label_key]).astype(np.int32)
  order = original_order(np.concatenate(parts["id"])) if parts["id"] else np.arange(len(labels))
  if order is None:
    log.warning("%s/%s: example ids are not '<split>_<n>' (mock data?); keeping the TFDS order", name, split)
    order = np.arange(len(labels))
  return Split(images[order], labels[order], np.arange(len(labels), dtype=np.int64))


def _cifar(name: str, num_classes: int):
  def source(data_cfg) -> Raw:
    train = _tfds_split(name, "train", data_cfg.data_dir, "label")
    test = _tfds_split(name, "test", data_cfg.data_dir, "label")
    return Raw(train, test, num_classes, len(train) / num_classes, tuple(range(num_classes)), CIFAR_MEAN,
               CIFAR_STD)
  return source


def _svhn(data_cfg) -> Raw:
  # TFDS svhn_cropped stores digit 0 as label 0 (the .mat files use 10); it has no example ids, so the selection
  # runs over the TFDS order (same counts as the official subset, not the same images; docs/DEVIATIONS.md).
  train = _tfds_split("svhn_cropped", "train", data_cfg.data_dir, "label")
  test = _tfds_split("svhn_cropped", "test", data_cfg.data_dir, "label")
  return Raw(train, test, 10, 1000, (1, 2, 3, 4, 5, 6, 7, 8, 9, 0), (0.5,) * 3, (0.5,) * 3)


REGISTRY: Dict[str, Callable[..., Raw]] = {
    "digits": _digits,
    "cifar10": _cifar("cifar10", 10),
    "cifar100": _cifar("cifar100", 100),
    "svhn": _svhn,
}


def load(data_cfg) -> Dataset:
  """Load `data_cfg.name` and select its long-tailed training subset (and optional validation split)."""
  if data_cfg.name not in REGISTRY:
    raise ValueError(f"unknown dataset '{data_cfg.name}' (known: {sorted(REGISTRY)})")
  raw = REGISTRY[data_cfg.name](data_cfg)
  counts = imbalance.class_counts(raw.n_full, raw.num_classes, data_cfg.imb_type, data_cfg.imb_factor)
  selected = imbalance.select_long_tailed(raw.train.labels, counts, data_cfg.rand_number, raw.class_order)
  val = None
  if data_cfg.val_per_class:
    rest = imbalance.remaining_indices(len(raw.train), selected)
    val = raw.train.take(imbalance.balanced_holdout(raw.train.labels, rest, data_cfg.val_per_class,
                                                    raw.num_classes, data_cfg.rand_number + 1))
  return Dataset(data_cfg.name, raw.num_classes, raw.train.take(selected), raw.test, val, tuple(raw.mean),
                 tuple(raw.std), raw.crop_padding, raw.flip)
