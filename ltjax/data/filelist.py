"""Split files (`relative/path label` per line, the official split files) and the frequency-sorted label remapping.

Everything here is plain Python/numpy (no TensorFlow) and fails early with the file and line at fault.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ltjax.errors import SplitFileError  # noqa: F401 (re-exported)


def read_split_file(path: str, num_classes: Optional[int] = None) -> Tuple[List[str], np.ndarray]:
  """Parses `relative/path label` lines → (relative paths, int64 labels [N]), in file order.

  Blank lines are skipped; the path is everything before the last run of whitespace (paths with spaces work).
  A line without a label, a non-integer label, a label outside [0, num_classes) or an absolute path is a
  SplitFileError naming `path:line`.
  """
  if not os.path.isfile(path):
    raise SplitFileError(f"split file {path} does not exist")
  rel, labels = [], []
  with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
      line = line.strip()
      if not line:
        continue
      parts = line.rsplit(None, 1)
      if len(parts) != 2:
        raise SplitFileError(f"{path}:{n}: expected 'relative/path label', got {line[:120]!r}")
      p, lab = parts
      try:
        y = int(lab)
      except ValueError:
        raise SplitFileError(f"{path}:{n}: label {lab!r} is not an integer (line {line[:120]!r})") from None
      if y < 0 or (num_classes is not None and y >= num_classes):
        raise SplitFileError(f"{path}:{n}: label {y} outside [0, {num_classes}) (line {line[:120]!r})")
      if os.path.isabs(p):
        raise SplitFileError(f"{path}:{n}: path {p!r} is absolute; split files list paths relative to the data "
                             "root (config.data.root)")
      rel.append(p)
      labels.append(y)
  if not rel:
    raise SplitFileError(f"split file {path} lists no images")
  return rel, np.asarray(labels, np.int64)


def missing_files(root: str, rel_paths: Sequence[str]) -> List[str]:
  """The listed paths that do not exist under `root`, in list order. One directory listing per directory (fast
  for hundreds of thousands of files: ImageNet-LT's 115.8k files take about one `listdir` per class)."""
  by_dir: Dict[str, set] = {}
  missing = []
  for p in rel_paths:
    d, name = os.path.split(os.path.join(root, p))
    names = by_dir.get(d)
    if names is None:
      try:
        names = set(os.listdir(d))
      except (FileNotFoundError, NotADirectoryError):
        names = set()
      by_dir[d] = names
    if name not in names:
      missing.append(p)
  return missing


def check_files(root: str, rel_paths: Sequence[str], list_path: str) -> None:
  """SplitFileError when any listed image is missing, naming the first few, the count and the list."""
  if not os.path.isdir(root):
    raise SplitFileError(f"data root {root!r} (config.data.root) does not exist")
  miss = missing_files(root, rel_paths)
  if miss:
    shown = ", ".join(miss[:5])
    raise SplitFileError(f"{len(miss)} of {len(rel_paths)} images listed in {list_path} are missing under the data "
                         f"root {root} (first: {shown}). Check config.data.root (the paths in the list are relative "
                         "to it) and that the image tree is complete.")


def frequency_remap(train_labels: np.ndarray, num_classes: int) -> np.ndarray:
  """ARB/MiSLAS's re-indexing (the official split files): table [C] with table[c] = rank of c in argsort(−count), so new
  label 0
  is the most frequent class. Ties are broken by the original label (a stable sort; upstream's numpy default sort
  leaves them unspecified, which only changes which output unit a tied class gets, never its group)."""
  counts = np.bincount(np.asarray(train_labels), minlength=num_classes)
  order = np.argsort(-counts, kind="stable")
  table = np.empty(num_classes, np.int64)
  table[order] = np.arange(num_classes)
  return table


def write_split_file(path: str, rel_paths: Sequence[str], labels: Sequence[int]) -> None:
  """Writes `relative/path label` lines (the format `read_split_file` reads)."""
  with open(path, "w", encoding="utf-8") as f:
    for p, y in zip(rel_paths, labels):
      f.write(f"{p} {int(y)}\n")


def counts_summary(labels: np.ndarray, num_classes: int) -> str:
  c = np.bincount(labels, minlength=num_classes)
  return f"{len(labels)} images, per class {c.max()}…{c.min()}"

