"""Open a run directory in Python (a notebook, say) without writing any training code:

  from ltjax.tools.open_run import open_run
  r = open_run("runs/arb_cifar100")          # best checkpoint; checkpoint="last" for the newest
  r.stats.counts                              # training images per class
  out = r.outputs("test")                     # {'logits' [N,C], 'features' [N,D], 'labels' [N], 'index' [N]}
  r.evaluate("test")                          # top-1/5, per-class, many/medium/few, ECE/MCE, macro F1
  r.geometry("test")                          # neural-collapse quantities, classifier norms and angles
  r.gradient_components("test")               # ARB attraction/repulsion matrix G [C, C]

The run's own config (config.json) rebuilds the data, the model and the method, so what is evaluated is exactly
what was trained.
"""

from __future__ import annotations

import json
import os
from typing import Dict, Optional

import jax
import numpy as np

from ltjax import config as config_lib, diagnostics, metrics
from ltjax.train import run as run_lib
from ltjax.train.checkpoint import Checkpointer


class RunView:
  """A trained run: config, data, class statistics, model and restored state."""

  def __init__(self, workdir: str, checkpoint: str = "best"):
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
      raise FileNotFoundError(f"{workdir} is not an ltjax run directory (no config.json)")
    self.cfg = config_lib.load_stored(path)
    self.workdir = workdir
    self.run = run_lib.setup(self.cfg)
    template = run_lib.create_state(self.run, self.cfg.seed)
    ck = Checkpointer(workdir, self.cfg.train.keep_checkpoints)
    try:
      restored = ck.restore_best(template) if checkpoint == "best" else ck.restore_latest(template)
      if restored is None and checkpoint == "best":
        restored = ck.restore_latest(template)
    finally:
      ck.close()
    if restored is None:
      raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints")
    self.state, self.meta = restored
    self.checkpoint = checkpoint
    self._cache: Dict[str, dict] = {}
    results = os.path.join(workdir, "results.json")
    self.results = json.load(open(results)) if os.path.exists(results) else None

  @property
  def name(self) -> str:
    return os.path.basename(os.path.normpath(self.workdir))

  @property
  def stats(self):
    return self.run.stats

  @property
  def step(self) -> int:
    return int(jax.device_get(self.state.step))

  def classifier(self) -> np.ndarray:
    """Classifier weights W [D, C] (columns w_c)."""
    return np.asarray(self.state.params["fc"]["kernel"])

  def outputs(self, split: str = "test") -> dict:
    if split not in self._cache:
      self._cache[split] = self.run.predict(self.state, split, with_features=True)
    return self._cache[split]

  def evaluate(self, split: str = "test") -> dict:
    o = self.outputs(split)
    return metrics.evaluate(o["logits"], o["labels"], self.stats)

  def confusion(self, split: str = "test") -> np.ndarray:
    o = self.outputs(split)
    return metrics.confusion_matrix(o["logits"].argmax(1), o["labels"], self.stats.num_classes)

  def calibration(self, split: str = "test") -> dict:
    o = self.outputs(split)
    return metrics.calibration(o["logits"], o["labels"])

  def geometry(self, split: str = "test") -> dict:
    o = self.outputs(split)
    g = diagnostics.neural_collapse(o["features"], o["labels"], self.classifier(), self.stats.num_classes)
    return {k: np.asarray(v) if np.ndim(v) else float(v) for k, v in g.items()}

  def gradient_components(self, split: str = "test", counts: Optional[str] = None) -> np.ndarray:
    """G [C, C]; `counts`: None for the CE form (w ≡ 1), 'train' for ARB with the global training counts."""
    o = self.outputs(split)
    n = None if counts is None else self.stats.counts.astype(np.float32)
    return np.asarray(diagnostics.gradient_components(o["features"], o["logits"], o["labels"], n))


def open_run(workdir: str, checkpoint: str = "best") -> RunView:
  return RunView(workdir, checkpoint)
