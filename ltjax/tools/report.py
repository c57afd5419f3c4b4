"""Figures and tables for one run, or several side by side.

  python -m ltjax.tools.report runs/arb_c100                       # → runs/arb_c100/report/
  python -m ltjax.tools.report runs/ce runs/arb runs/ldam --out cmp  # comparison table + overlaid per-class accuracy

  python -m ltjax.tools.report runs/arb_c100 --curves-only         # learning curves only: no checkpoint, no JAX

One run: learning_curves.png (train loss, LR, top-1, many/medium/few against the epoch, from metrics.jsonl),
per_class_accuracy.png (accuracy against training count, log scale), confusion.png (classes ordered by training
frequency), reliability.png (with ECE), classifier_norms.png, geometry.png (cosines between class means and between
classifier vectors), gradient_components.png (attraction/repulsion, ARB `train_stage1.py`), results.md and
results.json. Several runs: comparison.md, comparison.json, comparison.png (top-1 and many/medium/few bars per run),
curves_comparison.png (top-1 and train loss overlaid) and per_class_comparison.png.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import List, Sequence

import numpy as np

from ltjax.tools import curves


def _plt():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def log_count_axis(ax):
  """A log x axis of class counts labelled in plain numbers (5, 10, 20, 50, 100, …), not powers of ten."""
  from matplotlib.ticker import FuncFormatter, LogLocator
  ax.set_xscale("log")
  plain = FuncFormatter(lambda v, _: f"{v:g}")
  ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
  ax.xaxis.set_major_formatter(plain)
  ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def plot_per_class_accuracy(ax, counts, per_class, label=None):
  acc = np.asarray([np.nan if a is None else a for a in per_class], float)
  ax.scatter(counts, acc, s=12, label=label, alpha=0.8)
  log_count_axis(ax)
  ax.set_xlabel("training images of the class (log)")
  ax.set_ylabel("test accuracy (%)")
  ax.set_ylim(-2, 102)


def plot_confusion(ax, conf, counts):
  order = np.argsort(-np.asarray(counts), kind="stable")
  c = conf[np.ix_(order, order)].astype(float)
  c = c / np.maximum(c.sum(1, keepdims=True), 1)
  im = ax.imshow(c, cmap="viridis", vmin=0, vmax=1)
  ax.set_xlabel("predicted class (by training frequency)")
  ax.set_ylabel("true class (by training frequency)")
  return im


def plot_reliability(ax, cal):
  n = len(cal["bin_acc"])
  centers = (np.arange(n) + 0.5) / n
  ax.bar(centers, np.asarray(cal["bin_acc"]), width=1 / n, edgecolor="k", alpha=0.7, label="accuracy")
  ax.plot([0, 1], [0, 1], "r--", label="perfect calibration")
  ax.set_xlabel("confidence")
  ax.set_ylabel("accuracy")
  ax.set_title(f"ECE {100 * cal['ece']:.2f}%  MCE {100 * cal['mce']:.2f}%")
  ax.legend(loc="upper left")


def write_learning_curves(workdir: str, out: str, title: str = "") -> str:
  """out/learning_curves.png from workdir/metrics.jsonl (needs no checkpoint, no JAX); returns the path."""
  plt = _plt()
  os.makedirs(out, exist_ok=True)
  m = curves.read_metrics(workdir)
  if not m:
    raise SystemExit(f"error: {os.path.join(workdir, 'metrics.jsonl')} is missing or empty: is {workdir} a run "
                     "directory that has logged a step?")
  fig = plt.figure(figsize=(9, 6.5))
  curves.plot_learning_curves(fig, m, title or os.path.basename(os.path.normpath(workdir)))
  fig.tight_layout()
  path = os.path.join(out, "learning_curves.png")
  fig.savefig(path, dpi=100); plt.close(fig)
  return path


def write_run_report(view, out: str, split: str = "test") -> dict:
  """All figures and tables of one run (an ltjax.tools.open_run.RunView) into `out`; returns the results dict."""
  plt = _plt()
  os.makedirs(out, exist_ok=True)
  if curves.read_metrics(view.workdir):
    write_learning_curves(view.workdir, out, view.name)
  counts = view.stats.counts
  ev = view.evaluate(split)
  geo = view.geometry(split)

  fig, ax = plt.subplots(figsize=(6, 4))
  plot_per_class_accuracy(ax, counts, ev["per_class"])
  ax.set_title(f"{view.name}: top-1 {ev['top1']:.2f}%")
  fig.tight_layout(); fig.savefig(os.path.join(out, "per_class_accuracy.png"), dpi=100); plt.close(fig)

  fig, ax = plt.subplots(figsize=(5.5, 5))
  fig.colorbar(plot_confusion(ax, view.confusion(split), counts), ax=ax)
  fig.tight_layout(); fig.savefig(os.path.join(out, "confusion.png"), dpi=100); plt.close(fig)

  fig, ax = plt.subplots(figsize=(5, 5))
  plot_reliability(ax, view.calibration(split))
  fig.tight_layout(); fig.savefig(os.path.join(out, "reliability.png"), dpi=100); plt.close(fig)

  fig, ax = plt.subplots(figsize=(6, 4))
  ax.scatter(counts, geo["classifier_norms"], s=12, label="‖w_c‖")
  ax.scatter(counts, geo["mean_norms"], s=12, label="‖μ_c − μ_G‖")
  log_count_axis(ax); ax.set_xlabel("training images of the class (log)"); ax.legend()
  fig.tight_layout(); fig.savefig(os.path.join(out, "classifier_norms.png"), dpi=100); plt.close(fig)

  fig, ax = plt.subplots(figsize=(6, 4))
  names = ["mean_cos_avg", "classifier_cos_avg", "etf_cos"]
  ax.bar(["class means", "classifier", "simplex ETF"], [geo[k] for k in names],
         yerr=[geo["mean_cos_std"], geo["classifier_cos_std"], 0])
  ax.set_ylabel("cosine between classes (mean ± std)")
  ax.set_title(f"NC1 {geo['nc1']:.3g}   NC3 {geo['nc3']:.3g}")
  fig.tight_layout(); fig.savefig(os.path.join(out, "geometry.png"), dpi=100); plt.close(fig)

  g = view.gradient_components(split)
  order = np.argsort(-counts, kind="stable")
  fig, ax = plt.subplots(figsize=(5.5, 5))
  im = ax.imshow(np.log10(g[np.ix_(order, order)] + 1e-8), cmap="magma")
  ax.set_xlabel("sample class j (by frequency)"); ax.set_ylabel("classifier row c (by frequency)")
  ax.set_title("log10 ‖Σ_{i:y_i=j} q_ic f_i‖\ndiagonal: attraction, off-diagonal: repulsion", fontsize=10)
  fig.colorbar(im, ax=ax)
  fig.tight_layout(); fig.savefig(os.path.join(out, "gradient_components.png"), dpi=100); plt.close(fig)

  scalars = {k: v for k, v in geo.items() if np.ndim(v) == 0}
  diag = np.diag(g)
  off = (g.sum(0) - diag) / max(len(diag) - 1, 1)
  res = {"run": view.name, "checkpoint": view.checkpoint, "step": view.step, "split": split, **ev,
         "geometry": scalars, "attraction_mean": float(diag.mean()), "repulsion_mean": float(off.mean())}
  with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(res, f, indent=1)
  with open(os.path.join(out, "results.md"), "w") as f:
    f.write(markdown_table([res]) + "\n\n")
    f.write("| geometry | value |\n|---|---|\n" + "".join(f"| {k} | {v:.4g} |\n" for k, v in scalars.items()))
  return res


COLUMNS = [("top1", "top-1"), ("top5", "top-5"), ("many_thr", "many"), ("medium_thr", "medium"),
           ("few_thr", "few"), ("many_idx", "many (idx)"), ("medium_idx", "med (idx)"), ("few_idx", "few (idx)"),
           ("ece", "ECE"), ("macro_f1", "macro F1")]


def markdown_table(rows: Sequence[dict]) -> str:
  cols = [(k, h) for k, h in COLUMNS if any(k in r for r in rows)]
  lines = ["| run | " + " | ".join(h for _, h in cols) + " |", "|---" * (len(cols) + 1) + "|"]
  for r in rows:
    lines.append(f"| {r['run']} | " + " | ".join(f"{r[k]:.2f}" if r.get(k) is not None else "–" for k, _ in cols) + " |")
  return "\n".join(lines)


def compare(views: List, out: str, split: str = "test") -> List[dict]:
  """Side by side: comparison.md/json and per_class_comparison.png for runs on the same data."""
  plt = _plt()
  os.makedirs(out, exist_ok=True)
  rows = [dict(run=v.name, **v.evaluate(split)) for v in views]
  with open(os.path.join(out, "comparison.json"), "w") as f:
    json.dump(rows, f, indent=1)
  with open(os.path.join(out, "comparison.md"), "w") as f:
    f.write(markdown_table(rows) + "\n")
  fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(rows) + 2), 4.5))
  groups = [("top1", "top-1")] + [(k, n) for k, n in curves.GROUPS]
  curves.plot_group_bars(ax, [r["run"] for r in rows], {n: [r.get(k) for r in rows] for k, n in groups})
  ax.set_title(f"{split} accuracy of each run")
  fig.tight_layout(); fig.savefig(os.path.join(out, "comparison.png"), dpi=100); plt.close(fig)
  fig = plt.figure(figsize=(10, 4))
  curves.plot_curves_comparison(fig, [(v.name, curves.read_metrics(v.workdir)) for v in views])
  fig.tight_layout(); fig.savefig(os.path.join(out, "curves_comparison.png"), dpi=100); plt.close(fig)
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for v, r in zip(views, rows):
    plot_per_class_accuracy(ax, v.stats.counts, r["per_class"], label=f"{v.name} ({r['top1']:.1f}%)")
  ax.legend()
  fig.tight_layout(); fig.savefig(os.path.join(out, "per_class_comparison.png"), dpi=100); plt.close(fig)
  return rows


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m ltjax.tools.report", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("workdirs", nargs="+", help="run directories")
  p.add_argument("--out", default=None, help="output folder (default: <workdir>/report, or ./comparison)")
  p.add_argument("--split", default="test")
  p.add_argument("--checkpoint", default="best", choices=("best", "last"))
  p.add_argument("--curves-only", action="store_true",
                 help="only learning_curves.png per run, from metrics.jsonl (a live run works: no checkpoint needed)")
  a = p.parse_args(argv)
  if a.curves_only:
    for w in a.workdirs:
      if not a.out:
        out = os.path.join(w, "report")
      else:
        out = a.out if len(a.workdirs) == 1 else os.path.join(a.out, os.path.basename(os.path.normpath(w)))
      print(f"written {write_learning_curves(w, out)}")
    return
  from ltjax.tools.open_run import open_run
  views = [open_run(w, a.checkpoint) for w in a.workdirs]
  if len(views) == 1:
    out = a.out or os.path.join(a.workdirs[0], "report")
    res = write_run_report(views[0], out, a.split)
    print(markdown_table([res]))
  else:
    out = a.out or "comparison"
    print(markdown_table(compare(views, out, a.split)))
  print(f"written to {out}")


if __name__ == "__main__":
  main()
