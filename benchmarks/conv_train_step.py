"""ResNet train-step throughput, nn.Conv against ltjax.models.conv.Conv, measured interleaved in one process.

Builds ltjax's real train step (the same setup as benchmarks/train_step.py: method, loss, SGD, BatchNorm updates,
synthetic device-resident batch) once per convolution variant, then alternates timed rounds of --steps steps between
the variants, so that load from other processes on the machine hits every variant alike; reports the median round.

  python benchmarks/conv_train_step.py --batch 128                      # flax vs native vs chunked
  python benchmarks/conv_train_step.py --batch 512 --variants flax,chunked --chunk 8
Variants: 'flax' (nn.Conv) or any ltjax Conv impl ('native', 'chunked', 'taps', 'im2col', 'auto').
Prints one JSON line per variant.
"""

import argparse
import functools
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import jax  # noqa: E402
import numpy as np  # noqa: E402


def build(a, conv_cls):
  from common import build_step
  from ltjax.train import step as step_lib
  train_step, state, train_input, mesh, hparams = build_step(a.model, a.batch, a.classes, a.size, conv=conv_cls,
                                                             batches_per_epoch=2)
  return train_step, state, step_lib.to_global(next(train_input.epoch(0)), mesh), hparams


def main():
  from common import emit
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--model", default="resnet32")
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--classes", type=int, default=100)
  p.add_argument("--size", type=int, default=32)
  p.add_argument("--variants", default="flax,native,chunked")
  p.add_argument("--chunk", type=int, default=8)
  p.add_argument("--steps", type=int, default=5, help="steps per timed round")
  p.add_argument("--rounds", type=int, default=4)
  p.add_argument("--out", default="")
  a = p.parse_args()

  import flax.linen as nn
  from ltjax.models.conv import Conv

  runs = {}
  for v in a.variants.split(","):
    cls = nn.Conv if v == "flax" else functools.partial(Conv, impl=v, chunk=a.chunk)
    step, state, batch, hp = build(a, cls)
    t0 = time.perf_counter()
    state, m = step(state, batch, hp)
    jax.block_until_ready(m["loss"])
    first = time.perf_counter() - t0
    state, m = step(state, batch, hp)
    jax.block_until_ready(m["loss"])
    runs[v] = dict(step=step, state=state, batch=batch, hp=hp, first=first, times=[], loss=float(m["loss"]))
  for _ in range(a.rounds):
    for v, r in runs.items():
      t0 = time.perf_counter()
      for _ in range(a.steps):
        r["state"], m = r["step"](r["state"], r["batch"], r["hp"])
      jax.block_until_ready(m["loss"])
      r["times"].append((time.perf_counter() - t0) / a.steps)
  for v, r in runs.items():
    t = float(np.median(r["times"]))
    res = {"model": a.model, "batch": a.batch, "conv": v, "chunk": a.chunk if v == "chunked" else None,
           "images_per_sec": round(a.batch / t, 1), "best_images_per_sec": round(a.batch / min(r["times"]), 1),
           "step_ms": round(1e3 * t, 1), "first_step_s": round(r["first"], 2), "loss_step2": round(r["loss"], 6),
           "rounds": a.rounds, "steps_per_round": a.steps, "load_avg_1m": os.getloadavg()[0],
           "cpu_count": os.cpu_count(), "machine": platform.machine(), "jax": jax.__version__}
    emit(res, a.out)


if __name__ == "__main__":
  main()
