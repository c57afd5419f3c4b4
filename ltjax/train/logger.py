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


class MetricWriter:

  def __init__(self, workdir: str):
    self.enabled = jax.process_index() == 0
    self._tb = None
    if self.enabled:
      self._file = open(os.path.join(workdir, "metrics.jsonl"), "a")
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


def write_json_atomic(path: str, obj) -> None:
  """Write JSON to a temporary file and rename it over `path`, so readers never see a partial file."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=1, sort_keys=True)
  os.replace(tmp, path)
