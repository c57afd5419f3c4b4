"""ResNet train-step throughput, nn.Conv against ltjax.models.conv.Conv, measured interleaved in one process.

Builds ltjax's real train step (the same setup as benchmarks/train_step.py: method, loss, SGD, BatchNorm updates,
synthetic device-resident batch) once per convolution variant, then alternates timed rounds of --steps steps between
the variants, so that load from other processes on the machine hits every variant alike; reports the median round.

  python benchmarks/conv_train_step.py --batch 128                      # flax vs native vs chunked
  python benchmarks/conv_train_step.py --batch 512 --variants flax,chunked --chunk 16
Variants: 'flax' (nn.Conv) or any ltjax Conv impl ('native', 'chunked', 'taps', 'im2col', 'auto').
Prints one JSON line per variant.
"""

import argparse
import functools
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import jax  # noqa: E402
import numpy as np  # noqa: E402


def build(a, conv_cls):
  from ltjax import config as config_lib
  from ltjax import methods
  from ltjax.data import pipeline
  from ltjax.data.sources import Dataset, Split
  from ltjax.data.stats import ClassStats
  from ltjax.models import create_model
  from ltjax.train import loop, optim, step as step_lib

  cfg = config_lib.default()
  cfg.model.name, cfg.loss.name = a.model, "ce"
  cfg.train.batch_size = a.batch
  n = a.batch * 2
  rng = np.random.RandomState(0)
  labels = (np.arange(n) % a.classes).astype(np.int32)
  images = rng.randint(0, 256, (n, a.size, a.size, 3)).astype(np.uint8)
  split = Split(images=images, labels=labels, indices=np.arange(n))
  data = Dataset(name="synthetic", num_classes=a.classes, train=split, test=split, val=None, mean=(0.5,) * 3,
                 std=(0.25,) * 3, crop_padding=4, flip=True)
  stats = ClassStats.from_labels(labels, a.classes)
  method = methods.REGISTRY["supervised"](cfg, stats, labels)
  mesh = step_lib.make_mesh(0)
  batches = pipeline.Batches(n, a.batch, mesh.devices.size, drop_remainder=True)
  train_input = pipeline.TrainInput(split, batches, seed=0, mean=data.mean, std=data.std, crop_padding=4, flip=True)
  model = create_model(a.model, a.classes, conv=conv_cls)
  schedule = optim.epoch_schedule(np.full([10], 0.1), batches.steps_per_epoch)
  tx = optim.sgd(schedule, momentum=0.9, weight_decay=5e-4)
  run = loop.Run(cfg, data, stats, method, model, mesh, train_input, schedule, tx)
  state = loop.create_state(run, 0)
  train_step = step_lib.make_train_step(method, model.apply, tx, schedule, mesh)
  batch = step_lib.to_global(next(train_input.epoch(0)), mesh)
  return train_step, state, batch, method.epoch_hparams(0)


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--model", default="resnet32")
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--classes", type=int, default=100)
  p.add_argument("--size", type=int, default=32)
  p.add_argument("--variants", default="flax,native,chunked")
  p.add_argument("--chunk", type=int, default=16)
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
    line = json.dumps(res)
    print(line, flush=True)
    if a.out:
      with open(a.out, "a") as f:
        f.write(line + "\n")


if __name__ == "__main__":
  main()
