"""Throughput of the RECORDS weak + strong views (RandomResizedCrop, ColorJitter, RandomAugment(3) + Cutout in TF
ops) through the real tf.data pipeline, against the single-view CIFAR recipe, on random CIFAR-shaped images.

  python benchmarks/records_views.py --n 4096 --batch 256
Prints one JSON line per recipe: images per second (each image yields both views for `records`).
"""

import argparse
import time

from common import emit  # noqa: F401  (also puts the repository on sys.path)

import numpy as np

from ltjax.data import pipeline, records_augment
from ltjax.data.sources import Split


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--n", type=int, default=4096)
  ap.add_argument("--batch", type=int, default=256)
  a = ap.parse_args()
  rng = np.random.RandomState(0)
  split = Split(rng.randint(0, 256, (a.n, 32, 32, 3)).astype(np.uint8), (np.arange(a.n) % 10).astype(np.int32),
                np.arange(a.n))
  batches = pipeline.Batches(a.n, a.batch, 1, drop_remainder=True)
  stats = ((0.5,) * 3, (0.25,) * 3)
  for name, fn in (("cifar_single_view", None), ("records_weak_strong", records_augment.weak_strong(*stats, 32))):
    ti = pipeline.TrainInput(split, batches, seed=0, mean=stats[0], std=stats[1], crop_padding=4, flip=True,
                             augment_fn=fn)
    for b in ti.epoch(0):  # warm-up: graph tracing
      break
    t = time.perf_counter()
    n = sum(b["label"].shape[0] for b in ti.epoch(1))
    dt = time.perf_counter() - t
    emit({"recipe": name, "images": n, "seconds": round(dt, 3), "images_per_sec": round(n / dt, 1)})


if __name__ == "__main__":
  main()
