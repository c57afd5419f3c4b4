"""Unlabeled pools, pseudo-label files and the D_U@5x training set of semi-supervised learning (imbalanced-semi-self
`train_semi.py`: `gen_pseudolabels.py` + `train_semi.py`). Pure numpy (TensorFlow only for the TFDS pool).

Pools (`config.data.unlabeled.pool`, `python -m ltjax.tools.pseudolabel --pool`), each a uint8 [N, H, W, C] array plus,
when the pool has them, its "truth" labels — used only to choose how many images of each class enter D_U, never
trained on:

| pool                        | images                                        | truth labels                          |
|-----------------------------|-----------------------------------------------|---------------------------------------|
| `PATH.pickle` / `PATH.pkl`  | TinyImages selection (`ti_80M_selected.pickle` of semisup-adv): a dict with `data`
N×32×32×3 uint8 | `extrapolated_targets` (the data-sourcing model's class) |
| `svhn_extra`                | TFDS `svhn_cropped` split `extra` (531,131 images) in `.mat` order, from `data.data_dir`
| the real labels (digit 0 = label 0) |
| `unused`                    | the labeled dataset's own training images that the long-tailed subset (and the validation
hold-out) left out: e.g. the embedded digits' 912 at ρ = 0.1 | their real labels |
| `PATH.npy`                  | the array itself, [N,H,W,C] (or [N,H,W]: one channel) uint8 | none
|
| `PATH.npz`                  | key `images` (uint8 [N,H,W,C] or [N,H,W])    | key `labels` when present             |
| `DIR/` (a directory)        | every .png/.jpg/.jpeg/.bmp/.gif below it, sorted by relative path, all of one size | the
first-level folder name when every image sits in a folder named by an integer label (`DIR/3/x.png`) |

Pseudo-label file (written by `ltjax.tools.pseudolabel`, `.npz`): `pseudo_labels` int64 [N] (arg-max of the base model,
hard, no threshold — imbalanced-semi-self `train_semi.py`), `confidence` float32 [N] (max softmax probability, for
inspection only),
`num_classes`, and the pool's fingerprint `pool_size`, `pool_image_shape` [3], `pool_sha256` (of the image bytes in
pool order), `ground_truth` when the pool has truth labels, and `prediction_model` (JSON: run directory, checkpoint,
step, model, dataset). The official pickles (`pseudo_labeled_cifar.pickle`: a dict whose `extrapolated_targets` are
the predictions) are read too; they carry no fingerprint, so only their length is checked against the pool.

D_U@5x (`select`): with position-indexed labeled counts n_k (LDAM-DRW `imbalance_cifar.py`; imbalanced-semi-self's
SVHN-LT), `imbalance.unlabeled_counts` gives u_k
(T = 5·Σn, base = ⌊T/C⌋, raw_k = ⌊base·ρ_U^{k/(C−1)}⌋, u_k = ⌊raw_k·T/Σraw⌋). Then, continuing the *same* legacy
`RandomState(rand_number)` stream right after the labeled selection, for each class of the class order (SVHN:
[1..9, 0]) the pool indices whose truth label is that class (ascending) are shuffled and the first u_k kept. Those
images join the labeled ones with their *pseudo* labels as targets; the class counts the losses see (LDAM margins,
DRW/reweight weights) are labeled + pseudo-label counts, and training is the ordinary supervised run on the merged
set (uniform batches mixing both in proportion to their sizes, no unlabeled weight, no consistency loss).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pickle
from typing import Optional, Sequence, Tuple

import numpy as np

from ltjax.data import imbalance, tfds_data
from ltjax.data.dataset import Split
from ltjax.errors import PoolError  # noqa: F401 (re-exported)
from ltjax.errors import DataNotFoundError

log = logging.getLogger("ltjax")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SELECT_BY = ("truth", "pseudo", "all")
SVHN_EXTRA = "svhn_extra"
UNUSED = "unused"


@dataclasses.dataclass
class Pool:
  name: str  # the spec it was loaded from
  images: np.ndarray  # uint8 [N, H, W, C]
  truth: Optional[np.ndarray]  # int64 [N] or None

  def __len__(self) -> int:
    return len(self.images)

  @property
  def image_shape(self) -> Tuple[int, int, int]:
    return tuple(int(x) for x in self.images.shape[1:])

  def fingerprint(self) -> str:
    return fingerprint(self.images)


@dataclasses.dataclass
class PseudoLabels:
  path: str
  labels: np.ndarray  # int64 [N]
  num_classes: Optional[int]
  pool_size: int
  pool_image_shape: Optional[Tuple[int, ...]]
  pool_sha256: Optional[str]
  confidence: Optional[np.ndarray] = None
  ground_truth: Optional[np.ndarray] = None
  prediction_model: Optional[dict] = None


@dataclasses.dataclass
class UnlabeledInfo:
  """What `select` added to the training split: rows [num_labeled:] of `Dataset.train` are pool images whose
  `indices` index the pool."""

  pool: str
  pseudo_label_file: str
  num_labeled: int
  pool_indices: np.ndarray  # int64 [M], in the order they were appended
  pseudo_labels: np.ndarray  # int64 [M], the training targets
  truth: Optional[np.ndarray]  # int64 [M] (pool truth of the added images) or None
  requested: Optional[np.ndarray]  # label-indexed u_c asked for (None for select_by='all')

  def pseudo_label_accuracy(self) -> Optional[float]:
    """% of the added images whose pseudo label equals the pool's truth label (None without truth)."""
    if self.truth is None or len(self.truth) == 0:
      return None
    return float(100.0 * np.mean(self.truth == self.pseudo_labels))


def fingerprint(images: np.ndarray) -> str:
  """sha256 of the pool's image bytes (C order) and shape."""
  images = np.ascontiguousarray(images)
  h = hashlib.sha256(repr((images.shape, str(images.dtype))).encode())
  h.update(memoryview(images.reshape(-1)))
  return h.hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# Pools


def _as_images(x, where: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4:
    raise PoolError(f"{where}: images must be [N, H, W, C] (or [N, H, W]), got shape {x.shape}")
  if x.dtype != np.uint8:
    raise PoolError(f"{where}: images must be uint8 pixels 0..255, got dtype {x.dtype}: convert them first "
                    "(e.g. np.clip(np.rint(x * 255), 0, 255).astype(np.uint8) for floats in [0, 1])")
  if len(x) == 0:
    raise PoolError(f"{where}: the pool holds no images")
  return x


def _as_labels(y, n: int, where: str) -> np.ndarray:
  y = np.asarray(y).reshape(-1)
  if len(y) != n:
    raise PoolError(f"{where}: {len(y)} labels for {n} images")
  if not np.issubdtype(y.dtype, np.integer):
    if not np.all(np.equal(np.mod(y, 1), 0)):
      raise PoolError(f"{where}: labels must be integers, got dtype {y.dtype}")
  return y.astype(np.int64)


def _tinyimages_pickle(path: str) -> Pool:
  with open(path, "rb") as f:
    d = pickle.load(f)
  if not isinstance(d, dict) or "data" not in d:
    keys = sorted(d) if isinstance(d, dict) else type(d).__name__
    raise PoolError(f"{path}: a TinyImages selection pickle is a dict with 'data' (N×32×32×3 uint8) and "
                    f"'extrapolated_targets'; found {keys}")
  images = _as_images(d["data"], path)
  truth = d.get("extrapolated_targets")
  return Pool(path, images, None if truth is None else _as_labels(truth, len(images), path))


def _npz(path: str) -> Pool:
  with np.load(path, allow_pickle=False) as z:
    if "images" not in z.files:
      raise PoolError(f"{path}: an .npz pool needs the key 'images' (and optionally 'labels'); found {z.files}")
    images = _as_images(z["images"], path)
    truth = _as_labels(z["labels"], len(images), path) if "labels" in z.files else None
  return Pool(path, images, truth)


def _folder(path: str) -> Pool:
  from PIL import Image  # installed with matplotlib (requirements.txt)
  files = []
  for root, dirs, names in os.walk(path):
    dirs.sort()
    files += [os.path.join(root, n) for n in sorted(names) if n.lower().endswith(IMAGE_SUFFIXES)]
  files.sort(key=lambda p: os.path.relpath(p, path))
  if not files:
    raise PoolError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) found in the folder or below it")
  images, shape = [], None
  for p in files:
    with Image.open(p) as im:
      a = np.asarray(im.convert("L" if im.mode in ("1", "L", "I;16", "I") else "RGB"))
    a = a[..., None] if a.ndim == 2 else a
    if shape is None:
      shape = a.shape
    elif a.shape != shape:
      raise PoolError(f"{path}: images differ in size ({os.path.relpath(files[0], path)} is {shape}, "
                      f"{os.path.relpath(p, path)} is {a.shape}): resize them to the training image size first")
    images.append(a)
  rel = [os.path.relpath(p, path).split(os.sep) for p in files]
  truth = None
  if all(len(r) == 2 and r[0].isdigit() for r in rel):
    truth = np.asarray([int(r[0]) for r in rel], np.int64)
  return Pool(path, np.stack(images).astype(np.uint8), truth)


def _svhn_extra(data_dir: Optional[str]) -> Pool:
  split = tfds_data.load_splits(tfds_data.TFDS_NAMES["svhn"], data_dir or None, ("extra",), "label")["extra"]
  return Pool(SVHN_EXTRA, split.images, split.labels.astype(np.int64))


def check_files(cfg) -> None:
  """DataNotFoundError, in milliseconds, when the pool or pseudo-label file of `config.data.unlabeled` is missing
  (checked before the labeled dataset is loaded)."""
  if cfg.pool and cfg.pool not in (SVHN_EXTRA, UNUSED) and not os.path.exists(cfg.pool):
    load_pool(cfg.pool)  # raises with the message
  if cfg.pseudo_labels and not os.path.exists(cfg.pseudo_labels):
    load_pseudo_labels(cfg.pseudo_labels)


def load_pool(spec: str, data_dir: Optional[str] = None, unused: Optional[Split] = None) -> Pool:
  """Loads an unlabeled pool (see the module docstring for the formats). `unused` is the labeled dataset's
  `Dataset.unused` split, the pool 'unused'. Raises PoolError / DataNotFoundError."""
  if not spec:
    raise PoolError("no unlabeled pool given: set config.data.unlabeled.pool (or --pool) to a TinyImages "
                    "selection pickle, 'svhn_extra', 'unused', an .npy/.npz file or an image folder")
  if spec == SVHN_EXTRA:
    return _svhn_extra(data_dir)
  if spec == UNUSED:
    if unused is None or unused.images is None:
      raise PoolError("the pool 'unused' is the training images an in-memory dataset's long-tailed subset leaves "
                      "out; this dataset has none to give (large-scale datasets are defined by their split files)")
    if len(unused) == 0:
      raise PoolError("the pool 'unused' is empty: the long-tailed subset took every training image")
    return Pool(UNUSED, unused.images, unused.labels.astype(np.int64))
  if not os.path.exists(spec):
    raise DataNotFoundError(f"unlabeled pool '{spec}' does not exist (give a TinyImages selection pickle such as "
                            f"ti_80M_selected.pickle, '{SVHN_EXTRA}', an .npy/.npz file or an image folder)")
  if os.path.isdir(spec):
    return _folder(spec)
  low = spec.lower()
  if low.endswith((".pickle", ".pkl")):
    return _tinyimages_pickle(spec)
  if low.endswith(".npz"):
    return _npz(spec)
  if low.endswith(".npy"):
    return Pool(spec, _as_images(np.load(spec, allow_pickle=False), spec), None)
  raise PoolError(f"unlabeled pool '{spec}': unknown format (expected .pickle/.pkl, .npy, .npz, a folder or "
                  f"'{SVHN_EXTRA}')")


# ----------------------------------------------------------------------------------------------------------------
# Pseudo-label files


def save_pseudo_labels(path: str, pool: Pool, labels: np.ndarray, confidence: np.ndarray, num_classes: int,
                       prediction_model: dict, *, overwrite: bool = False) -> None:
  """Writes the pseudo-label file (format in the module docstring). Refuses to overwrite unless asked (as the
  official script)."""
  if not path.endswith(".npz"):
    raise PoolError(f"pseudo-label file '{path}' must end in .npz")
  if os.path.exists(path) and not overwrite:
    raise FileExistsError(f"{path} exists: choose another --out or pass --overwrite")
  labels = np.asarray(labels, np.int64)
  if len(labels) != len(pool):
    raise PoolError(f"{len(labels)} pseudo labels for a pool of {len(pool)} images")
  arrays = dict(pseudo_labels=labels, confidence=np.asarray(confidence, np.float32),
                num_classes=np.int64(num_classes), pool=np.str_(pool.name), pool_size=np.int64(len(pool)),
                pool_image_shape=np.asarray(pool.image_shape, np.int64), pool_sha256=np.str_(pool.fingerprint()),
                prediction_model=np.str_(json.dumps(prediction_model, sort_keys=True)))
  if pool.truth is not None:
    arrays["ground_truth"] = pool.truth
  d = os.path.dirname(os.path.abspath(path))
  os.makedirs(d, exist_ok=True)
  tmp = os.path.join(d, f".{os.path.basename(path)}.tmp.npz")
  np.savez(tmp, **arrays)
  os.replace(tmp, path)


def load_pseudo_labels(path: str) -> PseudoLabels:
  """Reads an ltjax pseudo-label .npz or an official pseudo-label pickle (`extrapolated_targets`)."""
  if not path:
    raise PoolError("no pseudo-label file given: set config.data.unlabeled.pseudo_labels to the file written by "
                    "`python -m ltjax.tools.pseudolabel --workdir BASE_RUN --pool POOL --out FILE`")
  if not os.path.exists(path):
    raise DataNotFoundError(f"pseudo-label file '{path}' does not exist: write it with `python -m ltjax.tools.pseudolabel "
                            f"--workdir BASE_RUN --pool POOL --out {path}`")
  if path.lower().endswith((".pickle", ".pkl")):
    with open(path, "rb") as f:
      d = pickle.load(f)
    if not isinstance(d, dict) or "extrapolated_targets" not in d:
      keys = sorted(d) if isinstance(d, dict) else type(d).__name__
      raise PoolError(f"{path}: an official pseudo-label pickle is a dict with 'extrapolated_targets'; found {keys}")
    y = np.asarray(d["extrapolated_targets"]).reshape(-1)
    gt = d.get("ground_truth")
    return PseudoLabels(path, _as_labels(y, len(y), path), None, len(y), None, None,
                        ground_truth=None if gt is None else _as_labels(gt, len(y), path))
  with np.load(path, allow_pickle=False) as z:
    missing = [k for k in ("pseudo_labels", "pool_size", "pool_sha256") if k not in z.files]
    if missing:
      raise PoolError(f"{path} is not an ltjax pseudo-label file (missing {missing}; found {z.files})")
    y = z["pseudo_labels"]
    return PseudoLabels(
        path, _as_labels(y, len(y), path), int(z["num_classes"]) if "num_classes" in z.files else None,
        int(z["pool_size"]),
        tuple(int(v) for v in z["pool_image_shape"]) if "pool_image_shape" in z.files else None,
        str(z["pool_sha256"]),
        confidence=z["confidence"] if "confidence" in z.files else None,
        ground_truth=z["ground_truth"].astype(np.int64) if "ground_truth" in z.files else None,
        prediction_model=json.loads(str(z["prediction_model"])) if "prediction_model" in z.files else None)


def check_match(pl: PseudoLabels, pool: Pool, num_classes: int) -> None:
  """PoolError unless the pseudo-label file was made for exactly this pool (count, image shape, content hash) and
  for `num_classes` classes."""
  hint = (f"regenerate it with `python -m ltjax.tools.pseudolabel --workdir BASE_RUN --pool {pool.name} --out FILE`, or "
          "point config.data.unlabeled.pool at the pool it was made for")
  if len(pl.labels) != len(pool) or pl.pool_size != len(pool):
    raise PoolError(f"pseudo-label file {pl.path} holds labels for {len(pl.labels)} images but the pool "
                    f"'{pool.name}' has {len(pool)}: {hint}")
  if pl.pool_image_shape is not None and tuple(pl.pool_image_shape) != pool.image_shape:
    raise PoolError(f"pseudo-label file {pl.path} was made for {tuple(pl.pool_image_shape)} images but the pool "
                    f"'{pool.name}' holds {pool.image_shape} images: {hint}")
  if pl.pool_sha256 is not None:
    got = pool.fingerprint()
    if got != pl.pool_sha256:
      raise PoolError(f"pseudo-label file {pl.path} was made for a different pool (image sha256 "
                      f"{pl.pool_sha256[:12]}…) than '{pool.name}' (sha256 {got[:12]}…; same size {len(pool)} but "
                      f"other images or another order): {hint}")
  if pl.num_classes is not None and pl.num_classes != num_classes:
    raise PoolError(f"pseudo-label file {pl.path} has labels of {pl.num_classes} classes but the dataset has "
                    f"{num_classes}: {hint}")
  bad = (pl.labels < 0) | (pl.labels >= num_classes)
  if bad.any():
    raise PoolError(f"pseudo-label file {pl.path} has labels outside [0, {num_classes}) (e.g. "
                    f"{int(pl.labels[bad][0])} at row {int(np.nonzero(bad)[0][0])})")


# ----------------------------------------------------------------------------------------------------------------
# D_U


def select(labeled_counts: Sequence[int], class_order: Sequence[int], selection_labels: Optional[np.ndarray],
           imb_factor_unlabel: float, rng: np.random.RandomState, *, multiplier: int = 5,
           allow_fewer: bool = False, pool_name: str = "pool") -> Tuple[np.ndarray, np.ndarray]:
  """(pool indices int64 [M], requested position-indexed counts u int64 [C]) of D_U (imbalanced-semi-self
  `train_semi.py`).

  `labeled_counts` are the position-indexed labeled counts n_k, `class_order` the dataset's class order,
  `selection_labels` the pool labels that choose the per-class counts (the truth labels; pseudo labels for a pool
  without them), `rng` the legacy stream right after the labeled selection. With `allow_fewer` a class with too few
  pool images contributes what it has (the official behaviour); otherwise that is a PoolError naming the class.
  """
  u = imbalance.unlabeled_counts(labeled_counts, imb_factor_unlabel, multiplier)
  labels = np.asarray(selection_labels, np.int64)
  have = np.asarray([int(np.sum(labels == c)) for c in class_order], np.int64)
  short = [(int(c), int(n), int(h)) for c, n, h in zip(class_order, u, have) if h < n]
  if short and not allow_fewer:
    desc = ", ".join(f"class {c}: {h} < {n}" for c, n, h in short)
    raise PoolError(f"the unlabeled pool '{pool_name}' has too few images for D_U@{multiplier}x with "
                    f"imb_factor_unlabel = {imb_factor_unlabel} ({desc}; requested per class in class order "
                    f"{list(class_order)}: {u.tolist()}). Use a larger pool, a smaller "
                    "config.data.unlabeled.multiplier, or config.data.unlabeled.allow_fewer=True to keep what there "
                    "is (as the official code silently does)")
  idx = imbalance.select_long_tailed(labels, u, class_order=class_order, allow_fewer=True, rng=rng)
  return idx, u


def merge(train, labeled_counts: Sequence[int], class_order: Sequence[int], num_classes: int, cfg,
          data_dir: Optional[str], rng: np.random.RandomState, unused: Optional[Split] = None):
  """(merged train Split, UnlabeledInfo): the labeled long-tailed split followed by D_U with its pseudo labels.

  `cfg` is `config.data.unlabeled` (pool, pseudo_labels, imb_factor, multiplier, select_by, allow_fewer); `rng` the
  legacy stream right after the labeled selection. Checks, before selecting anything, that the pool's images have
  the training images' shape and that the pseudo-label file belongs to the pool.
  """
  select_by = getattr(cfg, "select_by", "truth")
  if select_by not in SELECT_BY:
    raise PoolError(f"config.data.unlabeled.select_by = {select_by!r} is not one of {list(SELECT_BY)}")
  pool = load_pool(cfg.pool, data_dir, unused)
  if pool.image_shape != tuple(train.images.shape[1:]):
    raise PoolError(f"the unlabeled pool '{pool.name}' holds {pool.image_shape} images but the training images are "
                    f"{tuple(train.images.shape[1:])}: use a pool of the dataset's image size")
  pl = load_pseudo_labels(cfg.pseudo_labels)
  check_match(pl, pool, num_classes)
  requested = None
  if select_by == "all":
    idx = np.arange(len(pool), dtype=np.int64)
  else:
    if select_by == "truth" and pool.truth is None:
      raise PoolError(f"the unlabeled pool '{pool.name}' has no truth labels to choose D_U's per-class counts with "
                      "(imbalanced-semi-self `train_semi.py`): give a pool with labels (.npz 'labels', a TinyImages "
                      "pickle, 'svhn_extra', class folders), or set config.data.unlabeled.select_by='pseudo' "
                      "(counts by pseudo label) or 'all' (the whole pool)")
    sel = pool.truth if select_by == "truth" else pl.labels
    idx, u = select(labeled_counts, class_order, sel, float(cfg.imb_factor), rng,
                    multiplier=int(cfg.multiplier), allow_fewer=bool(cfg.allow_fewer), pool_name=pool.name)
    requested = imbalance.label_counts(u, class_order)
  pseudo = pl.labels[idx]
  merged = Split(np.concatenate([train.images, pool.images[idx]]),
                 np.concatenate([train.labels, pseudo.astype(np.int32)]),
                 np.concatenate([train.indices, idx]).astype(np.int64))
  info = UnlabeledInfo(pool.name, pl.path, len(train), idx, pseudo,
                       None if pool.truth is None else pool.truth[idx], requested)
  acc = info.pseudo_label_accuracy()
  log.info("D_U: %d pool images added to %d labeled (select_by=%s, requested %s); pseudo-label counts %s%s",
           len(idx), len(train), select_by, None if requested is None else requested.tolist(),
           np.bincount(pseudo, minlength=num_classes).tolist(),
           "" if acc is None else f"; pseudo-label accuracy against the pool's labels {acc:.2f}%")
  return merged, info
