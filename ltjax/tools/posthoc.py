"""Post-hoc logit adjustment and τ-normalisation of a trained run, with a τ sweep (no retraining):

  python -m ltjax.tools.posthoc --workdir runs/c10_ce --adjust la                    # τ ∈ 0, 0.25, …, 2
  python -m ltjax.tools.posthoc --workdir runs/c10_ce --adjust tau_norm --taus 0:2:0.1
  python -m ltjax.tools.posthoc --workdir runs/records_corr --adjust la --taus 1    # CORR + Oracle-LA

`la`: z − τ·log π with π the run's training class distribution (Menon et al., ICLR 2021; for a partial-label run the
true labels' distribution: the "Oracle-LA" of the RECORDS paper). `tau_norm`: the classifier's columns divided by
‖w_c‖^τ, bias dropped (Kang et al., ICLR 2020). τ is chosen on `--select-on` (default: the run's validation split
when it has one, else the test split, as the official logit-adjustment code does) and reported on the test split.
Prints the sweep and the chosen τ's top-1 and many/medium/few, and writes `posthoc_<adjust>.json` in the run
directory (the run's checkpoints and results are not touched).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from ltjax import metrics, posthoc
from ltjax.errors import LtjaxError


def parse_taus(spec: str) -> np.ndarray:
  """'a:b:s' → a, a+s, …, b (inclusive, rounded to 6 decimals); 'x,y,z' → those values; 'x' → [x]."""
  try:
    if ":" in spec:
      a, b, s = (float(v) for v in spec.split(":"))
      if s <= 0 or b < a:
        raise ValueError
      return np.round(np.arange(a, b + s / 2, s), 6)
    return np.asarray([float(v) for v in spec.split(",")])
  except ValueError:
    raise SystemExit(f"error: --taus {spec!r}: give 'start:stop:step' (e.g. 0:2:0.25) or a list (e.g. 0.5,1)")


def run_posthoc(workdir: str, adjust: str, taus, select_on: str = "auto", checkpoint: str = "best") -> dict:
  """The sweep on a run directory (see the module docstring); returns the dict also written to
  posthoc_<adjust>.json."""
  from ltjax.tools.open_run import open_run
  r = open_run(workdir, checkpoint)
  if select_on == "auto":
    select_on = "val" if r.run.data.val is not None else "test"
  if select_on == "val" and r.run.data.val is None:
    raise LtjaxError(f"--select-on val: the run {workdir} has no validation split (config.data.val_per_class = 0)")
  counts = r.stats.counts
  params = r.state.params["fc"]

  def adjusted(split, tau):
    o = r.outputs(split)
    if adjust == "la":
      return posthoc.logit_adjust(o["logits"], counts, tau)
    return posthoc.tau_normalize(o["features"], params["kernel"], tau)

  def evaluate(logits, split):
    return metrics.evaluate(logits, r.outputs(split)["labels"], r.stats)

  if adjust == "tau_norm" and "bias" not in params:
    raise LtjaxError(f"--adjust tau_norm needs a linear classifier (z = f·W + b); the run {workdir} has a "
                     f"'{r.cfg.model.head}' head, whose columns are normalised already: use --adjust la")
  out = posthoc.sweep(adjusted, taus, evaluate, select_on, "test")
  out.update(workdir=workdir, adjust=adjust, checkpoint=checkpoint, step=r.step)
  with open(os.path.join(workdir, f"posthoc_{adjust}.json"), "w") as f:
    json.dump(out, f, indent=1)
  return out


def _group(m, k):
  v = m.get(k)
  return "–" if v is None else f"{v:.2f}"


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m ltjax.tools.posthoc", description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--adjust", choices=("la", "tau_norm"), required=True)
  p.add_argument("--taus", default="0:2:0.25")
  p.add_argument("--select-on", choices=("auto", "val", "test"), default="auto")
  p.add_argument("--checkpoint", choices=("best", "last"), default="best")
  a = p.parse_args(argv)
  if not os.path.exists(os.path.join(a.workdir, "config.json")):
    print(f"error: {a.workdir} is not an ltjax run directory (no config.json)", file=sys.stderr)
    return 2
  try:
    out = run_posthoc(a.workdir, a.adjust, parse_taus(a.taus), a.select_on, a.checkpoint)
  except LtjaxError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"{a.adjust} on {a.workdir} ({a.checkpoint} checkpoint, step {out['step']}); τ chosen on {out['select_on']}")
  print("   tau   top-1   many  medium    few")
  for row in out["sweep"]:
    print(f"{row['tau']:6.2f}  {row['top1']:6.2f} {_group(row, 'many_thr'):>6} {_group(row, 'medium_thr'):>7} "
          f"{_group(row, 'few_thr'):>6}")
  rep, base = out["report"], out["report_tau0"]
  print(f"test at τ = {out['best_tau']:g}: top-1 {rep['top1']:.2f} (τ = 0: {base['top1']:.2f}), many/medium/few "
        f"{_group(rep, 'many_thr')} / {_group(rep, 'medium_thr')} / {_group(rep, 'few_thr')}, ECE {rep['ece']:.2f}")
  print(f"written to {os.path.join(a.workdir, f'posthoc_{a.adjust}.json')}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
