"""Whole TFDS splits as numpy, in the datasets' original order; never downloads.

TFDS data must already be prepared in the data directory. A download attempt without a network blocks for minutes in
retries, so a missing dataset raises `DataNotFoundError` within a second instead, saying where it looked and how to
prepare the data. TensorFlow is imported only when a split is read.

Original order of TFDS examples (checked in tensorflow-datasets 4.9.10; TFDS stores examples in a hashed order):
* cifar10 / cifar100 (`image_classification/cifar.py`): `_generate_examples` walks data_batch_1.bin … data_batch_5.bin
  (CIFAR-100: train.bin; test: test_batch.bin / test.bin) record by record with a running counter `index` and sets
  `id = f"{split}_{index:05d}"`, so the number in `id` is the position in the concatenated original files. The
  binary files hold the same images in the same order as the python-pickle batches torchvision reads (the CIFAR
  page describes both formats as the same data; not re-checked here against real files, which are not available
  offline). CIFAR-100's binary records carry coarse then fine label; TFDS `label` is the fine label.
* svhn_cropped 3.1.0 (`datasets/svhn_cropped/svhn_cropped_dataset_builder.py`): `id = f"{split}_{i:06d}"` with `i`
  the position in train_32x32.mat / test_32x32.mat — torchvision's SVHN order — and `label = y % 10`, so digit 0
  (the .mat files' label 10) is label 0, as torchvision's `np.place(labels, labels == 10, 0)`.
Sorting on that number restores the original order, so the legacy-RandomState selection picks the official subset.
`tfds.testing.mock_data` fills `id` with random letters (RandomFakeGenerator: 10–20 of ' abcdefghij'); when the ids
do not all parse, the TFDS order is kept (with a log line), which is what mock data needs.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Dict, Optional, Sequence

import numpy as np

from ltjax import optional
from ltjax.data.dataset import Split
from ltjax.errors import DataNotFoundError

log = logging.getLogger("ltjax")

# ltjax name → TFDS builder name.
TFDS_NAMES = {"cifar10": "cifar10", "cifar100": "cifar100", "svhn": "svhn_cropped"}

DEFAULT_DIR = "the TFDS default data dir ($TFDS_DATA_DIR or ~/tensorflow_datasets)"


def id_numbers(ids: Sequence) -> Optional[np.ndarray]:
  """int64 numbers n of TFDS ids '<split>_<n>' (the original position), or None when the ids are not all of that
  form or repeat a number (mock data has random ids)."""
  nums = []
  for i in ids:
    m = re.fullmatch(r"[A-Za-z]+_(\d+)", i.decode() if isinstance(i, bytes) else str(i))
    if m is None:
      return None
    nums.append(int(m.group(1)))
  nums = np.asarray(nums, np.int64)
  if len(np.unique(nums)) != len(nums):
    return None
  return nums


def original_order(ids: Sequence) -> Optional[np.ndarray]:
  """Permutation that sorts TFDS examples into their original order by the number in their '<split>_<n>' ids, or
  None when the ids do not allow it (see `id_numbers`)."""
  nums = id_numbers(ids)
  return None if nums is None else np.argsort(nums, kind="stable")


def not_found(name: str, builder, data_dir: Optional[str], detail: str = "") -> DataNotFoundError:
  where = f"'{data_dir}'" if data_dir else DEFAULT_DIR
  found = ""
  parent = os.path.dirname(os.fspath(builder.data_dir))
  if os.path.isdir(parent):
    versions = sorted(v for v in os.listdir(parent) if os.path.isdir(os.path.join(parent, v)))
    if str(builder.version) in versions:
      found = (f" {builder.data_dir} exists but is incomplete (an interrupted preparation?): remove it and prepare "
               f"again.")
    elif versions:
      found = (f" Found only version(s) {versions} of {name} there; this tensorflow-datasets reads version "
               f"{builder.version}: prepare that version, or install the tensorflow-datasets that wrote them.")
  dd = data_dir or "DIR"
  return DataNotFoundError(
      f"TFDS dataset '{name}' is not prepared in {where} (looked for {builder.data_dir}).{found} ltjax never "
      f"downloads (there may be no network). To prepare it: on a networked machine run `tfds build {name} "
      f"--data_dir {dd}` (or `python -c \"import tensorflow_datasets as tfds; tfds.builder('{name}', "
      f"data_dir='{dd}').download_and_prepare()\"`), or copy an existing ~/tensorflow_datasets/{name} directory "
      f"to {dd}/{name}; then pass --config.data.data_dir={dd}.{detail}")


def builder(name: str, data_dir: Optional[str]):
  """The TFDS builder of `name`, after checking that its data is prepared. Never downloads; answers in about a
  second when the data is missing (before TensorFlow itself is imported)."""
  tfds = optional.tensorflow_datasets(f"reading TFDS dataset '{name}'")  # light: TFDS imports TensorFlow lazily
  b = tfds.builder(name, data_dir=data_dir)
  if not b.is_prepared():
    # `is_prepared()` is also False under `tfds.testing.mock_data` (it patches `as_dataset`, not the data dir), so
    # ask `as_dataset`: on real unprepared data it raises at once (AssertionError "could not find data"), without
    # any download attempt and without importing TensorFlow; under mock data it returns the fake dataset.
    try:
      b.as_dataset(split="train", shuffle_files=False)
    except Exception as e:  # pylint: disable=broad-except
      raise not_found(name, b, data_dir, f" (TFDS: {str(e).splitlines()[0][:200]})") from None
  return b


def load_splits(name: str, data_dir: Optional[str], splits: Sequence[str],
                 label_key: str = "label", image_key: str = "image", resize: int = 0,
                 warn_unordered: bool = True) -> Dict[str, Split]:
  """Loads whole TFDS splits as numpy, in original order when the example ids allow it (else in TFDS's stored
  order, which `shuffle_files=False` makes deterministic). `resize` > 0 resizes every image to resize×resize
  (bilinear, rounded to uint8) before batching, for datasets whose images differ in size. Never downloads."""
  b = builder(name, data_dir or None)
  tf = optional.tensorflow(f"reading TFDS dataset '{name}'")  # kept off any accelerator: JAX owns it
  tfds = optional.tensorflow_datasets(f"reading TFDS dataset '{name}'")
  out = {}
  for split in splits:
    ds = b.as_dataset(split=split, shuffle_files=False)

    def pick(ex):
      img = ex[image_key]
      if resize:
        img = tf.cast(tf.clip_by_value(tf.round(tf.image.resize(img, [resize, resize])), 0, 255), tf.uint8)
      d = {"image": img, "label": ex[label_key]}
      if "id" in ex:
        d["id"] = ex["id"]
      return d

    parts: Dict[str, list] = {"image": [], "label": [], "id": []}
    for batch in tfds.as_numpy(ds.map(pick).batch(8192)):
      for k in parts:
        if k in batch:
          parts[k].append(batch[k])
    if not parts["image"]:
      raise DataNotFoundError(f"TFDS dataset '{name}' split '{split}' in {b.data_dir} is empty")
    images = np.concatenate(parts["image"])
    labels = np.concatenate(parts["label"]).astype(np.int32)
    nums = id_numbers(np.concatenate(parts["id"])) if parts["id"] else None
    if nums is None:
      if warn_unordered:
        log.warning("%s/%s: example ids are not '<split>_<n>' (mock data?); keeping the TFDS order", name, split)
      nums = np.arange(len(labels), dtype=np.int64)
    perm = np.argsort(nums, kind="stable")
    out[split] = Split(images[perm], labels[perm], nums[perm])
  return out


def classification_keys(b, name: str):
  """(image key, label key, number of classes) of a TFDS image-classification builder: its supervised keys when it
  declares them, else its single Image and single ClassLabel feature. ConfigError when it has neither."""
  from ltjax.errors import ConfigError
  tfds = optional.tensorflow_datasets(f"reading TFDS dataset '{name}'")
  feats = b.info.features
  keys = b.info.supervised_keys
  if isinstance(keys, tuple) and len(keys) == 2 and all(isinstance(k, str) for k in keys):
    image_key, label_key = keys
  else:
    images = [k for k, f in feats.items() if isinstance(f, tfds.features.Image)]
    labels = [k for k, f in feats.items() if isinstance(f, tfds.features.ClassLabel)]
    if len(images) != 1 or len(labels) != 1:
      raise ConfigError(f"config.data.name = 'tfds:{name}': not an image-classification dataset (needs one Image "
                        f"and one ClassLabel feature, or supervised keys; its features are {sorted(feats.keys())})")
    image_key, label_key = images[0], labels[0]
  if not isinstance(feats[image_key], tfds.features.Image) or not isinstance(feats[label_key], tfds.features.ClassLabel):
    raise ConfigError(f"config.data.name = 'tfds:{name}': its supervised keys ({image_key}, {label_key}) are not an "
                      "image and a class label")
  return image_key, label_key, int(feats[label_key].num_classes)


def load_classification(name: str, data_dir: Optional[str], resize: int = 0) -> Dict[str, np.ndarray]:
  """Any prepared TFDS image-classification dataset as the arrays of a user's .npz: x_/y_ train and test, and val
  from its 'validation' split when it has one. Images of varying size need `resize` (ConfigError otherwise)."""
  from ltjax.errors import ConfigError
  b = builder(name, data_dir or None)
  image_key, label_key, num_classes = classification_keys(b, name)
  shape = tuple(b.info.features[image_key].shape)
  if not resize and any(d is None for d in shape[:2]):
    raise ConfigError(f"config.data.name = 'tfds:{name}' holds images of varying size {shape}: pass "
                      "--config.data.resize=S to resize every image to S×S")
  available = set(b.info.splits.keys()) or {"train", "test"}  # (mock data declares no splits)
  if "train" not in available or "test" not in available:
    raise ConfigError(f"config.data.name = 'tfds:{name}' needs 'train' and 'test' splits; it has "
                      f"{sorted(available)}")
  splits = ["train", "test"] + (["validation"] if "validation" in available else [])
  s = load_splits(name, data_dir, splits, label_key, image_key, resize, warn_unordered=False)
  out = {}
  for split, key in (("train", "train"), ("test", "test"), ("validation", "val")):
    if split in s:
      x = s[split].images
      out[f"x_{key}"] = x if x.ndim == 4 else x[..., None]
      out[f"y_{key}"] = s[split].labels
  present = np.bincount(out["y_train"], minlength=num_classes)
  if (present == 0).any():
    raise ConfigError(f"config.data.name = 'tfds:{name}': class(es) {np.flatnonzero(present == 0)[:10].tolist()} of "
                      f"its {num_classes} have no training images")
  return out
