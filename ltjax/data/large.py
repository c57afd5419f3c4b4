"""Large-scale long-tailed datasets (the official split files; the official CIFAR/SVHN transforms): ImageNet-LT,
iNaturalist 2018, Places-LT.

Two sources, both file-backed (images are decoded in the tf.data pipeline, never held decoded in memory):

* split files (`imagenet_lt`, `inat2018`, `places_lt`): `relative/path label` lists read from
  `config.data.lists_dir` (default: `config.data.root`), image paths relative to `config.data.root`:

  | name        | train list               | test list (eval)         | val list (optional)     | C    | mean / std |
  |-------------|--------------------------|--------------------------|-------------------------|------|------------|
  | imagenet_lt | ImageNet_LT_train.txt    | ImageNet_LT_test.txt     | ImageNet_LT_val.txt     | 1000 | ImageNet   |
  | inat2018    | iNaturalist18_train.txt  | iNaturalist18_val.txt    | –                       | 8142 | iNat       |
  | places_lt   | Places_LT_train.txt      | Places_LT_test.txt       | –                       | 365  | ImageNet   |

  Every list is parsed and every listed file checked for existence before anything else happens (a malformed line
  is an error naming file:line; missing images are counted and the first ones named).
* TFDS (`imagenet_lt_tfds` = TFDS `imagenet_lt` train/test/validation; `inat2018_tfds` = TFDS `i_naturalist2018`
  train/validation): the encoded JPEG bytes are held in host memory (ImageNet-LT ≈ 13 GB, iNat 2018 much more:
  prefer the split files there), examples sorted by file name / id (TFDS stores them in a hashed order). Places-LT
  has no TFDS source: `places365_small` carries no file names, so the Places-LT subset cannot be selected from it.
  TFDS `imagenet_lt` needs the ILSVRC2012 tars and downloads its split lists, so it cannot be prepared offline.

Labels: with `config.data.label_remap = 'frequency'` (ARB/MiSLAS) classes are re-indexed by decreasing training count
(`filelist.frequency_remap`), so the many/medium/few index ranges of MiSLAS/ARB's evaluation apply (ImageNet-LT
[0,390)/[390,835)/
[835,1000), iNat [0,842)/[842,4543)/[4543,8142), Places-LT [0,131)/[131,288)/[288,365)); 'none' keeps the lists'
labels (SS). The threshold groups (>100 / <20) are computed from counts either way.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Optional, Tuple

import numpy as np

from ltjax import optional
from ltjax.data import filelist, tfds_data
from ltjax.data.augment import ImageRecipe
from ltjax.data.dataset import Dataset, Split
from ltjax.errors import ConfigError, DataNotFoundError

log = logging.getLogger("ltjax")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INAT_MEAN = (0.466, 0.471, 0.380)
INAT_STD = (0.195, 0.194, 0.192)
LABEL_REMAPS = ("frequency", "none")


@dataclasses.dataclass(frozen=True)
class LargeSpec:
  num_classes: int
  train_list: str
  test_list: str
  val_list: Optional[str]
  mean: Tuple[float, float, float]
  std: Tuple[float, float, float]
  group_bounds: Tuple[int, int]  # the index-range groups of MiSLAS/ARB's evaluation (frequency-sorted labels)
  tfds_name: Optional[str] = None
  tfds_splits: Tuple[str, str, Optional[str]] = ("train", "test", None)  # train, test, val
  tfds_key: str = "file_name"  # feature that names the original file (sort key)


SPECS = {
    "imagenet_lt": LargeSpec(1000, "ImageNet_LT_train.txt", "ImageNet_LT_test.txt", "ImageNet_LT_val.txt",
                             IMAGENET_MEAN, IMAGENET_STD, (390, 835), "imagenet_lt",
                             ("train", "test", "validation"), "file_name"),
    "inat2018": LargeSpec(8142, "iNaturalist18_train.txt", "iNaturalist18_val.txt", None, INAT_MEAN, INAT_STD,
                          (842, 4543), "i_naturalist2018", ("train", "validation", None), "id"),
    "places_lt": LargeSpec(365, "Places_LT_train.txt", "Places_LT_test.txt", None, IMAGENET_MEAN, IMAGENET_STD,
                           (131, 288)),
}
TFDS_SOURCES = {"imagenet_lt_tfds": "imagenet_lt", "inat2018_tfds": "inat2018"}


def recipe_from_config(data_cfg) -> ImageRecipe:
  cj = float(getattr(data_cfg, "color_jitter", 0.4))
  return ImageRecipe(image_size=int(getattr(data_cfg, "image_size", 224)),
                     eval_resize=int(getattr(data_cfg, "eval_resize", 256)), flip=True, color_jitter=(cj, cj, cj))


def load(name: str, data_cfg) -> Dataset:
  if name in TFDS_SOURCES:
    return _from_tfds(name, SPECS[TFDS_SOURCES[name]], data_cfg)
  return _from_split_files(name, SPECS[name], data_cfg)


def _remap(data_cfg, spec: LargeSpec, train_labels: np.ndarray) -> Optional[np.ndarray]:
  mode = getattr(data_cfg, "label_remap", "frequency")
  if mode not in LABEL_REMAPS:
    raise ConfigError(f"config.data.label_remap = {mode!r} is not one of {list(LABEL_REMAPS)}")
  return filelist.frequency_remap(train_labels, spec.num_classes) if mode == "frequency" else None


def _finish(name, spec, data_cfg, splits) -> Dataset:
  """splits: {'train'|'test'|'val': (labels int64 [N], kwargs for Split)} → Dataset with remapped labels."""
  table = _remap(data_cfg, spec, splits["train"][0])
  out = {}
  for key, (labels, kw) in splits.items():
    y = table[labels] if table is not None else labels
    out[key] = Split(None, y.astype(np.int32), np.arange(len(y), dtype=np.int64), **kw)
  train = out["train"]
  present = np.bincount(train.labels, minlength=spec.num_classes)
  if (present == 0).any():
    log.warning("%s: %d of %d classes have no training image", name, int((present == 0).sum()), spec.num_classes)
  return Dataset(name, spec.num_classes, train, out["test"], out.get("val"), spec.mean, spec.std, crop_padding=0,
                 flip=True, recipe=recipe_from_config(data_cfg))


def _from_split_files(name: str, spec: LargeSpec, data_cfg) -> Dataset:
  root = getattr(data_cfg, "root", "") or ""
  if not root:
    raise DataNotFoundError(f"dataset '{name}' reads split files: set --config.data.root=DIR to the image root "
                            f"(the paths in {spec.train_list} are relative to it; see README: Data)")
  if not os.path.isdir(root):
    raise DataNotFoundError(f"data root {root!r} (config.data.root) for '{name}' does not exist")
  lists_dir = getattr(data_cfg, "lists_dir", "") or root
  wanted = {"train": spec.train_list, "test": spec.test_list}
  if getattr(data_cfg, "val_list", False):
    if spec.val_list is None:
      raise ConfigError(f"config.data.val_list: '{name}' has no separate validation list (evaluate on the test list)")
    wanted["val"] = spec.val_list
  for key, fname in wanted.items():
    if not os.path.isfile(os.path.join(lists_dir, fname)):
      raise DataNotFoundError(
          f"split file {os.path.join(lists_dir, fname)} not found. '{name}' needs {', '.join(wanted.values())} in "
          f"config.data.lists_dir (default: config.data.root); they ship with the ARB-Loss / MiSLAS / decoupling "
          "repositories (data/ folder)")
  splits = {}
  for key, fname in wanted.items():
    path = os.path.join(lists_dir, fname)
    rel, labels = filelist.read_split_file(path, spec.num_classes)
    filelist.check_files(root, rel, path)
    files = np.asarray([os.path.join(root, p) for p in rel])
    splits[key] = (labels, {"files": files})
    log.info("%s %s: %s from %s", name, key, filelist.counts_summary(labels, spec.num_classes), path)
  return _finish(name, spec, data_cfg, splits)


def _from_tfds(name: str, spec: LargeSpec, data_cfg) -> Dataset:
  builder = tfds_data.builder(spec.tfds_name, data_cfg.data_dir or None)  # fast not-found path
  optional.tensorflow(f"reading TFDS dataset '{spec.tfds_name}'")  # kept off any accelerator: JAX owns it
  tfds = optional.tensorflow_datasets(f"reading TFDS dataset '{spec.tfds_name}'")
  train_s, test_s, val_s = spec.tfds_splits
  wanted = {"train": train_s, "test": test_s}
  if getattr(data_cfg, "val_list", False):
    if val_s is None:
      raise ConfigError(f"config.data.val_list: '{name}' has no separate validation split")
    wanted["val"] = val_s
  splits = {}
  for key, split in wanted.items():
    ds = builder.as_dataset(split=split, shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()})
    enc, labels, keys = [], [], []
    for ex in tfds.as_numpy(ds):
      enc.append(ex["image"])
      labels.append(int(ex["label"]))
      keys.append(ex[spec.tfds_key])
    if not enc:
      raise DataNotFoundError(f"TFDS dataset '{spec.tfds_name}' split '{split}' in {builder.data_dir} is empty")
    labels = np.asarray(labels, np.int64)
    if labels.min() < 0 or labels.max() >= spec.num_classes:
      raise ValueError(f"TFDS {spec.tfds_name}/{split}: labels outside [0, {spec.num_classes})")
    order = np.argsort(np.asarray([k.decode() if isinstance(k, bytes) else str(k) for k in keys]), kind="stable")
    encoded = np.empty(len(enc), object)
    encoded[:] = [enc[i] for i in order]
    splits[key] = (labels[order], {"encoded": encoded})
    log.info("%s %s: %s (TFDS %s/%s, encoded in memory)", name, key,
             filelist.counts_summary(labels, spec.num_classes), spec.tfds_name, split)
  return _finish(name, spec, data_cfg, splits)
