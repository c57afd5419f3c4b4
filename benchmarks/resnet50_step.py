"""ResNet-50 (and friends) training-step throughput: the real ltjax step (supervised CE, SGD momentum + weight decay,
BatchNorm updates, jitted over all devices, buffers donated) on random 224² images, 1000 classes.

  python benchmarks/resnet50_step.py --batch 8 --steps 3 --dtype float32
  python benchmarks/resnet50_step.py --batch 256 --steps 20 --dtype bfloat16 --peak-tflops 989   # on an H100

Prints one JSON line: images/s over the timed steps (after `--warmup` untimed ones; the first includes compile),
peak device memory where the backend reports it, and with `--peak-tflops` the model-FLOP utilisation: model FLOPs
per image (common.model_flops: 3 × the forward pass's convolution and matrix-product FLOPs) × images/s ÷ peak.
"""

import argparse
import os
import platform
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from common import build_step, emit, model_flops  # noqa: E402


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--model", default="resnet50")
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--size", type=int, default=224)
  p.add_argument("--classes", type=int, default=1000)
  p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--warmup", type=int, default=1)
  p.add_argument("--peak-tflops", type=float, default=0.0,
                 help="per-device peak (e.g. 989 for H100 bf16 dense) to report model-FLOP utilisation")
  p.add_argument("--out", default="")
  a = p.parse_args()
  import jax
  from ltjax.models import conv as conv_lib
  from ltjax.train import step as step_lib
  train_step, state, train_input, mesh, hparams = build_step(a.model, a.batch, a.classes, a.size, "ce", a.dtype,
                                                             batches_per_epoch=1)
  hparams = jax.device_put(hparams, step_lib.replicated(mesh))
  batch = next(iter(train_input.epoch(0)))
  batch = step_lib.to_global(batch, mesh)
  t0 = time.perf_counter()
  for _ in range(a.warmup):
    state, m = train_step(state, batch, hparams)
  jax.block_until_ready(m)
  first = time.perf_counter() - t0
  t0 = time.perf_counter()
  for _ in range(a.steps):
    state, m = train_step(state, batch, hparams)
  jax.block_until_ready(m)
  dt = time.perf_counter() - t0
  res = {"bench": "train_step", "model": a.model, "batch": a.batch, "size": a.size, "dtype": a.dtype,
         "devices": jax.device_count(), "backend": jax.default_backend(), "steps": a.steps,
         "conv": conv_lib.resolve_impl(x_shape=(a.batch, a.size, a.size, 3)),
         "images_per_sec": a.batch * a.steps / dt, "sec_per_step": dt / a.steps, "warmup_sec": first,
         "loss": float(m["loss"]), "machine": platform.processor() or platform.machine(),
         "cpu_count": os.cpu_count(), "loadavg": os.getloadavg()[0],
         "host_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    res["device_peak_mb"] = stats["peak_bytes_in_use"] / 2**20
  per_image = model_flops(a.model, a.classes, a.size)  # 3 × forward 2·MACs (common.model_flops)
  res["model_gflop_per_image"] = per_image / 1e9
  if a.peak_tflops:  # model-FLOP utilisation against the given per-device peak
    res["peak_tflops"] = a.peak_tflops
    res["mfu"] = per_image * res["images_per_sec"] / (a.peak_tflops * 1e12 * jax.device_count())
  emit(res, a.out)


if __name__ == "__main__":
  main()
