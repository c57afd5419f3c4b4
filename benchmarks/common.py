"""Shared by the benchmark scripts: the real ltjax train step on synthetic data, and JSON-line output."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402


def build_step(model="resnet32", batch=128, classes=100, size=32, loss="ce", dtype="float32", conv=None,
               batches_per_epoch=8, steps_per_call=1):
  """The trainer's own pieces (method, model, SGD, jitted sharded step) on random CIFAR-shaped data, fed by
  `SyntheticInput` (no input pipeline, no TensorFlow: the step alone).

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
  train_input = SyntheticInput(split, batch, data.mean, data.std)
  kw = {} if conv is None else {"conv": conv}
  net = create_model(model, classes, head=losses.head_for(loss), dtype=dtype, **kw)
  schedule = optim.epoch_schedule(np.full([10], 0.1), batches.steps_per_epoch)
  tx = optim.sgd(schedule, momentum=0.9, weight_decay=5e-4)
  run = run_lib.Run(cfg, data, stats, method, net, mesh, train_input, schedule, tx)
  state = run_lib.create_state(run, 0)
  make = step_lib.make_train_step if steps_per_call == 1 else step_lib.make_multi_train_step
  train_step = make(method, net.apply, tx, schedule, mesh)
  return train_step, state, train_input, mesh, method.epoch_hparams(0)


class SyntheticInput:
  """Consecutive slices of the random split as normalised float32 batches {'image', 'label', 'index'}: the shapes
  and dtypes the trainer's input paths give a step, with no augmentation or pipeline cost."""
  on_device = False

  def __init__(self, split, batch, mean, std):
    self.split, self.batch = split, batch
    self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)

  def epoch(self, epoch, start_step=0):
    del epoch
    n = len(self.split.labels) // self.batch
    for s in range(start_step, n):
      rows = self.split.indices[s * self.batch:(s + 1) * self.batch]
      image = (self.split.images[rows].astype(np.float32) / 255.0 - self.mean) / self.std
      yield {"image": image, "label": self.split.labels[rows], "index": rows.astype(np.int64)}


def _jaxpr_flops(jaxpr) -> float:
  """2·MACs of every convolution and matrix product in a jaxpr, nested jaxprs (jit, custom_vjp, scan) included."""
  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "conv_general_dilated":
      rhs, out = eqn.invars[1].aval, eqn.outvars[0].aval
      dn = eqn.params["dimension_numbers"]
      k_spatial = [rhs.shape[d] for d in dn.rhs_spec[2:]]
      cin_per_group = rhs.shape[dn.rhs_spec[1]]
      total += 2.0 * np.prod(out.shape) * np.prod(k_spatial) * cin_per_group
    elif name == "dot_general":
      (lc, _), _ = eqn.params["dimension_numbers"]
      a = eqn.invars[0].aval
      contract = np.prod([a.shape[d] for d in lc]) if lc else 1
      total += 2.0 * np.prod(eqn.outvars[0].aval.shape) * contract
    for v in eqn.params.values():
      for sub in (v if isinstance(v, (list, tuple)) else [v]):
        inner = getattr(sub, "jaxpr", None)
        if inner is not None:
          total += _jaxpr_flops(inner if hasattr(inner, "eqns") else inner.jaxpr)
        elif hasattr(sub, "eqns"):
          total += _jaxpr_flops(sub)
  return float(total)


def model_flops(model: str, classes: int, size: int) -> float:
  """Model FLOPs of one training image: 3 × the forward pass's 2·MACs (convolutions and matrix products; the
  backward pass is counted as twice the forward, the usual convention for model-FLOP utilisation). The same count
  serves ltjax and the PyTorch reference (one architecture)."""
  import jax
  import jax.numpy as jnp
  from ltjax.models import create_model
  from ltjax.models import conv as conv_lib
  net = create_model(model, classes)
  x = jnp.zeros((1, size, size, 3), jnp.float32)
  old = os.environ.get(conv_lib.ENV_VAR)
  os.environ[conv_lib.ENV_VAR] = "native"  # plain XLA convolutions (the CPU kernels are custom calls, uncounted)
  try:
    variables = jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), x, train=False))
    fwd = jax.make_jaxpr(lambda v, x: net.apply(v, x, train=False))(variables, x)
  finally:
    if old is None:
      del os.environ[conv_lib.ENV_VAR]
    else:
      os.environ[conv_lib.ENV_VAR] = old
  return 3.0 * _jaxpr_flops(fwd.jaxpr)


def emit(res: dict, out: str = "") -> None:
  """Print one JSON line, and append it to `out` when given."""
  line = json.dumps(res)
  print(line, flush=True)
  if out:
    with open(out, "a") as f:
      f.write(line + "\n")
