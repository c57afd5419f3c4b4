"""Dataset sources. Each source returns the full balanced train/test images of a dataset in its *original* order;
`load` then selects the long-tailed training subset with the official procedure (`ltjax.data.imbalance`) and,
optionally, a balanced validation split from the training images the subset leaves unused.

| name     | source                                | N per class    | class order | mean / std            | pad, flip |
|----------|---------------------------------------|----------------|-------------|-----------------------|-----------|
| digits   | scikit-learn load_digits (embedded)   | min pool count | 0..9        | digits' own (below)   | 0, no     |
| cifar10  | TFDS cifar10, original file order     | len/C = 5000   | 0..9        | CIFAR-10 (the official CIFAR/SVHN
transforms)  | 4, yes    |
| cifar100 | TFDS cifar100 (fine `label`)          | len/C = 500    | 0..99       | CIFAR-10 statistics   | 4, yes    |
| svhn     | TFDS svhn_cropped (digit 0 = label 0) | 1000 (fixed)   | 1..9, 0     | 0.5 / 0.5             | 4, yes    |
| npz, image_folder, tfds:NAME | a user's arrays / image tree / any prepared TFDS image-classification dataset |
min train count | 0..C−1 | from the training subset | ⌊side/8⌋ and flip for side ≥ 16, else none |

TFDS data must already be prepared in the data directory. Nothing is ever downloaded (a download attempt without a
network blocks for minutes in retries): a missing dataset raises `DataNotFoundError` within a second, saying where
it looked and how to prepare the data. TensorFlow is imported only by the TFDS sources.

The TFDS sources read through `ltjax.data.tfds_data` (original example order, the fast not-found path).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, Tuple

import numpy as np

from ltjax.data import imbalance, large, tfds_data, unlabeled
from ltjax.data.dataset import Dataset, Raw, Split
from ltjax.data.tfds_data import TFDS_NAMES
from ltjax.errors import ConfigError, DataNotFoundError  # noqa: F401 (re-exported)

log = logging.getLogger("ltjax")

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
SVHN_MEAN = (0.5, 0.5, 0.5)
SVHN_STD = (0.5, 0.5, 0.5)
SVHN_N_FULL = 1000  # imbalanced-semi-self's SVHN-LT: N fixed to 1000, not len/C
SVHN_CLASS_ORDER = (1, 2, 3, 4, 5, 6, 7, 8, 9, 0)  # imbalanced-semi-self's SVHN-LT: digit 0 (the rarest) last
# Pixel statistics of the digits train pool (all 1,497 pool images, pixels scaled to [0, 1]: mean 0.30576,
# std 0.37599), computed once with the split below and rounded.
DIGITS_MEAN = (0.3058,)
DIGITS_STD = (0.3760,)
DIGITS_TEST_PER_CLASS = 30
DIGITS_SPLIT_SEED = 12345
# The validation hold-out draws with RandomState(rand_number + VAL_SEED_OFFSET), apart from the selection stream.
VAL_SEED_OFFSET = 1

# ----------------------------------------------------------------------------------------------------------------
# digits (embedded, no TensorFlow)


def _digits(data_cfg) -> Raw:
  """scikit-learn's 1,797 8×8 digits, 0..16 scaled to uint8 by round(x·255/16), [N, 8, 8, 1].

  Test: 30 images per class, for each class c = 0..9 in turn the first 30 of
  `RandomState(DIGITS_SPLIT_SEED).permutation(indices of class c)` (one stream over the classes); the other 1,497
  images are the train pool (per class 148 152 147 153 151 152 151 149 144 150), so N = 144 (the smallest class)
  and every class can supply its count. Neither cropped nor flipped (see below).
  """
  del data_cfg
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
  # No crop or flip: a ±1-pixel shift of an 8×8 digit is a large deformation (training with it reached 23% test
  # accuracy after 8 epochs against 93% without), and mirrored digits are other symbols.
  return Raw(train, full.take(test), 10, n_full, tuple(range(10)), DIGITS_MEAN, DIGITS_STD, crop_padding=0,
             flip=False)


# ----------------------------------------------------------------------------------------------------------------
# arrays a user brings (.npz), no TensorFlow

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _npz_error(path: str, what: str) -> ValueError:
  return ValueError(f"--config.data.path={path}: {what}. Expected a .npz holding x_train, y_train, x_test, y_test: "
                    "images uint8 [N, H, W, C] (or [N, H, W] for one channel), labels integers 0..C-1 [N] "
                    "(np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...))")


def load_npz_arrays(path: str) -> Dict[str, np.ndarray]:
  """The four arrays of a user's .npz, checked: images uint8 [N, H, W, C] (NHW gains C = 1), labels int32 [N] in
  [0, C) with every class present in x_train, train and test images of one shape. Errors name the file and what is
  wrong."""
  if not path or not os.path.isfile(path):
    raise DataNotFoundError(f"--config.data.path={path!r}: no such file (data.name='npz' reads x_train, y_train, "
                            "x_test, y_test from a .npz)")
  try:
    with np.load(path, allow_pickle=False) as z:
      missing = [k for k in NPZ_KEYS if k not in z.files]
      if missing:
        raise _npz_error(path, f"missing array(s) {missing} (found {sorted(z.files)})")
      arrays = {k: z[k] for k in NPZ_KEYS}
  except (OSError, EOFError, ValueError) as e:
    if isinstance(e, ValueError) and str(e).startswith("--config.data.path"):
      raise
    raise _npz_error(path, f"cannot read it as .npz ({type(e).__name__}: {e})") from None
  for split in ("train", "test"):
    x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
    if x.dtype != np.uint8 or x.ndim not in (3, 4):
      raise _npz_error(path, f"x_{split} is {x.dtype} {list(x.shape)}, not uint8 NHWC / NHW")
    if x.ndim == 3:
      arrays[f"x_{split}"] = x = x[..., None]
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
      raise _npz_error(path, f"y_{split} is {y.dtype} {list(y.shape)}, not {len(x)} integer labels")
    if len(y) == 0:
      raise _npz_error(path, f"x_{split} is empty")
    arrays[f"y_{split}"] = y.astype(np.int64)
  if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
    raise _npz_error(path, f"x_train images are {list(arrays['x_train'].shape[1:])} but x_test images are "
                           f"{list(arrays['x_test'].shape[1:])}")
  y_train, y_test = arrays["y_train"], arrays["y_test"]
  num_classes = int(y_train.max()) + 1
  if y_train.min() < 0 or y_test.min() < 0 or y_test.max() >= num_classes:
    raise _npz_error(path, f"labels must lie in [0, C) with C = max(y_train) + 1 = {num_classes}; y_test spans "
                           f"[{y_test.min()}, {y_test.max()}]")
  empty = np.flatnonzero(np.bincount(y_train, minlength=num_classes) == 0)
  if empty.size:
    raise _npz_error(path, f"class(es) {empty[:10].tolist()} have no training images")
  arrays["y_train"], arrays["y_test"] = y_train.astype(np.int32), y_test.astype(np.int32)
  return arrays


def _raw_from_arrays(a: Dict[str, np.ndarray]) -> Raw:
  """Raw of checked in-memory arrays (x_/y_ train, test and optional val): classes 0..C−1 in label order, N = the
  smallest class's training count, crop and flip by image size (see `_npz`)."""
  x, y = a["x_train"], a["y_train"]
  num_classes = int(y.max()) + 1
  counts = np.bincount(y, minlength=num_classes)
  side = min(x.shape[1], x.shape[2])
  train = Split(x, y, np.arange(len(y), dtype=np.int64))
  test = Split(a["x_test"], a["y_test"], np.arange(len(a["y_test"]), dtype=np.int64))
  val = None
  if "x_val" in a:
    val = Split(a["x_val"], a["y_val"], np.arange(len(a["y_val"]), dtype=np.int64))
  return Raw(train, test, num_classes, int(counts.min()), tuple(range(num_classes)), None, None,
             crop_padding=side // 8 if side >= 16 else 0, flip=side >= 16, natural=True, val=val)


def _image_folder(data_cfg) -> Raw:
  """A user's image-folder tree under `data_cfg.root` (`ltjax.data.image_folder`), in memory; then as `_npz`."""
  from ltjax.data import image_folder
  a = image_folder.load_tree(data_cfg.root, int(_get(data_cfg, "resize", 0)))
  return _raw_from_arrays(a)


def _tfds_any(data_cfg) -> Raw:
  """`tfds:NAME`: any prepared TFDS image-classification dataset, in memory, as `_npz` (classes 0..C−1 by label id,
  N = the smallest class's training count, statistics from the training subset, crop/flip by image size); its
  'validation' split, when present, is the val split."""
  a = tfds_data.load_classification(data_cfg.name[len(TFDS_PREFIX):], data_cfg.data_dir,
                                    int(_get(data_cfg, "resize", 0)))
  return _raw_from_arrays(a)


def loader_for(name: str) -> Callable[..., Any]:
  """The loader of dataset `name`: a REGISTRY entry, or the generic TFDS reader for 'tfds:NAME'."""
  if name.startswith(TFDS_PREFIX) and len(name) > len(TFDS_PREFIX):
    return _tfds_any
  if name not in REGISTRY:
    raise ConfigError(f"unknown dataset '{name}' (known: {', '.join(sorted(REGISTRY))}, or tfds:NAME for any "
                      "prepared TFDS image-classification dataset)")
  return REGISTRY[name]


def _npz(data_cfg) -> Raw:
  """User arrays from `data_cfg.path` (`load_npz_arrays`), in memory, classes 0..C−1 in label order.

  imb_type 'exp'/'step' select the long-tailed subset with N = the smallest class's training count (a balanced set:
  its per-class size), so every class can supply its count; 'none' keeps every training image (the data's own
  imbalance). Normalisation statistics: per channel over the selected training subset (pixels in [0, 1]), unless
  data.mean / data.std are set. Augmentation by image size: random crop with zero padding ⌊H/8⌋ and horizontal
  flip for images of side ≥ 16 (32×32: padding 4, the CIFAR recipe); neither for smaller ones (as the 8×8 digits).
  """
  return _raw_from_arrays(load_npz_arrays(data_cfg.path))


def pixel_statistics(images: np.ndarray) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
  """Per-channel mean and standard deviation of uint8 images [N, H, W, C] scaled to [0, 1] (float64 sums)."""
  x = images.reshape(-1, images.shape[-1])
  n = x.shape[0]
  total, total_sq = np.zeros(x.shape[1]), np.zeros(x.shape[1])
  for start in range(0, n, 1 << 20):  # chunks: no float64 copy of the whole split
    c = x[start:start + (1 << 20)].astype(np.float64) / 255.0
    total += c.sum(0)
    total_sq += np.square(c).sum(0)
  mean = total / n
  std = np.sqrt(np.maximum(total_sq / n - np.square(mean), 0.0))
  return tuple(float(m) for m in mean), tuple(float(max(v, 1e-6)) for v in std)


TFDS_BACKED = frozenset(TFDS_NAMES) | frozenset(("imagenet_lt_tfds", "inat2018_tfds"))
TFDS_PREFIX = "tfds:"  # config.data.name = 'tfds:NAME': any prepared TFDS image-classification dataset


def reads_tfds(name: str) -> bool:
  """Whether dataset `name` is read from TFDS (so it needs tensorflow-datasets)."""
  return name in TFDS_BACKED or name.startswith(TFDS_PREFIX)


def _cifar(name: str, num_classes: int) -> Callable[..., Raw]:
  def source(data_cfg) -> Raw:
    s = tfds_data.load_splits(TFDS_NAMES[name], data_cfg.data_dir, ("train", "test"), "label")
    train = s["train"]
    return Raw(train, s["test"], num_classes, len(train) / num_classes, tuple(range(num_classes)), CIFAR_MEAN,
               CIFAR_STD, crop_padding=4, flip=True)
  source.__name__ = f"_{name}"
  return source


def _svhn(data_cfg) -> Raw:
  s = tfds_data.load_splits(TFDS_NAMES["svhn"], data_cfg.data_dir, ("train", "test"), "label")
  return Raw(s["train"], s["test"], 10, SVHN_N_FULL, SVHN_CLASS_ORDER, SVHN_MEAN, SVHN_STD, crop_padding=4,
             flip=True)


def _large(name: str) -> Callable[..., "Dataset"]:
  def source(data_cfg) -> "Dataset":
    return large.load(name, data_cfg)
  source.__name__ = f"_{name}"
  return source


# A source returns a Raw (the long-tailed subset is selected in `load`) or, for the large-scale datasets whose
# split files already are long-tailed, a finished Dataset.
REGISTRY: Dict[str, Callable[..., Any]] = {
    "digits": _digits,
    "cifar10": _cifar("cifar10", 10),
    "cifar100": _cifar("cifar100", 100),
    "svhn": _svhn,
    "npz": _npz,  # arrays a user brings: config.data.path
    "image_folder": _image_folder,  # a user's image tree: config.data.root/{train,test[,val]}/<class>/*
    # Large-scale (the official split files), file-backed: split files under config.data.root, or TFDS (encoded images).
    "imagenet_lt": _large("imagenet_lt"),
    "inat2018": _large("inat2018"),
    "places_lt": _large("places_lt"),
    "imagenet_lt_tfds": _large("imagenet_lt_tfds"),
    "inat2018_tfds": _large("inat2018_tfds"),
}
# Sources whose splits are file-backed (decoded by the host pipeline); every other source is held in memory.
FILE_BACKED = frozenset(("imagenet_lt", "inat2018", "places_lt", "imagenet_lt_tfds", "inat2018_tfds"))


def _choice(name, value, choices):
  if value not in choices:
    raise ConfigError(f"config.{name} = {value!r} is not one of {list(choices)}")


def validate(d) -> None:
  """The config's `data` section (no data is loaded): known names and choices, ranges, the unlabeled pool's
  settings, normalisation statistics, and the large-scale datasets' fields. Raises ConfigError naming the field."""
  loader_for(d.name)
  _choice("data.imb_type", d.imb_type, ("exp", "step", "none"))
  if d.name == "image_folder" and not d.root:
    raise ConfigError("config.data.name = 'image_folder' reads DIR/train/<class>/* and DIR/test/<class>/*: pass "
                      "--config.data.root=DIR")
  if d.name.startswith(TFDS_PREFIX) and d.data_dir and not os.path.isdir(d.data_dir):
    raise ConfigError(f"config.data.data_dir = {d.data_dir!r} is not a directory: give the TFDS data dir that holds "
                      f"the prepared '{d.name[len(TFDS_PREFIX):]}'")
  if d.get("resize", 0) < 0:
    raise ConfigError(f"config.data.resize = {d.resize} must be >= 0 (0 = keep the images' own size)")
  if d.name == "npz" and not d.path:
    raise ConfigError("config.data.name = 'npz' reads your arrays from config.data.path: pass "
                      "--config.data.path=FILE.npz (x_train, y_train, x_test, y_test)")
  if not 0.0 < d.imb_factor <= 1.0:
    raise ConfigError(f"config.data.imb_factor = {d.imb_factor} must lie in (0, 1] (ρ = 1/imbalance ratio: "
                     "0.01 for ratio 100, 0.02 for 50, 0.1 for 10)")
  if d.val_per_class < 0:
    raise ConfigError("config.data.val_per_class must be >= 0")
  b = tuple(d.group_bounds)
  if b and (len(b) != 2 or not 0 < b[0] < b[1]):
    raise ConfigError(f"config.data.group_bounds = {b} must be () or (a, b) with 0 < a < b < num_classes")
  u = d.get("unlabeled")  # absent in config.json of runs made before the section existed
  if u is not None and u.pseudo_labels:
    if not u.pool:
      raise ConfigError("config.data.unlabeled.pseudo_labels is set but config.data.unlabeled.pool is empty: name "
                        "the pool the pseudo labels were made for (a .pickle, 'svhn_extra', .npy/.npz or a folder)")
    _choice("data.unlabeled.select_by", u.select_by, ("truth", "pseudo", "all"))
    if not 0.0 < u.imb_factor <= 1.0:
      raise ConfigError(f"config.data.unlabeled.imb_factor = {u.imb_factor} must lie in (0, 1] (ρ_U: 1 balanced, "
                        "0.04 / 0.02 / 0.01 for ratio 25 / 50 / 100)")
    if u.multiplier < 1:
      raise ConfigError(f"config.data.unlabeled.multiplier = {u.multiplier} must be >= 1 (5 for D_U@5x)")
  if len(tuple(d.mean)) != len(tuple(d.std)):
    raise ConfigError(f"config.data.mean {tuple(d.mean)} and config.data.std {tuple(d.std)} must have "
                      "the same length (one value per channel, or both () for the dataset's own)")
  if any(v <= 0 for v in tuple(d.std)):
    raise ConfigError(f"config.data.std = {tuple(d.std)} must be positive")
  if d.count_shuffle_seed < -1:
    raise ConfigError("config.data.count_shuffle_seed must be -1 (off) or a seed >= 0")
  _choice("data.label_remap", d.label_remap, ("frequency", "none"))
  if d.image_size < 1 or d.eval_resize < d.image_size:
    raise ConfigError(f"config.data needs image_size >= 1 and eval_resize >= image_size, got {d.image_size} and "
                      f"{d.eval_resize}")
  if d.color_jitter < 0:
    raise ConfigError(f"config.data.color_jitter = {d.color_jitter} must be >= 0 (0 = off)")
  if d.val_list and d.name not in ("imagenet_lt", "imagenet_lt_tfds"):
    raise ConfigError(f"config.data.val_list: only ImageNet-LT has a separate validation list, not '{d.name}'")


def _get(cfg, key, default):
  v = getattr(cfg, key, default)
  return default if v is None else v


def load(data_cfg, keep_unused: bool = False) -> Dataset:
  """Loads `data_cfg.name` and selects its long-tailed training subset (LDAM-DRW `imbalance_cifar.py`;
  imbalanced-semi-self's SVHN-LT).

  `data_cfg` fields: name, data_dir (TFDS data dir; '' or None = TFDS default), imb_type ('exp'|'step'|'none'),
  imb_factor (ρ), rand_number (selection seed, default 0), val_per_class (default 0 = no validation split),
  count_shuffle_seed (default −1; >= 0: the class-count list is permuted by Python's `random.Random(seed).shuffle`
  before the selection, RECORDS `--hierarchical`, RECORDS `utils/imbalance_cifar.py`), mean / std (() = the source's
  statistics).
  With val_per_class > 0, `val` is a balanced hold-out drawn (seed rand_number + 1) from the train-pool images the
  long-tailed subset did not take, so the training subset stays exactly the official one. That needs unused images
  in every class: digits and SVHN have them; CIFAR does not (its head class keeps all N = len/C images), so there
  a validation split is a ValueError.

  `data_cfg.unlabeled` (optional; active when its `pseudo_labels` is set): the semi-supervised D_U of
  imbalanced-semi-self `train_semi.py` is
  drawn from the pool, continuing the selection's legacy stream, and appended to `train` with its pseudo labels
  (`ltjax.data.unlabeled.merge`); `Dataset.unlabeled` then describes what was added. `keep_unused` (or the pool
  'unused') also keeps `Dataset.unused`: the training images that neither the subset nor the hold-out took.
  """
  name = data_cfg.name
  load_source = loader_for(name)
  imbalance.check_imb_factor(data_cfg.imb_factor)  # before any (slow) loading
  rand_number = int(_get(data_cfg, "rand_number", 0))
  val_per_class = int(_get(data_cfg, "val_per_class", 0))
  semi = _get(data_cfg, "unlabeled", None)
  if semi is not None and _get(semi, "pseudo_labels", ""):
    unlabeled.check_files(semi)  # before the (slow) labeled data
  raw = load_source(data_cfg)
  if isinstance(raw, Dataset):  # large-scale: the split files define the long tail
    return raw
  if raw.natural and data_cfg.imb_type == "none":  # the data's own imbalance: every training image
    counts = np.bincount(raw.train.labels, minlength=raw.num_classes)[list(raw.class_order)].astype(np.int64)
  else:
    counts = imbalance.class_counts(raw.n_full, raw.num_classes, data_cfg.imb_type, data_cfg.imb_factor)
  shuffle_seed = int(_get(data_cfg, "count_shuffle_seed", -1))
  if shuffle_seed >= 0:
    counts = imbalance.shuffle_counts(counts, shuffle_seed)
  if (counts == 0).any():
    empty = imbalance.label_counts(counts, raw.class_order)
    raise ConfigError(f"{name}: imb_type={data_cfg.imb_type!r}, imb_factor={data_cfg.imb_factor} leaves class(es) "
                     f"{np.nonzero(empty == 0)[0].tolist()} without training images (N = {raw.n_full}); "
                     f"raise imb_factor")
  # One legacy stream: the labeled subset, then D_U (imbalanced-semi-self `train_semi.py`).
  rng = np.random.RandomState(rand_number)
  selected = imbalance.select_long_tailed(raw.train.labels, counts, class_order=raw.class_order, rng=rng)
  val = raw.val
  if val is not None and val_per_class > 0:
    raise ConfigError(f"{name}: the data has its own validation split (val/), so config.data.val_per_class must be 0")
  if val_per_class > 0:
    rest = imbalance.remaining_indices(len(raw.train), selected)
    try:
      held = imbalance.balanced_holdout(raw.train.labels, rest, val_per_class, rand_number + VAL_SEED_OFFSET,
                                        raw.num_classes)
    except ValueError as e:
      raise ConfigError(
          f"{name}: {e}. The hold-out can only use training images the long-tailed subset leaves unused; where the "
          f"head class keeps all its images (CIFAR: N = len/C) there are none, so use config.data.val_per_class = 0 "
          f"(the official code selects on the test set).") from None
    val = raw.train.take(held)
  train = raw.train.take(selected)
  unused = None
  if keep_unused or (semi is not None and _get(semi, "pool", "") == unlabeled.UNUSED):
    taken = selected if val is None or val_per_class == 0 else np.concatenate([selected, held])
    unused = raw.train.take(imbalance.remaining_indices(len(raw.train), taken))
  info = None
  if semi is not None and _get(semi, "pseudo_labels", ""):
    train, info = unlabeled.merge(train, counts, raw.class_order, raw.num_classes, semi,
                                  _get(data_cfg, "data_dir", "") or None, rng, unused=unused)
  own_mean, own_std = (raw.mean, raw.std) if raw.mean is not None else pixel_statistics(train.images)
  mean, std = tuple(_get(data_cfg, "mean", ())) or own_mean, tuple(_get(data_cfg, "std", ())) or own_std
  channels = raw.train.images.shape[-1]
  if len(mean) != channels or len(std) != channels:
    raise ConfigError(f"{name}: data.mean {mean} / data.std {std} need one value per channel ({channels})")
  return Dataset(name, raw.num_classes, train, raw.test, val, tuple(mean), tuple(std),
                 raw.crop_padding, raw.flip, unlabeled=info, selection_rng=rng, unused=unused)
