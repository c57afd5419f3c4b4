"""Run the rows of a config over seeds and gather them into one table, next to the published numbers:

  python -m ltjax.tools.table configs/digits_lt.py --rows ce,arb,la_loss --seeds 0,1 --workdir runs/digits_table
  python -m ltjax.tools.table configs/cifar_lt.py:dataset=cifar10,imb=0.01 --rows ce,ldam_drw --seeds 0,1,2 \\
      --workdir runs/c10_table --print-commands        # one main.py command per run, for a cluster scheduler

Each run is `main.py --config CONFIG:ARGS,row=ROW --config.seed=SEED --workdir WORKDIR/ROW/seed_SEED` (plus any
`--set KEY=VALUE` as `--config.KEY=VALUE`). The runs go one after another; a run whose `results.json` exists is not
run again, and an unfinished one resumes where it stopped (main.py's resume). Then `WORKDIR/table.md` and
`WORKDIR/table.csv` hold, per row, top-1 and many/medium/few (training count > 100 / 20–100 / < 20) of the `best` (or
`--report final`) evaluation as mean ± sample standard deviation over the seeds that finished, and the published
top-1 with the difference when the config module provides `published(args) -> {'top1': float, 'source': str}`
('top1' None when the paper has the number but it is not copied here: shown as "missing"; also 'many', 'medium',
'few' when the paper gives them: those cells then carry the published value and the
difference too). An empty many/medium/few group is '–' (null in the CSV), never 0. `WORKDIR/table.png` draws the
rows as bars (mean ± std) with each published top-1 marked.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
METRICS = (("top1", "top-1"), ("many_thr", "many"), ("medium_thr", "medium"), ("few_thr", "few"))
PUBLISHED_KEY = {"top1": "top1", "many_thr": "many", "medium_thr": "medium", "few_thr": "few"}


def _split_config(spec: str):
  path, _, args = spec.partition(":")
  return path, args


def _load_module(path: str):
  full = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
  if not os.path.exists(full):
    raise SystemExit(f"error: config file {path} does not exist")
  spec = importlib.util.spec_from_file_location("ltjax_table_config", full)
  mod = importlib.util.module_from_spec(spec)
  if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
  spec.loader.exec_module(mod)
  return mod


def run_dir(workdir: str, row: str, seed: int) -> str:
  return os.path.join(workdir, row, f"seed_{seed}")


def command(config: str, row: str, seed: int, workdir: str, sets: Sequence[str] = ()) -> List[str]:
  """The main.py command line of one (row, seed) run."""
  path, args = _split_config(config)
  arg = ",".join(filter(None, [args, f"row={row}"]))
  cmd = [sys.executable, os.path.join(ROOT, "main.py"), "--config", f"{path}:{arg}", "--workdir",
         run_dir(workdir, row, seed), f"--config.seed={seed}", "--config.train.progress_bar=False"]
  return cmd + [f"--config.{s}" for s in sets]


def mean_std(values: Sequence[Optional[float]]):
  """(mean, sample std, n) over the non-null values; (None, None, 0) when there are none. std is 0 for one value."""
  v = [float(x) for x in values if x is not None]
  if not v:
    return None, None, 0
  m = sum(v) / len(v)
  s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
  return m, s, len(v)


def gather(workdir: str, rows: Sequence[str], seeds: Sequence[int], report: str = "best",
           published=None, base_args: Optional[dict] = None) -> List[Dict]:
  """One dict per row: row, seeds (those with results), per metric (mean, std), and published/diff."""
  out = []
  for row in rows:
    res = []
    for seed in seeds:
      p = os.path.join(run_dir(workdir, row, seed), "results.json")
      if os.path.exists(p):
        with open(p) as f:
          res.append(json.load(f)[report])
    entry = {"row": row, "n": len(res)}
    for key, _ in METRICS:
      entry[key] = mean_std([r.get(key) for r in res])[:2]
    pub = published(dict(base_args or {}, row=row)) if published is not None else None
    entry["published"] = pub
    top1 = entry["top1"][0]
    entry["diff"] = None if (pub is None or pub["top1"] is None or top1 is None) else top1 - float(pub["top1"])
    out.append(entry)
  return out


def _cell(ms, pub=None, key=None):
  """'mean ± std', and for a published many/medium/few value ' (paper P, +D)'; '–' when nothing was measured."""
  m, s = ms
  text = "–" if m is None else f"{m:.2f} ± {s:.2f}"
  p = None if (pub is None or key == "top1") else pub.get(PUBLISHED_KEY[key])
  if p is not None:
    text += f" (paper {float(p):.2f}" + ("" if m is None else f", {m - float(p):+.2f}") + ")"
  return text


def _published_top1(pub) -> str:
  if pub is None:
    return "–"
  return "missing" if pub["top1"] is None else format(float(pub["top1"]), ".2f")


def markdown(entries: List[Dict], title: str) -> str:
  lines = [f"**{title}** (mean ± sample std over seeds; many/medium/few: training count > 100 / 20–100 / < 20)", "",
           "| row | seeds | " + " | ".join(n for _, n in METRICS) + " | published top-1 | difference | source |",
           "|---|---|" + "---|" * len(METRICS) + "---|---|---|"]
  for e in entries:
    pub = e["published"]
    lines.append(f"| {e['row']} | {e['n']} | " + " | ".join(_cell(e[k], pub, k) for k, _ in METRICS) +
                 f" | {_published_top1(pub)}"
                 f" | {'–' if e['diff'] is None else format(e['diff'], '+.2f')}"
                 f" | {'–' if pub is None else pub.get('source', '')} |")
  return "\n".join(lines) + "\n"


def write_csv(entries: List[Dict], path: str) -> None:
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["row", "seeds"] + [f"{k}_{s}" for k, _ in METRICS for s in ("mean", "std")] +
               ["published_top1", "difference", "source", "published_many", "published_medium", "published_few"])
    for e in entries:
      pub = e["published"]
      w.writerow([e["row"], e["n"]] + ["" if v is None else f"{v:.4f}" for k, _ in METRICS for v in e[k]] +
                 ["" if pub is None or pub["top1"] is None else pub["top1"], "" if e["diff"] is None else f"{e['diff']:.4f}",
                  "" if pub is None else pub.get("source", "")] +
                 ["" if pub is None or pub.get(g) is None else pub[g] for g in ("many", "medium", "few")])


def plot(entries: List[Dict], path: str, title: str) -> None:
  """The table as grouped bars (top-1 and many/medium/few, mean ± std over seeds), published top-1 as markers."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from ltjax.tools import curves
  fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(entries) + 2), 4.5))
  curves.plot_group_bars(ax, [e["row"] for e in entries], {n: [e[k][0] for e in entries] for k, n in METRICS},
                         {n: [e[k][1] for e in entries] for k, n in METRICS},
                         [None if (e["published"] or {}).get("top1") is None else float(e["published"]["top1"])
                          for e in entries])
  ax.set_title(title, fontsize=9)
  fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m ltjax.tools.table", description=__doc__.split("\n\n")[0])
  p.add_argument("config", help="configs/X.py[:ARGS] (the rows are given with --rows, as its 'row' argument)")
  p.add_argument("--rows", required=True)
  p.add_argument("--seeds", default="0")
  p.add_argument("--workdir", required=True)
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="a config override for every run (as --config.KEY=VALUE)")
  p.add_argument("--report", choices=("best", "final"), default="best")
  p.add_argument("--print-commands", action="store_true", help="print one command per run and run nothing")
  p.add_argument("--no-run", action="store_true", help="only gather the runs that finished")
  a = p.parse_args(argv)
  path, args = _split_config(a.config)
  mod = _load_module(path)
  rows = [r for r in a.rows.split(",") if r]
  try:
    seeds = [int(s) for s in a.seeds.split(",") if s]
  except ValueError:
    print(f"error: --seeds {a.seeds!r}: give integers, e.g. 0,1,2", file=sys.stderr)
    return 2
  known = getattr(mod, "ROWS", None)
  bad = [r for r in rows if known is not None and r not in known]
  if bad:
    print(f"error: {path} has no row(s) {bad} (known: {sorted(known)})", file=sys.stderr)
    return 2
  cmds = [(row, seed, command(a.config, row, seed, a.workdir, a.set)) for row in rows for seed in seeds]
  if a.print_commands:
    for _, _, cmd in cmds:
      print(" ".join(cmd))
    return 0
  failed = []
  if not a.no_run:
    for row, seed, cmd in cmds:
      if os.path.exists(os.path.join(run_dir(a.workdir, row, seed), "results.json")):
        print(f"[table] {row} seed {seed}: done already")
        continue
      print(f"[table] {row} seed {seed}: {' '.join(cmd[1:])}", flush=True)
      r = subprocess.run(cmd)  # from the caller's directory: CONFIG and --workdir are relative to it
      if r.returncode:
        failed.append((row, seed, r.returncode))
  base = dict(kv.split("=", 1) for kv in args.split(",") if "=" in kv)
  entries = gather(a.workdir, rows, seeds, a.report, getattr(mod, "published", None), base)
  os.makedirs(a.workdir, exist_ok=True)
  text = markdown(entries, f"{a.config}, {a.report} epoch")
  with open(os.path.join(a.workdir, "table.md"), "w") as f:
    f.write(text)
  write_csv(entries, os.path.join(a.workdir, "table.csv"))
  plot(entries, os.path.join(a.workdir, "table.png"), f"{a.config}, {a.report} epoch")
  print(text)
  print(f"written to {os.path.join(a.workdir, 'table.md')}, table.csv and table.png")
  for row, seed, rc in failed:
    print(f"error: {row} seed {seed} failed (exit {rc}); rerun the same command to resume it", file=sys.stderr)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
