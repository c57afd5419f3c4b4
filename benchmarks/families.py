"""A digits run of every method family, each timed end to end through `main.py` (the README's minutes-long
examples): ARB-Loss, the rotation and MoCo pre-training of "Rethinking the Value of Labels", SBCL stage 1, RECORDS
with CORR and mixup, and the CDB-CE baseline.

  python benchmarks/families.py                     # one after another
  python benchmarks/families.py --parallel 5        # all at once (wall times then include the contention)
  python benchmarks/families.py --only arb,records --timeout 120

Per run one JSON line: `wall_s` (the whole command: start, data, compile, every epoch and evaluation), the best test
top-1 and the return code; a run past `--timeout` is stopped and reported as timed out.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, ROOT)

from benchmarks.common import emit  # noqa: E402

RUNS = {
    "arb": ("configs/quickstart.py", "ARB-Loss, digits-LT (the README's quickstart)"),
    "rotation": ("configs/ss_digits.py:stage=rotation", "rotation pre-training (Rethinking the Value of Labels)"),
    "moco": ("configs/moco_digits.py:stage=moco", "MoCo v2 pre-training (Rethinking the Value of Labels)"),
    "sbcl": ("configs/sbcl_digits.py:stage=1", "SBCL stage 1"),
    "records": ("configs/records_digits.py", "CORR + RECORDS + mixup"),
    "cdb": ("configs/cdb_digits.py", "CDB-CE baseline"),
}


def start(name, workdir, extra):
  config, _ = RUNS[name]
  cmd = [sys.executable, os.path.join(ROOT, "main.py"), "--config", os.path.join(ROOT, config), "--workdir", workdir,
         "--config.train.progress_bar=False"] + [f"--config.{kv}" for kv in extra]
  log = open(workdir + ".log", "w")
  return subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=log,
                          stderr=subprocess.STDOUT), log


def wait_all(procs, t0, deadline):
  """End times (perf_counter) of each process, polling; a process still running at `deadline` is killed (None)."""
  ends = [None] * len(procs)
  while any(e is None for e in ends) and time.perf_counter() < deadline:
    for i, (proc, _) in enumerate(procs):
      if ends[i] is None and proc.poll() is not None:
        ends[i] = time.perf_counter()
    time.sleep(0.05)
  for i, (proc, _) in enumerate(procs):
    if ends[i] is None and proc.poll() is None:
      proc.kill()
      proc.wait()
    elif ends[i] is None:
      ends[i] = time.perf_counter()
  return ends


def result(name, workdir, proc, log, t0, end):
  log.close()
  timed_out = end is None
  res = {"bench": "family", "family": name, "config": RUNS[name][0], "what": RUNS[name][1],
         "wall_s": None if timed_out else round(end - t0, 1), "timed_out": timed_out,
         "returncode": None if timed_out else proc.returncode}
  path = os.path.join(workdir, "results.json")
  if os.path.exists(path):
    r = json.load(open(path))
    res.update(epochs=r.get("epochs"), steps=r.get("steps"), best_top1=(r.get("best") or {}).get("top1"))
  elif not timed_out and proc.returncode:
    lines = open(workdir + ".log").read().strip().splitlines()
    res["error"] = lines[-1][:300] if lines else "no output"
  return res


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--only", default=",".join(RUNS))
  p.add_argument("--parallel", type=int, default=1)
  p.add_argument("--timeout", type=float, default=600, help="seconds per run (in parallel: for the whole batch)")
  p.add_argument("--set", action="append", default=[], help="KEY=VALUE for every run")
  p.add_argument("--workdir", default="")
  p.add_argument("--out", default="")
  a = p.parse_args()
  names = [n for n in a.only.split(",") if n]
  unknown = [n for n in names if n not in RUNS]
  if unknown:
    raise SystemExit(f"unknown run(s) {unknown}: choose from {', '.join(RUNS)}")
  root = a.workdir or tempfile.mkdtemp(prefix="ltjax_families_")
  os.makedirs(root, exist_ok=True)
  failed = 0
  for i in range(0, len(names), max(a.parallel, 1)):
    group = names[i:i + max(a.parallel, 1)]
    t0 = time.perf_counter()
    deadline = t0 + a.timeout
    running = [(n, os.path.join(root, n)) for n in group]
    procs = [start(n, w, a.set) for n, w in running]
    ends = wait_all(procs, t0, deadline)
    for (n, w), (proc, log), end in zip(running, procs, ends):
      res = result(n, w, proc, log, t0, end)
      res["concurrent"] = len(group)
      failed += bool(res.get("timed_out") or res.get("returncode"))
      emit(res, a.out)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
