"""The whole training loop, host data path (tf.data) against device data path (ltjax.data.device), on generated
CIFAR-shaped arrays fed through `--config.data.name=npz` (the real loader, the real trainer, checkpoints included).

  python benchmarks/input_paths.py                                  # ResNet-32, 32×32×3, batch 128, both paths
  python benchmarks/input_paths.py --images 10847 --epochs 3 --eval  # CIFAR-100-LT's size, evaluation every epoch
  python benchmarks/input_paths.py --paths device --model resnet8 --side 8 --channels 1

Per path, one JSON line: `loop_img_s` = training images per second of the loop over the epochs after the first
(taken from the trainer's own metrics.jsonl rows, one per epoch: data path, step, logging; the first epoch holds
the compile), `wall_s` = the whole run (compile, every epoch, evaluation and checkpoints), `first_epoch_s`.
The paths run alternately `--rounds` times. Generated data: balanced, `--classes` classes, uniform random pixels
(the content does not change the cost).
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from ltjax import host_memory  # noqa: E402

host_memory.configure()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import emit  # noqa: E402


def write_arrays(path, images, classes, side, channels, seed=0):
  rng = np.random.RandomState(seed)
  y = np.arange(images) % classes
  x = rng.randint(0, 256, (images, side, side, channels)).astype(np.uint8)
  yt = np.arange(max(classes, images // 5)) % classes
  xt = rng.randint(0, 256, (len(yt), side, side, channels)).astype(np.uint8)
  np.savez(path, x_train=x, y_train=y, x_test=xt, y_test=yt)


def one_run(a, path, arrays, workdir):
  from ltjax import config as config_lib
  from ltjax.train import loop
  c = config_lib.default()
  c.data.name, c.data.path, c.data.imb_type = "npz", arrays, "none"
  c.data.pipeline = path
  c.model.name, c.model.dtype = a.model, a.dtype
  c.optim.schedule = "arb_cosine"
  c.train.epochs, c.train.batch_size = a.epochs, a.batch
  c.train.steps_per_call = a.steps_per_call
  c.train.progress_bar = False
  c.train.eval_every = 1 if a.eval else 0
  c.train.select_on = "test" if a.eval else "last"
  c.train.checkpoint_every = a.epochs
  c.data.drop_remainder = True
  spe = a.images // a.batch
  c.train.log_every = spe
  t0 = time.perf_counter()
  loop.train_and_evaluate(c, workdir)
  wall = time.perf_counter() - t0
  rows = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  rates = [r["images_per_sec"] for r in rows if r["split"] == "train"]
  later = rates[1:]
  return {"path": path, "loop_img_s": float(np.mean(later)) if later else None,
          "loop_img_s_per_epoch": [round(r, 1) for r in later], "first_epoch_s": round(spe * a.batch / rates[0], 2),
          "wall_s": round(wall, 2)}


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--model", default="resnet32")
  p.add_argument("--images", type=int, default=2048)
  p.add_argument("--classes", type=int, default=100)
  p.add_argument("--side", type=int, default=32)
  p.add_argument("--channels", type=int, default=3)
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--epochs", type=int, default=3)
  p.add_argument("--dtype", default="float32")
  p.add_argument("--steps-per-call", type=int, default=0)
  p.add_argument("--eval", action="store_true", help="evaluate every epoch (on the path's evaluation)")
  p.add_argument("--paths", nargs="+", default=["host", "device"])
  p.add_argument("--rounds", type=int, default=1)
  p.add_argument("--out", default="")
  a = p.parse_args()
  tmp = tempfile.mkdtemp(prefix="ltjax_paths_")
  arrays = os.path.join(tmp, "arrays.npz")
  write_arrays(arrays, a.images, a.classes, a.side, a.channels)
  for r in range(a.rounds):
    for path in a.paths:
      res = one_run(a, path, arrays, os.path.join(tmp, f"{path}_{r}"))
      res.update(round=r, model=a.model, images=a.images, side=a.side, batch=a.batch, epochs=a.epochs,
                 eval=a.eval, backend=jax.default_backend(), devices=jax.device_count(),
                 host=platform.processor() or platform.machine(), jax=jax.__version__)
      emit(res, a.out)


if __name__ == "__main__":
  main()
