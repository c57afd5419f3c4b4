"""The compiled train and eval steps: pure functions over the TrainState, jitted with explicit shardings over a
1-D ('data',) mesh of all devices. The state is replicated, batches are split along their first axis; BatchNorm
statistics are reduced over the global batch, so 1 device and N devices compute the same step.
"""

from __future__ import annotations

import re
from typing import Callable, Dict

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from ltjax.methods.base import Method
from ltjax.train import optim
from ltjax.train.state import TrainState


def make_mesh(num_devices: int = 0) -> Mesh:
  """A ('data',) mesh over the first `num_devices` devices (0 = all devices of all processes)."""
  devices = jax.devices()
  if num_devices:
    if num_devices > len(devices):
      raise ValueError(f"config.mesh.num_devices = {num_devices} but only {len(devices)} devices exist")
    devices = devices[:num_devices]
  return Mesh(np.asarray(devices), ("data",), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh, stacked: bool = False) -> NamedSharding:
  """Batches split along 'data' on their first axis; `stacked`: on their second (K stacked batches [K, B, ...])."""
  return NamedSharding(mesh, P(None, "data") if stacked else P("data"))


def to_global(batch: Dict[str, np.ndarray], mesh: Mesh, stacked: bool = False) -> Dict[str, jax.Array]:
  """This process's slice of a global batch → global arrays sharded along 'data'. `stacked`: K batches, leaves
  [K, B_local, ...] → [K, B, ...] (the input of make_multi_train_step)."""
  sharding = data_sharded(mesh, stacked)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


AUTO_STEPS_PER_CALL = 4
# A step whose images hold fewer values than this (digits at batch 64: 12,288) has temporaries small enough for
# glibc to keep between calls; grouping would only add a compile.
AUTO_MIN_VALUES = 1 << 16


def image_values(batch) -> int:
  """Values in the image leaves (ndim >= 3) of a batch: a dict of arrays or of shape structs."""
  return sum(int(np.prod(v.shape)) for v in batch.values() if len(v.shape) >= 3)


def steps_per_call(requested: int, values: int, backend: str) -> int:
  """Train steps per compiled call: `requested` (config.train.steps_per_call) when > 0; for 0 (auto),
  AUTO_STEPS_PER_CALL on CPU when one global step's images hold at least AUTO_MIN_VALUES values (`values`, see
  `image_values`), else 1 (GPU/TPU dispatch asynchronously and keep their buffers in a pool)."""
  if requested > 0:
    return requested
  return AUTO_STEPS_PER_CALL if backend == "cpu" and values >= AUTO_MIN_VALUES else 1


def trainable_mask(params, pattern: str):
  """Pytree of bools: True where the leaf's '/'-joined path (e.g. 'fc/kernel') matches the regex `pattern`
  ('' = all True)."""
  rx = re.compile(pattern) if pattern else None
  return optim.mask_by_path(lambda p: rx is None or bool(rx.search(p)))(params)


def inference_apply(apply_fn: Callable) -> Callable:
  """apply_fn that ignores `train=True`: the network runs in inference mode (BN with running statistics) and
  `mutable` collections come back unchanged — a frozen encoder in eval mode under a method's train-mode call."""

  def apply(variables, *args, train: bool = False, mutable=False, **kw):
    out = apply_fn(variables, *args, train=False, **kw)
    if not mutable:
      return out
    names = [mutable] if isinstance(mutable, str) else list(mutable)
    return out, {k: variables[k] for k in names if k in variables}

  return apply


def train_step_fn(method: Method, apply_fn: Callable, tx: optax.GradientTransformation, schedule: Callable,
                  trainable: str = "", frozen_bn: str = "train") -> Callable:
  """The pure, unjitted `step(state, batch, hparams) -> (state, metrics)` that make_train_step and
  make_multi_train_step compile.

  trainable: regex on parameter paths; the others are wrapped in stop_gradient (XLA then skips their backward
    pass; `tx` must also leave them unchanged, see `optim.sgd(frozen=...)`). '' = every parameter trains.
  frozen_bn: 'eval' (with `trainable`) runs the whole network in inference mode inside the loss."""
  if frozen_bn == "eval" and trainable:
    apply_fn = inference_apply(apply_fn)

  def train_step(state: TrainState, batch, hparams):
    rng = jax.random.fold_in(state.rng, state.step)

    def loss_fn(params):
      if trainable:
        mask = trainable_mask(params, trainable)
        params = jax.tree.map(lambda m, x: x if m else jax.lax.stop_gradient(x), mask, params)
      return method.loss(apply_fn, params, state.batch_stats, state.method_state, batch, hparams, rng)

    (loss, (batch_stats, method_state, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics, loss=loss, lr=schedule(state.step))
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state,
                              method_state=method_state)
    return new_state, metrics

  return train_step


def make_train_step(method: Method, apply_fn: Callable, tx: optax.GradientTransformation,
                    schedule: Callable, mesh: Mesh, trainable: str = "", frozen_bn: str = "train"):
  """Returns jitted `step(state, batch, hparams) -> (state, metrics)`; the input state's buffers are donated.
  Arguments as train_step_fn; batch leaves are [B, ...], sharded along 'data'."""
  rep, dat = replicated(mesh), data_sharded(mesh)
  return jax.jit(train_step_fn(method, apply_fn, tx, schedule, trainable, frozen_bn),
                 in_shardings=(rep, dat, rep), out_shardings=(rep, rep), donate_argnums=(0,))


def _masked_scan(step: Callable) -> Callable:
  """`run(state, xs, active) -> (state, metrics [K])`: a lax.scan of `step(state, x) -> (state, metrics)` over the
  K leading entries of `xs` (None: nothing per step), step k running iff active[k] (a lax.cond: a skipped step costs
  nothing, leaves the state untouched and reports zero metrics)."""

  def run(state, xs, active):
    def body(state, inp):
      x, on = inp

      def skip(state, x):
        shapes = jax.eval_shape(step, state, x)[1]
        return state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

      return jax.lax.cond(on, step, skip, state, x)

    return jax.lax.scan(body, state, (xs, active))

  return run


def make_multi_train_step(method: Method, apply_fn: Callable, tx: optax.GradientTransformation,
                          schedule: Callable, mesh: Mesh, trainable: str = "", frozen_bn: str = "train"):
  """Returns jitted `steps(state, batches, active, hparams) -> (state, metrics)`: K train steps in one call.

    batches: leaves [K, B, ...] (K steps' global batches, sharded along 'data' on axis 1);
    active:  bool [K]; step k runs iff active[k] (a lax.cond, so a skipped step costs nothing and leaves the
             state untouched: the loop pads a short last group of an epoch with inactive steps);
    metrics: leaves [K], zero where inactive.

  A lax.scan of the single step, donated state. Why: XLA:CPU allocates an execution's temporaries afresh on every
  call and the kernel zero-fills them (a ResNet-32 step at batch 128: 452 MB, a quarter of the step on 2 cores);
  K steps per call allocate them once (docs/BENCHMARKS.md). Every step of a run goes through the same loop body,
  whatever the grouping, so a resumed run is bitwise equal to an uninterrupted one."""
  one = train_step_fn(method, apply_fn, tx, schedule, trainable, frozen_bn)

  def steps(state: TrainState, batches, active, hparams):
    return _masked_scan(lambda s, b: one(s, b, hparams))(state, batches, active)

  rep, stacked = replicated(mesh), data_sharded(mesh, stacked=True)
  return jax.jit(steps, in_shardings=(rep, stacked, rep, rep), out_shardings=(rep, rep), donate_argnums=(0,))


def make_device_train_step(method: Method, apply_fn: Callable, tx: optax.GradientTransformation,
                           schedule: Callable, mesh: Mesh, trainable: str = "", frozen_bn: str = "train", *,
                           feed, batch_size: int, per_call: int = 1):
  """The train step of the device data path (`ltjax.data.device`): the batch is gathered and augmented inside.

  per_call == 1: jitted `step(state, data, hparams) -> (state, metrics)`;
  per_call > 1:  jitted `steps(state, data, active, hparams) -> (state, metrics [K])`, as make_multi_train_step
                 but with nothing stacked per step: step k builds its batch from the state's step counter.
  data = `feed.arrays(epoch)` (replicated: the split and the epoch's order); `feed.make_batch(data, state.step,
  batch_size)` gives the method's batch, sharded along 'data'. Other arguments as train_step_fn."""
  one = train_step_fn(method, apply_fn, tx, schedule, trainable, frozen_bn)

  def fed(state: TrainState, data, hparams):
    return one(state, feed.make_batch(data, state.step, batch_size), hparams)

  rep = replicated(mesh)
  if per_call == 1:
    return jax.jit(fed, in_shardings=(rep, rep, rep), out_shardings=(rep, rep), donate_argnums=(0,))

  def steps(state: TrainState, data, active, hparams):
    return _masked_scan(lambda s, _: fed(s, data, hparams))(state, None, active)

  return jax.jit(steps, in_shardings=(rep, rep, rep, rep), out_shardings=(rep, rep), donate_argnums=(0,))


def _eval_logits(method: Method, out, state: TrainState):
  return method.eval_logits(out, state.method_state, state.params)


def eval_step_fn(method: Method, apply_fn: Callable, with_features: bool = False) -> Callable:
  """The pure `step(state, batch) -> {'logits': [B, C] float32[, 'features': [B, D] float32]}` (inference mode,
  the method's test-time logits)."""

  def eval_step(state: TrainState, batch):
    out = apply_fn({"params": state.params, "batch_stats": state.batch_stats}, batch["image"], train=False)
    res = {"logits": _eval_logits(method, out, state).astype(jnp.float32)}
    if with_features:
      res["features"] = out["features"].astype(jnp.float32)
    return res

  return eval_step


def make_eval_step(method: Method, apply_fn: Callable, mesh: Mesh, with_features: bool = False):
  """Returns jitted `step(state, batch) -> {'logits': [B, C] float32[, 'features': [B, D] float32]}`."""
  return jax.jit(eval_step_fn(method, apply_fn, with_features), in_shardings=(replicated(mesh), data_sharded(mesh)),
                 out_shardings=data_sharded(mesh))
