"""Cost of the diagnostics at large-scale sizes (default: iNaturalist 2018 val, 8,142 classes × 3 images, D = 2048).

  python benchmarks/diagnostics_cost.py [--classes 8142 --per-class 3 --dim 2048]
Prints seconds (after a warm-up call, i.e. compiled) for neural_collapse and gradient_components on random data.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from ltjax import diagnostics  # noqa: E402


def timed(fn, *args):
  jax.block_until_ready(fn(*args))
  t = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - t


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--classes", type=int, default=8142)
  p.add_argument("--per-class", type=int, default=3)
  p.add_argument("--dim", type=int, default=2048)
  a = p.parse_args()
  rng = np.random.RandomState(0)
  n = a.classes * a.per_class
  labels = np.repeat(np.arange(a.classes), a.per_class)
  feats = rng.randn(n, a.dim).astype(np.float32)
  logits = rng.randn(n, a.classes).astype(np.float32)
  w = rng.randn(a.dim, a.classes).astype(np.float32)
  nc = jax.jit(lambda f, y, w: diagnostics.neural_collapse(f, y, w, a.classes))
  res = {"classes": a.classes, "examples": n, "dim": a.dim, "backend": jax.default_backend(),
         "cpu_count": os.cpu_count(),
         "neural_collapse_s": round(timed(nc, feats, labels, w), 2),
         "gradient_components_s": round(timed(lambda: diagnostics.gradient_components(feats, logits, labels)), 2)}
  print(json.dumps(res))


if __name__ == "__main__":
  main()
