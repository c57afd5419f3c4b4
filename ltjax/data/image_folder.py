"""A user's image-folder tree, read into memory (`--config.data.name=image_folder --config.data.root=DIR`):

  DIR/train/<class>/*.png|jpg|jpeg|bmp|webp     the training pool, one folder per class
  DIR/test/<class>/…                            the test split (class folders: a subset of train's)
  DIR/val/<class>/…                             optional: a validation split (then `train.select_on = 'val'` works)

Classes are the train folders' names in sorted order, labels 0..C−1. Every image is decoded once with Pillow: a tree
of grayscale images (mode 'L') gives one channel, anything else is converted to RGB. All images must share one size,
or `data.resize = S` resizes each to S×S (bilinear). A malformed tree (a missing split folder, an empty class, an
unknown test class, an undecodable file, mixed sizes) is one error naming the path, before any training.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

import numpy as np

from ltjax.errors import ConfigError, DataNotFoundError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _class_dirs(split_dir: str) -> List[str]:
  return sorted(d for d in os.listdir(split_dir) if os.path.isdir(os.path.join(split_dir, d)))


def _files(class_dir: str) -> List[str]:
  return sorted(os.path.join(class_dir, f) for f in os.listdir(class_dir) if f.lower().endswith(EXTENSIONS))


def scan(root: str) -> Tuple[List[str], Dict[str, List[Tuple[str, int]]]]:
  """(class names, {split: [(path, label)]}) of the tree, checked (no image is decoded)."""
  if not root:
    raise ConfigError("config.data.name = 'image_folder' reads DIR/train/<class>/* and DIR/test/<class>/*: pass "
                      "--config.data.root=DIR")
  if not os.path.isdir(root):
    raise DataNotFoundError(f"--config.data.root={root}: no such directory (data.name='image_folder')")
  for split in ("train", "test"):
    if not os.path.isdir(os.path.join(root, split)):
      raise DataNotFoundError(f"{os.path.join(root, split)} is missing: an image-folder tree needs train/<class>/* "
                              "and test/<class>/* (and optionally val/<class>/*)")
  classes = _class_dirs(os.path.join(root, "train"))
  if not classes:
    raise DataNotFoundError(f"{os.path.join(root, 'train')} has no class folders (train/<class>/*.png|jpg)")
  index = {c: i for i, c in enumerate(classes)}
  out = {}
  for split in ("train", "test", "val"):
    d = os.path.join(root, split)
    if not os.path.isdir(d):
      continue
    items = []
    for c in _class_dirs(d):
      if c not in index:
        raise DataNotFoundError(f"{os.path.join(d, c)}: class '{c}' has no folder under {os.path.join(root, 'train')}"
                                f" (the classes are train's folders: {classes[:10]}{'…' if len(classes) > 10 else ''})")
      files = _files(os.path.join(d, c))
      if split == "train" and not files:
        raise DataNotFoundError(f"{os.path.join(d, c)} holds no images ({', '.join(EXTENSIONS)}): every training "
                                "class needs at least one")
      items += [(f, index[c]) for f in files]
    if not items:
      raise DataNotFoundError(f"{d} holds no images ({', '.join(EXTENSIONS)})")
    out[split] = items
  return classes, out


def _decode(path: str, gray: bool, resize: int) -> np.ndarray:
  from PIL import Image
  try:
    with Image.open(path) as im:
      im = im.convert("L" if gray else "RGB")
      if resize:
        im = im.resize((resize, resize), Image.BILINEAR)
      a = np.asarray(im, np.uint8)
  except Exception as e:  # truncated, not an image, unsupported
    raise DataNotFoundError(f"cannot decode image {path} ({type(e).__name__}: {e}): fix or remove the file") from None
  return a[..., None] if gray else a


def load_tree(root: str, resize: int = 0) -> Dict[str, np.ndarray]:
  """{'x_train', 'y_train', 'x_test', 'y_test'[, 'x_val', 'y_val']} as uint8 NHWC / int32 arrays, plus 'classes'
  (a numpy array of the class names)."""
  from PIL import Image
  classes, splits = scan(root)
  with Image.open(splits["train"][0][0]) as first:
    gray = first.mode in ("L", "1", "I;16")
  out: Dict[str, np.ndarray] = {"classes": np.asarray(classes)}
  shape: Optional[Tuple[int, ...]] = None
  for split, items in splits.items():
    images = []
    for path, _ in items:
      a = _decode(path, gray, resize)
      if shape is None:
        shape, first_path = a.shape, path
      elif a.shape != shape:
        raise DataNotFoundError(f"{path} is {a.shape[1]}×{a.shape[0]} but {first_path} is {shape[1]}×{shape[0]}: "
                                "the images of a tree must share one size, or pass --config.data.resize=S to resize "
                                "every image to S×S")
      images.append(a)
    out[f"x_{split}"] = np.stack(images)
    out[f"y_{split}"] = np.asarray([label for _, label in items], np.int32)
  return out
