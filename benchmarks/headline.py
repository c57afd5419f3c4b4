"""The headline run, timed end to end: `configs/arb_cifar100.py` (ARB-Loss, ResNet-32, batch 128, 200 epochs,
evaluation on the 10,000 test images every epoch) through `main.py`, on generated CIFAR-100-shaped arrays fed by the
device data path (`--config.data.name=npz`): 500 training images per class become CIFAR-100-LT's 10,847 by the
config's own exponential selection (ratio 100), so every epoch has the real run's 84 steps.

  python benchmarks/headline.py                          # the whole run (1.5 h on 2 CPU cores; minutes on a GPU)
  python benchmarks/headline.py --epochs 2 --timeout 300 # a short one
  python benchmarks/headline.py --set train.steps_per_call=4 --set model.dtype=bfloat16

`wall_s` is the whole command: Python start, imports, data generation excluded (done before), loading, compile,
every epoch, every evaluation, checkpoints. With `--timeout`, a run still going is stopped and reported with the
epochs it finished and a projection (`projected_wall_s`: the time so far plus the remaining epochs at the measured
rate of the finished ones). The images are class patterns with noise (learnable, so top-1 moves), not CIFAR:
accuracy here says nothing about the paper's number. Prints one JSON line.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from benchmarks.common import emit  # noqa: E402
from ltjax.tools import curves  # noqa: E402


def write_cifar_like(path, classes=100, per_class=500, test_per_class=100, side=32, seed=0):
  """CIFAR-shaped uint8 arrays: each class a smooth random colour pattern, each image that pattern plus noise and a
  random shift (learnable, like a real dataset, and as costly to feed as one)."""
  rng = np.random.RandomState(seed)
  coarse = rng.uniform(40, 215, (classes, 4, 4, 3))
  patterns = np.repeat(np.repeat(coarse, side // 4, axis=1), side // 4, axis=2)  # [C, side, side, 3]

  def draw(n_per):
    y = np.repeat(np.arange(classes), n_per).astype(np.int64)
    shift = rng.randint(-3, 4, (len(y), 2))
    x = np.empty((len(y), side, side, 3), np.uint8)
    for i, (c, (dy, dx)) in enumerate(zip(y, shift)):
      img = np.roll(patterns[c], (dy, dx), axis=(0, 1)) + rng.normal(0, 40, (side, side, 3))
      x[i] = np.clip(img, 0, 255)
    return x, y

  x_train, y_train = draw(per_class)
  x_test, y_test = draw(test_per_class)
  np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def summarize(workdir, out, wall, epochs, timed_out):
  """The run's figures from its stdout and metrics.jsonl."""
  res = {"wall_s": round(wall, 1), "epochs": epochs, "timed_out": timed_out}
  m = re.search(r"train step compiled and first call done in ([\d.]+) s", out)
  if m:
    res["compile_s"] = float(m.group(1))
  metrics = curves.read_metrics(workdir)  # one row per step; skips a line the timeout's kill cut short
  train, tests = metrics.get("train", []), metrics.get("test", [])
  done = max([r.get("epoch", -1) for r in train], default=-1) + 1 if train else 0
  res["epochs_done"] = len(tests) if tests else done
  later = [r["images_per_sec"] for r in train if r.get("epoch", 0) > 0]
  if later:
    res["train_img_s"] = round(float(np.median(later)), 1)
  if tests:
    res["last_test_top1"] = tests[-1].get("top1")
    res["best_test_top1"] = max(r.get("top1", 0) for r in tests)
  if timed_out and res["epochs_done"]:
    per_epoch = wall / res["epochs_done"]
    res["projected_wall_s"] = round(wall + (epochs - res["epochs_done"]) * per_epoch, 1)
  results = os.path.join(workdir, "results.json")
  if os.path.exists(results):
    r = json.load(open(results))
    res["train_images"] = int(sum(r.get("train_counts", [])))
    keys = ("top1", "many_thr", "medium_thr", "few_thr")
    res["best"] = {k: r["best"].get(k) for k in keys} if r.get("best") else None
  return res


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--epochs", type=int, default=200)
  p.add_argument("--timeout", type=float, default=0, help="stop the run after this many seconds (0: never)")
  p.add_argument("--set", action="append", default=[], help="KEY=VALUE: one more --config.KEY=VALUE")
  p.add_argument("--workdir", default="")
  p.add_argument("--log", default="", help="write the run's output here")
  p.add_argument("--out", default="")
  a = p.parse_args()
  tmp = tempfile.mkdtemp(prefix="ltjax_headline_")
  arrays = os.path.join(tmp, "cifar100_like.npz")
  t0 = time.perf_counter()
  write_cifar_like(arrays)
  gen = time.perf_counter() - t0
  workdir = a.workdir or os.path.join(tmp, "run")
  cmd = [sys.executable, os.path.join(ROOT, "main.py"), "--config", os.path.join(ROOT, "configs", "arb_cifar100.py"),
         "--workdir", workdir, "--config.data.name=npz", f"--config.data.path={arrays}",
         f"--config.train.epochs={a.epochs}", "--config.train.progress_bar=False"]
  cmd += [f"--config.{kv}" for kv in a.set]
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  t0 = time.perf_counter()
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  try:
    out, _ = proc.communicate(timeout=a.timeout or None)
    timed_out = False
  except subprocess.TimeoutExpired:
    proc.kill()
    out, _ = proc.communicate()
    timed_out = True
  wall = time.perf_counter() - t0
  if a.log:
    with open(a.log, "w") as f:
      f.write(" ".join(cmd) + "\n" + out)
  res = {"bench": "headline", "config": "configs/arb_cifar100.py", "data": "generated CIFAR-100 shape, npz, device path",
         "sets": a.set, "returncode": None if timed_out else proc.returncode, "generate_s": round(gen, 1)}
  res.update(summarize(workdir, out, wall, a.epochs, timed_out))
  if not timed_out and proc.returncode:
    res["error"] = out.strip().splitlines()[-1][:300] if out.strip() else "no output"
  emit(res, a.out)
  return 0 if (timed_out or proc.returncode == 0) else 1


if __name__ == "__main__":
  sys.exit(main())
