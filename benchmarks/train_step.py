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
  try:  # resident now (after the timed steps), beside the high-water mark
    with open("/proc/self/statm") as f:
      out["host_rss_mb"] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
  except OSError:
    pass
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
  p.add_argument("--steps-per-call", type=int, default=0,
                 help="train steps per compiled call, as config.train.steps_per_call (0 = the trainer's auto choice)")
  p.add_argument("--out", default="")
  a = p.parse_args()

  from common import build_step, emit
  from ltjax.data import pipeline
  from ltjax.models import conv as conv_lib
  from ltjax.train import step as step_lib

  backend = jax.default_backend()
  probe = {"image": np.zeros((a.batch, a.size, a.size, 3), np.float32)}
  k = step_lib.steps_per_call(a.steps_per_call, probe, backend)
  train_step, state, train_input, mesh, hparams = build_step(a.model, a.batch, a.classes, a.size, a.loss, a.dtype,
                                                             steps_per_call=k)

  def host_batches():
    e = 0
    while True:
      yield from train_input.epoch(e)
      e += 1

  if k == 1:
    to_device, source = (lambda b: step_lib.to_global(b, mesh)), host_batches()
  else:  # the trainer's grouping: K host batches stacked per call, all active
    to_device = lambda g: step_lib.to_global(g[0], mesh, stacked=True)  # noqa: E731
    source = pipeline.group_steps(host_batches(), k, 1 << 62)
  if a.input:
    it = pipeline.prefetch(source, to_device)
    next_batch = lambda: next(it)  # noqa: E731
  else:
    fixed = to_device(next(source))
    next_batch = lambda: fixed  # noqa: E731
  extra = () if k == 1 else (jax.device_put(np.ones([k], bool), step_lib.replicated(mesh)),)
  calls = max(1, a.steps // k)

  t0 = time.perf_counter()
  first = next_batch()
  host_memory.reuse_for_step(train_step, first, state, first, *extra, hparams)  # LTJAX_MALLOC_TUNING=1: compiles
  state, m = train_step(state, first, *extra, hparams)
  jax.block_until_ready(m["loss"])
  compile_s = time.perf_counter() - t0
  for _ in range(max(1, a.warmup // k)):
    state, m = train_step(state, next_batch(), *extra, hparams)
  jax.block_until_ready(m["loss"])
  t0 = time.perf_counter()
  for _ in range(calls):
    state, m = train_step(state, next_batch(), *extra, hparams)
  jax.block_until_ready(m["loss"])
  dt = time.perf_counter() - t0
  steps = calls * k
  if a.input:
    it.close()  # stop the prefetch thread before the interpreter exits
  res = {
      "model": a.model, "batch": a.batch, "size": a.size, "classes": a.classes, "loss": a.loss, "dtype": a.dtype,
      "input": "tf.data" if a.input else "device-resident", "images_per_sec": round(a.batch * steps / dt, 1),
      "step_ms": round(1000 * dt / steps, 2), "steps_per_call": k, "first_step_s": round(compile_s, 2),
      "conv": conv_lib.resolve_impl(x_shape=(a.batch, a.size, a.size, 16)), "malloc_reuse": host_memory.reusing(),
      "backend": jax.default_backend(), "devices": jax.device_count(),
      "device_kind": jax.devices()[0].device_kind, "cpu_count": os.cpu_count(), "machine": platform.machine(),
      "jax": jax.__version__, **{k: round(v, 1) for k, v in peak_memory_mb().items()},
  }
  emit(res, a.out)


if __name__ == "__main__":
  main()
