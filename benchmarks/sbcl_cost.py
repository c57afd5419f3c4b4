"""SBCL stage-1 cost: the train step (two views, bi-granularity loss), the two-view input pipeline, and one
re-clustering (per-class cosine k-means + class temperatures) at CIFAR-100-LT size.

Data: random 32×32×3 images with the CIFAR-100-LT ρ = 0.01 class counts (10,847 images, 500 → 5 per class, 1,051
subclasses by SBCL's rule); ResNet-32 + projection 64 → 64 → 128, the method and jitted sharded step the
trainer uses.

  python benchmarks/sbcl_cost.py                      # batch 1024 (SBCL's), step + input + clustering
  python benchmarks/sbcl_cost.py --batch 256 --steps 5
  python benchmarks/sbcl_cost.py --skip-step          # clustering only
Prints one JSON line per measurement (also appended to --out if given).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402


def cifar100_lt_labels():
  counts = np.floor(500 * 0.01 ** (np.arange(100) / 99)).astype(np.int64)
  return np.repeat(np.arange(100), counts).astype(np.int32), counts


def build(batch):
  from configs import sbcl_cifar

  from ltjax.data import pipeline
  from ltjax.data.dataset import Dataset, Split
  from ltjax.data.stats import ClassStats
  from ltjax.methods.sbcl import SBCL
  from ltjax.models import create_model
  from ltjax.train import optim, run as run_lib, step as step_lib

  cfg = sbcl_cifar.get_config("dataset=cifar100,imb=0.01,stage=1")
  cfg.train.batch_size = batch
  labels, _ = cifar100_lt_labels()
  n = len(labels)
  images = np.random.RandomState(0).randint(0, 256, (n, 32, 32, 3)).astype(np.uint8)
  split = Split(images=images, labels=labels, indices=np.arange(n))
  data = Dataset(name="synthetic", num_classes=100, train=split, test=split, val=None,
                 mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010), crop_padding=4, flip=True)
  stats = ClassStats.from_labels(labels, 100)
  method = SBCL(cfg, data, stats)
  mesh = step_lib.make_mesh(0)
  batches = pipeline.Batches(n, batch, mesh.devices.size, drop_remainder=True)
  train_input = pipeline.TrainInput(split, batches, seed=0, mean=data.mean, std=data.std, crop_padding=4, flip=True,
                                    augment_fn=method.train_augment())
  net = create_model("resnet32", 100, head="linear", **method.model_kwargs())
  table = optim.lr_table_from_config(cfg, steps_per_epoch=batches.steps_per_epoch)
  schedule = optim.epoch_schedule(table, batches.steps_per_epoch)
  tx = optim.sgd(schedule, momentum=0.9, weight_decay=1e-4)
  run = run_lib.Run(cfg, data, stats, method, net, mesh, train_input, schedule, tx)
  state = run_lib.create_state(run, 0)
  return run, method, state


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--batch", type=int, default=1024, help="images per step (2 views each)")
  p.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
  p.add_argument("--input-batches", type=int, default=3, help="timed two-view input batches")
  p.add_argument("--clusterings", type=int, default=3, help="timed re-clusterings after a compile call")
  p.add_argument("--skip-step", action="store_true")
  p.add_argument("--extract", action="store_true", help="also time the clustering feature pass (10,847 images)")
  p.add_argument("--out", default="")
  a = p.parse_args()
  from common import emit

  from ltjax.train import step as step_lib

  dev = {"backend": jax.default_backend(), "devices": jax.device_count(), "cpus": os.cpu_count(),
         "load": os.getloadavg()[0]}
  run, method, state = build(a.batch)
  labels, counts = cifar100_lt_labels()
  m = method.sub_counts
  assert sum(m) == 1051, sum(m)

  # One re-clustering at CIFAR-100-LT size (features as the method computes them: unit 128-d rows).
  feats = np.random.default_rng(0).normal(size=(len(labels), 128)).astype(np.float32)
  feats /= np.linalg.norm(feats, axis=1, keepdims=True)
  t0 = time.perf_counter()
  method.recluster(feats, 10, run.mesh)
  first = time.perf_counter() - t0
  times = []
  for k in range(a.clusterings):
    t0 = time.perf_counter()
    out = method.recluster(feats, 20 + 10 * k, run.mesh)
    times.append(time.perf_counter() - t0)
  emit(dict(dev, what="recluster", n=len(labels), classes=100, subclasses=int(sum(m)),
            first_call_s=round(first, 2), seconds=round(float(np.median(times)), 3),
            used_subclasses=int(len(np.unique(out["sub_labels"])))), a.out)
  if a.extract:
    method.cluster_features(run, state, 10)
    t0 = time.perf_counter()
    method.cluster_features(run, state, 20)
    emit(dict(dev, what="cluster_features", n=len(labels), seconds=round(time.perf_counter() - t0, 2)), a.out)
  if a.skip_step:
    return

  # Two-view input pipeline alone (tf.data, same cores).
  it = run.train_input.epoch(0)
  next(it)
  t0 = time.perf_counter()
  k = 0
  for k, _ in enumerate(it, 1):
    if k >= a.input_batches:
      break
  emit(dict(dev, what="two_view_input", batch=a.batch, images_per_s=round(k * a.batch / (time.perf_counter() - t0), 1)),
       a.out)

  # The train step, bi-granularity phase, on a device-resident batch.
  batch = next(run.train_input.epoch(1))
  gb = step_lib.to_global(batch, run.mesh)
  state = state.replace(method_state=jax.device_put(
      {"sub_labels": jnp.asarray(out["sub_labels"]), "class_temps": jnp.asarray(out["class_temps"]),
       "cluster_epoch": jnp.asarray(10, jnp.int32)}, step_lib.replicated(run.mesh)))
  hp = jax.device_put(method.epoch_hparams(20), step_lib.replicated(run.mesh))
  train_step = step_lib.make_train_step(method, run.model.apply, run.tx, run.schedule, run.mesh)
  t0 = time.perf_counter()
  state, mt = train_step(state, gb, hp)
  jax.block_until_ready(mt)
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  for _ in range(a.steps):
    state, mt = train_step(state, gb, hp)
  jax.block_until_ready(mt)
  dt = (time.perf_counter() - t0) / a.steps
  emit(dict(dev, what="stage1_step", model="resnet32+proj(64,128)", batch=a.batch, views=2,
            per_view_bn=bool(method.scfg.per_view_bn), first_step_s=round(compile_s, 1), step_s=round(dt, 3),
            images_per_s=round(a.batch / dt, 1), loss=float(mt["loss"])), a.out)


if __name__ == "__main__":
  main()
