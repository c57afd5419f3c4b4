"""Training views, host path against device path: images/s of each method family's augmentation on random
CIFAR-shaped images — through the real tf.data pipeline (TF ops, all host cores) and as the device path's jitted
JAX function (`ltjax.data.device_augment` / `device_randaugment`, batched, on the default JAX device).

  python benchmarks/views.py --n 4096 --batch 128
  python benchmarks/views.py --paths device --batch 512        # on an accelerator (no TensorFlow needed)

Recipes: `standard` (pad-crop, flip: supervised, decouple, rotation), `supcon` (SBCL's two views), `moco` (two
aug-plus views), `records` (RECORDS weak + strong views). Prints one JSON line per (recipe, path); each image
yields all of its recipe's views. The device figure is the augmentation alone (what it adds to a train step).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402

from benchmarks.common import emit  # noqa: E402

MEAN, STD = (0.5,) * 3, (0.25,) * 3


def host_fns(size):
  import tensorflow as tf

  from ltjax.data import contrastive_views, randaugment

  def two(view):
    def fn(image, seed):
      s1, s2 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
      return {"view1": view(image, s1), "view2": view(image, s2)}
    return fn

  return {"standard": None,
          "supcon": two(lambda im, s: contrastive_views.simclr_view(im, s, size=size, mean=MEAN, std=STD)),
          "moco": contrastive_views.moco_two_views(size=size, mean=MEAN, std=STD),
          "records": randaugment.weak_strong(MEAN, STD, size)}


def device_fns(size):
  from ltjax.data import device_augment as da, device_randaugment as dra
  return {"standard": da.standard(MEAN, STD, 4, True),
          "supcon": da.two_views(lambda im, k: da.supcon_view(im, k, size=size, mean=MEAN, std=STD)),
          "moco": da.two_views(lambda im, k: da.moco_view(im, k, size=size, mean=MEAN, std=STD), ("image", "image_k")),
          "records": dra.weak_strong(MEAN, STD, size)}


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--n", type=int, default=4096, help="images per timed pass (host path)")
  ap.add_argument("--batch", type=int, default=128)
  ap.add_argument("--size", type=int, default=32)
  ap.add_argument("--recipes", nargs="+", default=["standard", "supcon", "moco", "records"])
  ap.add_argument("--paths", nargs="+", default=["host", "device"])
  ap.add_argument("--out", default="")
  a = ap.parse_args()
  rng = np.random.RandomState(0)
  images = rng.randint(0, 256, (a.n, a.size, a.size, 3)).astype(np.uint8)
  if "host" in a.paths:
    from ltjax.data import pipeline
    from ltjax.data.dataset import Split
    split = Split(images, (np.arange(a.n) % 10).astype(np.int32), np.arange(a.n))
    batches = pipeline.Batches(a.n, a.batch, 1, drop_remainder=True)
    fns = host_fns(a.size)
    for name in a.recipes:
      ti = pipeline.TrainInput(split, batches, seed=0, mean=MEAN, std=STD, crop_padding=4, flip=True,
                               augment_fn=fns[name])
      for _ in ti.epoch(0):  # warm-up: graph tracing
        break
      t = time.perf_counter()
      n = sum(b["label"].shape[0] for b in ti.epoch(1))
      dt = time.perf_counter() - t
      emit({"recipe": name, "path": "host", "images": n, "images_per_sec": round(n / dt, 1)}, a.out)
  if "device" in a.paths:
    import jax
    import jax.numpy as jnp

    from ltjax.data import device
    x = jnp.asarray(images[:a.batch])
    keys = device.example_keys(0, jnp.int32(0), jnp.arange(a.batch))
    fns = device_fns(a.size)
    for name in a.recipes:
      f = jax.jit(fns[name])
      t = time.perf_counter()
      jax.block_until_ready(f(x, keys))
      compile_s = time.perf_counter() - t
      reps = max(3, a.n // a.batch)
      t = time.perf_counter()
      for i in range(reps):
        out = f(x, keys)
      jax.block_until_ready(out)
      dt = time.perf_counter() - t
      emit({"recipe": name, "path": "device", "backend": jax.default_backend(), "images": reps * a.batch,
            "images_per_sec": round(reps * a.batch / dt, 1), "ms_per_batch": round(dt / reps * 1e3, 2),
            "compile_s": round(compile_s, 2)}, a.out)


if __name__ == "__main__":
  main()
