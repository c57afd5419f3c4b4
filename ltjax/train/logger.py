"""Metrics output of a run: JSON lines (metrics.jsonl) and TensorBoard events (tb/). Process 0 writes; the others
are silent."""

from __future__ import annotations

import json
import math
import os
from typing import Dict

import jax


def _scalar(v):
  v = float(v)
  return v if math.isfinite(v) else str(v)


def drop_rows_after(path: str, step: int) -> int:
  """Rewrite the JSON-lines file `path` without the rows logged after `step` (and any line a kill cut short), so a
  run that resumes at `step` (after a crash, or falling back from a damaged checkpoint) logs each step once.
  Atomic (`write_text_atomic`). Returns how many lines were dropped (0 leaves the file untouched)."""
  if not os.path.exists(path):
    return 0
  keep, dropped = [], 0
  with open(path) as f:
    for line in f:
      try:
        row = json.loads(line)
        ok = line.endswith("\n") and int(row["step"]) <= step
      except (ValueError, KeyError, TypeError):
        ok = False
      if ok:
        keep.append(line)
      else:
        dropped += 1
  if dropped:
    write_text_atomic(path, "".join(keep))
  return dropped


class MetricWriter:
  """Appends one JSON line per (step, split) to WORKDIR/metrics.jsonl and the same scalars to TensorBoard.

  `resume_step`: the step the run starts from. Rows logged after it by an earlier process (steps that run redid
  before it died, or that a damaged checkpoint lost) are dropped first, so every step appears once. TensorBoard
  discards its own orphaned events when the step goes back (its default `purge_orphaned_data`)."""

  def __init__(self, workdir: str, resume_step: int = 0):
    self.enabled = jax.process_index() == 0
    self._tb = None
    if self.enabled:
      path = os.path.join(workdir, "metrics.jsonl")
      drop_rows_after(path, resume_step)
      self._file = open(path, "a")
      self._tb_dir = os.path.join(workdir, "tb")

  def write(self, step: int, split: str, values: Dict[str, float], **extra) -> None:
    if not self.enabled:
      return
    scalars = {k: _scalar(v) for k, v in values.items() if isinstance(v, (int, float)) or getattr(v, "ndim", 1) == 0}
    self._file.write(json.dumps(dict(step=step, split=split, **extra, **scalars)) + "\n")
    self._file.flush()
    if self._tb is None:
      from tensorboardX import SummaryWriter  # TensorBoard event files without TensorFlow's summary ops
      self._tb = SummaryWriter(self._tb_dir)
    for k, v in scalars.items():
      if isinstance(v, float):
        self._tb.add_scalar(f"{split}/{k}", v, global_step=step)
    self._tb.flush()

  def close(self):
    if self.enabled:
      self._file.close()
      if self._tb is not None:
        self._tb.close()


def write_text_atomic(path: str, text: str) -> None:
  """Write `text` to `path`.tmp and rename it over `path`, so readers never see a partial file."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def write_json_atomic(path: str, obj) -> None:
  """`obj` as indented JSON with sorted keys, written atomically (`write_text_atomic`)."""
  write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=True))
