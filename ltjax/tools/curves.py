"""Learning curves and comparison bars: what `metrics.jsonl` holds over a run, drawn for `ltjax.tools.report` and
`ltjax.tools.table`.

`read_metrics(workdir)` groups the run's JSON lines by split ('train', 'test', 'val', 'diagnostics'), each sorted by
step; a step written twice (a resumed run re-logs the steps after its last checkpoint) keeps its last line. The
x axis of every curve is the epoch: eval lines sit at `epoch + 1` (written after the epoch), train lines at
`step / steps_per_epoch`, with steps_per_epoch measured from the eval lines (their step is the epoch's last) or, in a
run without evaluation, from the train lines.
"""

from __future__ import annotations

import json
import math
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

GROUPS = (("many_thr", "many"), ("medium_thr", "medium"), ("few_thr", "few"))
EVAL_SPLITS = ("test", "val")


def read_metrics(workdir: str) -> Dict[str, List[dict]]:
  """{split: [line, ...]} from WORKDIR/metrics.jsonl, sorted by step, one line per step (the last written)."""
  path = os.path.join(workdir, "metrics.jsonl")
  by_split: Dict[str, Dict[int, dict]] = {}
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    for line in f:
      line = line.strip()
      if not line:
        continue
      try:
        d = json.loads(line)
      except json.JSONDecodeError:  # a line cut by a kill -9 mid-write
        continue
      by_split.setdefault(d.get("split", "train"), {})[int(d["step"])] = d
  return {s: [v[k] for k in sorted(v)] for s, v in by_split.items()}


def _number(v) -> float:
  """A logged scalar as float: non-finite values are logged as strings ('nan', 'inf'); None is NaN."""
  if v is None:
    return math.nan
  return float(v)


def steps_per_epoch(m: Dict[str, List[dict]]) -> Optional[float]:
  for split in EVAL_SPLITS:
    ev = m.get(split)
    if ev:
      return float(np.median([d["step"] / (d["epoch"] + 1) for d in ev]))
  tr = m.get("train")
  if tr:
    last = max(tr, key=lambda d: d["step"])
    return last["step"] / (last["epoch"] + 1)
  return None


def series(m: Dict[str, List[dict]], split: str, key: str, scale: float = 1.0):
  """(epochs, values) of one logged quantity; empty arrays when the split or key is absent."""
  lines = [d for d in m.get(split, []) if key in d]
  if not lines:
    return np.zeros(0), np.zeros(0)
  if split == "train":
    spe = steps_per_epoch(m) or 1.0
    x = np.asarray([d["step"] / spe for d in lines])
  else:
    x = np.asarray([d["epoch"] + 1 for d in lines], float)
  return x, np.asarray([_number(d[key]) * scale for d in lines])


def plot_learning_curves(fig, m: Dict[str, List[dict]], title: str = "") -> None:
  """Four panels on `fig`: train loss, learning rate, top-1 (train accuracy and each evaluated split), and the
  many/medium/few accuracy (training count > 100 / 20–100 / < 20) of the evaluated splits, against the epoch."""
  axes = fig.subplots(2, 2).ravel()
  x, y = series(m, "train", "loss")
  axes[0].plot(x, y, lw=1)
  if len(y) and np.nanmin(y) > 0:
    axes[0].set_yscale("log")
  axes[0].set_title("train loss")
  x, y = series(m, "train", "lr")
  axes[1].plot(x, y, lw=1)
  axes[1].set_title("learning rate")
  x, y = series(m, "train", "accuracy", 100.0)
  if len(y):
    axes[2].plot(x, y, lw=1, label="train (batch, augmented)")
  any_eval = False
  for split, style in zip(EVAL_SPLITS, ("-o", "-s")):
    x, y = series(m, split, "top1")
    if len(y):
      any_eval = True
      axes[2].plot(x, y, style, ms=3, lw=1, label=split)
      for (key, name), color in zip(GROUPS, ("C0", "C1", "C3")):
        gx, gy = series(m, split, key)
        if len(gy) and not np.all(np.isnan(gy)):
          axes[3].plot(gx, gy, style, color=color, ms=3, lw=1, label=f"{split} {name}")
  axes[2].set_title("top-1 (%)")
  axes[3].set_title("many / medium / few (%)")
  if not any_eval:
    axes[3].text(0.5, 0.5, "no evaluation in this run", ha="center", va="center", transform=axes[3].transAxes)
  for ax in axes:
    ax.set_xlabel("epoch")
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7)
  if title:
    fig.suptitle(title)


def plot_curves_comparison(fig, runs: Sequence[tuple]) -> None:
  """Two panels: the first evaluated split's top-1 and the train loss of several runs, overlaid. `runs` holds
  (name, metrics) pairs."""
  ax_acc, ax_loss = fig.subplots(1, 2)
  for name, m in runs:
    for split in EVAL_SPLITS:
      x, y = series(m, split, "top1")
      if len(y):
        ax_acc.plot(x, y, lw=1, label=f"{name} ({split})")
        break
    x, y = series(m, "train", "loss")
    ax_loss.plot(x, y, lw=1, label=name)
  ax_acc.set_title("top-1 (%)")
  ax_loss.set_title("train loss")
  ax_loss.set_yscale("log")
  for ax in (ax_acc, ax_loss):
    ax.set_xlabel("epoch")
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7)


def plot_group_bars(ax, names: Sequence[str], values: Dict[str, Sequence[Optional[float]]],
                    errors: Optional[Dict[str, Sequence[Optional[float]]]] = None,
                    published: Optional[Sequence[Optional[float]]] = None) -> None:
  """Grouped bars: one group per run (or table row), one bar per metric in `values` ({label: per-name values}, None =
  not measured, drawn as no bar), optional error bars, and a black marker at each name's published top-1."""
  k = len(values)
  width = 0.8 / max(k, 1)
  x = np.arange(len(names))
  for i, (label, vals) in enumerate(values.items()):
    v = np.asarray([np.nan if a is None else a for a in vals], float)
    err = None
    if errors is not None and label in errors:
      err = np.asarray([0 if a is None else a for a in errors[label]], float)
    ax.bar(x + (i - (k - 1) / 2) * width, v, width, yerr=err, label=label, capsize=2)
  if published is not None and any(p is not None for p in published):
    px = [xi - (k - 1) / 2 * width for xi, p in zip(x, published) if p is not None]
    ax.plot(px, [p for p in published if p is not None], "k_", ms=14, mew=2, label="published top-1")
  ax.set_xticks(x)
  ax.set_xticklabels(names, rotation=30, ha="right")
  ax.set_ylabel("accuracy (%)")
  ax.set_ylim(0, 105)
  ax.legend(fontsize=7, ncol=min(k + 1, 5))
