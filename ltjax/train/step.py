"""The compiled train and eval steps: pure functions over the TrainState, jitted with explicit shardings over a
1-D ('data',) mesh of all devices. The state is replicated, batches are split along their first axis; BatchNorm
statistics are reduced over the global batch, so 1 device and N devices compute the same step.
"""

from __future__ import annotations

import inspect
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


def data_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def to_global(batch: Dict[str, np.ndarray], mesh: Mesh) -> Dict[str, jax.Array]:
  """This process's slice of a global batch → global arrays sharded along 'data'."""
  sharding = data_sharded(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


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


def make_train_step(method: Method, apply_fn: Callable, tx: optax.GradientTransformation,
                    schedule: Callable, mesh: Mesh, trainable: str = "", frozen_bn: str = "train"):
  """Returns jitted `step(state, batch, hparams) -> (state, metrics)`; the input state's buffers are donated.

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

  rep, dat = replicated(mesh), data_sharded(mesh)
  return jax.jit(train_step, in_shardings=(rep, dat, rep), out_shardings=(rep, rep), donate_argnums=(0,))


def _eval_logits(method: Method, out, state: TrainState):
  """`method.eval_logits(out, method_state)`, plus `params=` for methods whose eval_logits takes it (a test-time
  adjustment computed from the current weights, RECORDS' prior)."""
  if "params" in inspect.signature(method.eval_logits).parameters:
    return method.eval_logits(out, state.method_state, params=state.params)
  return method.eval_logits(out, state.method_state)


def make_eval_step(method: Method, apply_fn: Callable, mesh: Mesh, with_features: bool = False):
  """Returns jitted `step(state, batch) -> {'logits': [B, C] float32[, 'features': [B, D] float32]}`."""

  def eval_step(state: TrainState, batch):
    out = apply_fn({"params": state.params, "batch_stats": state.batch_stats}, batch["image"], train=False)
    res = {"logits": _eval_logits(method, out, state).astype(jnp.float32)}
    if with_features:
      res["features"] = out["features"].astype(jnp.float32)
    return res

  return jax.jit(eval_step, in_shardings=(replicated(mesh), data_sharded(mesh)), out_shardings=data_sharded(mesh))
