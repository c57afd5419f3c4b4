"""Shared by the benchmark scripts: the real ltjax train step on synthetic data, and JSON-line output."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402


def build_step(model="resnet32", batch=128, classes=100, size=32, loss="ce", dtype="float32", conv=None,
               batches_per_epoch=8, steps_per_call=1):
  """The trainer's own pieces (method, model, SGD, jitted sharded step) on random CIFAR-shaped data.

  Returns (train_step, state, train_input, mesh, hparams); `conv` overrides the model's convolution class;
  steps_per_call > 1 returns the trainer's K-steps-per-call step, `(state, batches [K, B, ...], active [K],
  hparams)`.
  """
  from ltjax import config as config_lib, losses, methods
  from ltjax.data import pipeline
  from ltjax.data.dataset import Dataset, Split
  from ltjax.data.stats import ClassStats
  from ltjax.models import create_model
  from ltjax.train import optim, run as run_lib, step as step_lib

  cfg = config_lib.default()
  cfg.model.name, cfg.model.dtype, cfg.loss.name = model, dtype, loss
  cfg.train.batch_size = batch
  n = batch * batches_per_epoch
  rng = np.random.RandomState(0)
  labels = (np.arange(n) % classes).astype(np.int32)
  images = rng.randint(0, 256, (n, size, size, 3)).astype(np.uint8)
  split = Split(images=images, labels=labels, indices=np.arange(n))
  data = Dataset(name="synthetic", num_classes=classes, train=split, test=split, val=None, mean=(0.5,) * 3,
                 std=(0.25,) * 3, crop_padding=4, flip=True)
  stats = ClassStats.from_labels(labels, classes)
  method = methods.REGISTRY["supervised"](cfg, data, stats)
  mesh = step_lib.make_mesh(0)
  batches = pipeline.Batches(n, batch, mesh.devices.size, drop_remainder=True)
  train_input = pipeline.TrainInput(split, batches, seed=0, mean=data.mean, std=data.std, crop_padding=4, flip=True)
  kw = {} if conv is None else {"conv": conv}
  net = create_model(model, classes, head=losses.head_for(loss), dtype=dtype, **kw)
  schedule = optim.epoch_schedule(np.full([10], 0.1), batches.steps_per_epoch)
  tx = optim.sgd(schedule, momentum=0.9, weight_decay=5e-4)
  run = run_lib.Run(cfg, data, stats, method, net, mesh, train_input, schedule, tx)
  state = run_lib.create_state(run, 0)
  make = step_lib.make_train_step if steps_per_call == 1 else step_lib.make_multi_train_step
  train_step = make(method, net.apply, tx, schedule, mesh)
  return train_step, state, train_input, mesh, method.epoch_hparams(0)


def emit(res: dict, out: str = "") -> None:
  """Print one JSON line, and append it to `out` when given."""
  line = json.dumps(res)
  print(line, flush=True)
  if out:
    with open(out, "a") as f:
      f.write(line + "\n")
