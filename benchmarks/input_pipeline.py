"""Input-pipeline throughput for the large-scale recipe: JPEG read + decode + RandomResizedCrop 224 + flip +
ColorJitter + normalise (the train path of ltjax.data.augment.large_scale_train), and the eval path (decode +
Resize 256 + CenterCrop 224), on generated JPEGs of ImageNet's typical size (default 500×375, quality 90).

  python benchmarks/input_pipeline.py --images 512 --threads 1 2
  python benchmarks/input_pipeline.py --images 2048 --threads 1 4 8 16 --window-decode

`--threads k` runs the tf.data map on a private pool of k threads (k host cores); images/s per core = rate / k.
`images_per_cpu_second` divides by the process's CPU time instead of wall time: the per-core rate even when other
jobs share the cores.
`--window-decode` decodes only the crop window of each JPEG (ImageRecipe.window_decode=True; default off =
whole-image decode, torchvision's pixels).
Prints one JSON line per (path, threads).
"""

import argparse
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402

from benchmarks.common import emit  # noqa: E402


def make_jpegs(root, n, h, w, seed=0):
  """Smooth random images (JPEG sizes like photos: ~100-150 KB at 500×375, q90), n files under root."""
  import tensorflow as tf
  rng = np.random.default_rng(seed)
  paths = []
  for i in range(n):
    low = rng.random((h // 16 + 2, w // 16 + 2, 3)).astype(np.float32)
    img = tf.image.resize(low[None], [h, w], "bicubic")[0].numpy()
    img = np.clip(img * 255 + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    path = os.path.join(root, f"{i:05d}.jpg")
    tf.io.write_file(path, tf.io.encode_jpeg(img, quality=90))
    paths.append(path)
  return np.asarray(paths)


def rate(paths, fn, threads, epochs):
  import tensorflow as tf
  opts = tf.data.Options()
  opts.threading.private_threadpool_size = threads
  opts.threading.max_intra_op_parallelism = 1
  ds = tf.data.Dataset.from_tensor_slices((paths, np.arange(len(paths), dtype=np.int64)))
  ds = ds.map(fn, num_parallel_calls=threads, deterministic=True).batch(64).prefetch(2).with_options(opts)
  for _ in ds:  # warm-up epoch (graph tracing, file cache)
    pass
  t0, c0 = time.perf_counter(), time.process_time()
  n = 0
  for _ in range(epochs):
    for b in ds:
      n += int(b.shape[0])
  return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--images", type=int, default=512)
  p.add_argument("--height", type=int, default=375)
  p.add_argument("--width", type=int, default=500)
  p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
  p.add_argument("--epochs", type=int, default=2)
  p.add_argument("--window-decode", action="store_true")
  p.add_argument("--dir", default="")
  p.add_argument("--out", default="")
  a = p.parse_args()
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  import tensorflow as tf
  from ltjax.data import augment
  from ltjax.data.large import IMAGENET_MEAN, IMAGENET_STD
  root = a.dir or tempfile.mkdtemp(prefix="ltjax_jpegs_")
  paths = make_jpegs(root, a.images, a.height, a.width)
  size_kb = np.mean([os.path.getsize(q) for q in paths]) / 1024
  recipe = augment.ImageRecipe(window_decode=a.window_decode)
  seed0 = tf.constant([0, 0], tf.int64)

  def train(path, i):
    seed = tf.random.experimental.stateless_fold_in(seed0, i)
    return augment.large_scale_train(tf.io.read_file(path), seed, recipe, IMAGENET_MEAN, IMAGENET_STD)["image"]

  def evaluate(path, i):
    return augment.large_scale_eval(tf.io.read_file(path), recipe, IMAGENET_MEAN, IMAGENET_STD)

  for name, fn in (("train", train), ("eval", evaluate)):
    for k in a.threads:
      r, per_cpu_s = rate(paths, fn, k, a.epochs)
      emit({"bench": "input_pipeline", "path": name, "threads": k, "images_per_sec": r, "per_core": r / k,
            "images_per_cpu_second": per_cpu_s,
            "window_decode": recipe.window_decode, "image": f"{a.width}x{a.height}", "jpeg_kb": round(size_kb, 1),
            "images": a.images, "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "loadavg": os.getloadavg()[0]}, a.out)


if __name__ == "__main__":
  main()
