"""Training-step throughput: images/s (steady state), compile time and peak memory of ltjax's real train step.

Runs the same jitted, sharded step the trainer uses (method, loss, SGD, BatchNorm updates) on synthetic device-
resident batches, so the figure is the step alone; add `--input` to feed it through the real tf.data pipeline on
synthetic CIFAR-shaped data instead.

  python benchmarks/train_step.py --model resnet32 --batch 128 --loss arb
  python benchmarks/train_step.py --model resnet32 --batch 512 --steps 20
Prints one JSON line per configuration (also appended to --out if given).
"""

import argparse
import os
import platform
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from ltjax import host_memory  # noqa: E402  (first: before any thread starts; opt-in LTJAX_MALLOC_TUNING=1)

host_memory.configure()

import jax  # noqa: E402
import numpy as np  # noqa: E402


def peak_memory_mb() -> dict:
  out = {"host_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    out["device_peak_mb"] = stats["peak_bytes_in_use"] / 2**20
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--model", default="resnet32")
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--classes", type=int, default=100)
  p.add_argument("--size", type=int, default=32, help="image side")
  p.add_argument("--loss", default="ce")
  p.add_argument("--dtype", default="float32")
  p.add_argument("--steps", type=int, default=30, help="timed steps after warm-up")
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument("--input", action="store_true", help="feed through the tf.data pipeline")
  p.add_argument("--out", default="")
  a = p.parse_args()

  from common import build_step, emit
  from ltjax.data import pipeline
  from ltjax.models import conv as conv_lib
  from ltjax.train import step as step_lib

  train_step, state, train_input, mesh, hparams = build_step(a.model, a.batch, a.classes, a.size, a.loss, a.dtype)

  def batch_iter():
    e = 0
    while True:
      yield from pipeline.prefetch(train_input.epoch(e), lambda b: step_lib.to_global(b, mesh))
      e += 1

  if a.input:
    it = batch_iter()
    next_batch = lambda: next(it)  # noqa: E731
  else:
    fixed = step_lib.to_global(next(train_input.epoch(0)), mesh)
    next_batch = lambda: fixed  # noqa: E731

  t0 = time.perf_counter()
  first = next_batch()
  host_memory.reuse_for_step(train_step, first, state, first, hparams)  # LTJAX_MALLOC_TUNING=1: compiles it first
  state, m = train_step(state, first, hparams)
  jax.block_until_ready(m["loss"])
  compile_s = time.perf_counter() - t0
  for _ in range(a.warmup - 1):
    state, m = train_step(state, next_batch(), hparams)
  jax.block_until_ready(m["loss"])
  t0 = time.perf_counter()
  for _ in range(a.steps):
    state, m = train_step(state, next_batch(), hparams)
  jax.block_until_ready(m["loss"])
  dt = time.perf_counter() - t0
  res = {
      "model": a.model, "batch": a.batch, "size": a.size, "classes": a.classes, "loss": a.loss, "dtype": a.dtype,
      "input": "tf.data" if a.input else "device-resident", "images_per_sec": round(a.batch * a.steps / dt, 1),
      "step_ms": round(1000 * dt / a.steps, 2), "first_step_s": round(compile_s, 2),
      "conv": conv_lib.resolve_impl(x_shape=(a.batch, a.size, a.size, 16)), "malloc_reuse": host_memory.reusing(),
      "backend": jax.default_backend(), "devices": jax.device_count(),
      "device_kind": jax.devices()[0].device_kind, "cpu_count": os.cpu_count(), "machine": platform.machine(),
      "jax": jax.__version__, **{k: round(v, 1) for k, v in peak_memory_mb().items()},
  }
  emit(res, a.out)


if __name__ == "__main__":
  main()
