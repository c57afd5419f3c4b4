"""The partial-label PASCAL VOC 2007 of RECORDS (`utils/voc.py`, RECORDS' transforms): a reader.

Layout under `root` (upstream `./data/VOC2017/PLL/`; the archive is on Google Drive, linked from the RECORDS README):
  train_var/images_PLL.csv   columns `name`, `label`, `label set`  (candidate class names, space separated)
  train_var/images/<name>
  test/images_uniform.csv    columns `name`, `label`
  test/images/<name>
20 classes, indexed alphabetically (VOC_CLASSES). Each image is zero-padded symmetrically to a square (the odd pixel
at the bottom / right) and resized to 128×128 (bilinear, PIL); normalise with VOC_MEAN / VOC_STD.

Every malformed row is a `VOCFormatError` naming the file and the line: a missing column, an unknown class name, an
empty candidate set, or (the protocol of RECORDS' pipeline) a candidate set without the true label.
Upstream `train.py` cannot select VOC and always builds an un-pretrained ResNet-18 (RECORDS' transforms, the RECORDS
code's known issues), so no config
trains on it; the reader gives arrays for one's own experiments.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from typing import Optional

import numpy as np

from ltjax.errors import VOCFormatError  # noqa: F401 (re-exported)

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
VOC_MEAN = (0.2554, 0.2243, 0.2070)
VOC_STD = (0.2414, 0.2207, 0.2104)
TRAIN_CSV = os.path.join("train_var", "images_PLL.csv")
TEST_CSV = os.path.join("test", "images_uniform.csv")
SIZE = 128


@dataclasses.dataclass
class VOCTable:
  names: list  # file names
  labels: np.ndarray  # int32 [N]
  candidates: Optional[np.ndarray]  # float32 [N, 20] {0,1} (train), None (test)


def parse_csv(path: str, with_candidates: bool) -> VOCTable:
  """Parse one CSV (header line 1). Raises VOCFormatError naming `path:line`."""
  index = {c: i for i, c in enumerate(VOC_CLASSES)}
  if not os.path.isfile(path):
    raise FileNotFoundError(f"VOC partial-label file {path} does not exist (expected the RECORDS layout: "
                            f"{TRAIN_CSV} and {TEST_CSV} under the data root)")
  need = ["name", "label"] + (["label set"] if with_candidates else [])
  names, labels, cands = [], [], []
  with open(path, newline="") as f:
    reader = csv.reader(f)
    try:
      header = [h.strip() for h in next(reader)]
    except StopIteration:
      raise VOCFormatError(f"{path}:1: empty file (expected a header with columns {need})") from None
    missing = [c for c in need if c not in header]
    if missing:
      raise VOCFormatError(f"{path}:1: header {header} lacks column(s) {missing}")
    col = {c: header.index(c) for c in need}
    for row in reader:
      line = reader.line_num
      if not row or all(not x.strip() for x in row):
        continue
      if len(row) < len(header):
        raise VOCFormatError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
      name, label = row[col["name"]].strip(), row[col["label"]].strip()
      if not name:
        raise VOCFormatError(f"{path}:{line}: empty image name")
      if label not in index:
        raise VOCFormatError(f"{path}:{line}: unknown class '{label}' (classes: {', '.join(VOC_CLASSES)})")
      names.append(name)
      labels.append(index[label])
      if with_candidates:
        members = row[col["label set"]].split()
        if not members:
          raise VOCFormatError(f"{path}:{line}: empty candidate label set")
        bad = [m for m in members if m not in index]
        if bad:
          raise VOCFormatError(f"{path}:{line}: unknown class(es) {bad} in the label set")
        if label not in members:
          raise VOCFormatError(f"{path}:{line}: the label set {members} excludes the true label '{label}'")
        s = np.zeros(len(VOC_CLASSES), np.float32)
        s[[index[m] for m in members]] = 1.0
        cands.append(s)
  if not names:
    raise VOCFormatError(f"{path}: no examples after the header")
  return VOCTable(names, np.asarray(labels, np.int32), np.stack(cands) if with_candidates else None)


def pad_to_square(image: np.ndarray) -> np.ndarray:
  """uint8 [H, W, C] → [S, S, C], S = max(H, W), zero padding split evenly, the odd pixel at the bottom / right."""
  h, w = image.shape[:2]
  s = max(h, w)
  top, left = (s - h) // 2, (s - w) // 2
  return np.pad(image, ((top, s - h - top), (left, s - w - left), (0, 0)))


def load_image(path: str, size: int = SIZE) -> np.ndarray:
  from PIL import Image
  with Image.open(path) as im:
    x = np.asarray(im.convert("RGB"))
  return np.asarray(Image.fromarray(pad_to_square(x)).resize((size, size), Image.BILINEAR), np.uint8)


def load(root: str, split: str = "train", size: int = SIZE, images: bool = True):
  """(images uint8 [N, size, size, 3] or None, VOCTable) for split 'train' or 'test' under `root`."""
  if split not in ("train", "test"):
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")
  csv_path = os.path.join(root, TRAIN_CSV if split == "train" else TEST_CSV)
  table = parse_csv(csv_path, with_candidates=split == "train")
  if not images:
    return None, table
  folder = os.path.join(os.path.dirname(csv_path), "images")
  out = []
  for name in table.names:
    p = os.path.join(folder, name)
    if not os.path.isfile(p):
      raise FileNotFoundError(f"{csv_path}: image '{name}' listed there is not in {folder}")
    out.append(load_image(p, size))
  return np.stack(out), table
