"""MoCo v2 building blocks (imbalanced-semi-self `pretrain_moco.py`, SBCL `moco/moco.py`): pure functions, jittable.

Conventions
  * B = global batch, K = queue length, d = embedding dimension. The queue is stored row-major, `queue [K, d]`
    (the official code stores its transpose `[d, K]`; entry j is the official column j).
  * Embeddings are ℓ2-normalised rows (`l2_normalize`, eps 1e-12 as `F.normalize`).

Per MoCo step (official order, `moco/builder.py`):
  1. θ_k ← m·θ_k + (1 − m)·θ_q                                   `momentum_update` (before the keys are computed)
  2. q = normalize(f_q(x_q))                                      query encoder, with gradient
  3. k = normalize(f_k(x_k)) on a shuffled batch, unshuffled      `shuffled_apply` (shuffle-BN, below), no gradient
  4. logits = [q·k, q·queue_1 … q·queue_K] / T, target 0          `infonce_logits`, `infonce_loss`
  5. queue[ptr : ptr + B] ← k,  ptr ← (ptr + B) mod K             `enqueue` (needs K % B == 0)

Shuffle-BN on a mesh (`grouped_apply`, `shuffled_apply`). Upstream runs G DDP processes with plain (not
synchronised) BatchNorm, so every BN layer normalises with the statistics of one GPU's sub-batch of B/G images. The
query of image i is normalised within the sub-batch i was loaded in; its key is computed after a global random
permutation of the batch (`_batch_shuffle_ddp`), so it is normalised within a *different*, random sub-batch, and
the model cannot use shared batch statistics to find the positive (MoCo imbalanced-semi-self `train_semi.py`). Here the
number of BN groups G is a
config value independent of the device count: the batch is reshaped to [G, B/G, ...] and the encoder is vmapped
over the groups, so each group's BN statistics span exactly its B/G images whatever the mesh (GSPMD splits the
group axis over devices when it can, which with G = #devices is exactly DDP's layout). Keys: x_k[π] is split into
the same G groups, encoded, and un-permuted with argsort(π), π a uniform permutation drawn from the step's key —
a pure function of (seed, step), so 1 and 8 devices compute the same step. As upstream, a key may by chance land
in its query's group (probability ≈ 1/G); with G = 1 both encoders see the whole batch (no shuffle-BN effect).
The running statistics returned are the mean over the groups of the per-group updates (upstream keeps GPU 0's,
broadcast by DDP; see docs/DEVIATIONS.md).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

import jax
import jax.numpy as jnp

from ltjax.losses.contrastive import l2_normalize

PyTree = Any


def momentum_update(key_params: PyTree, query_params: PyTree, momentum: float) -> PyTree:
  """θ_k ← m·θ_k + (1 − m)·θ_q leaf by leaf (no gradient flows into θ_q through this)."""
  q = jax.lax.stop_gradient(query_params)
  return jax.tree.map(lambda k, p: momentum * k + (1.0 - momentum) * p, key_params, q)


def init_queue(key: jax.Array, size: int, dim: int) -> jax.Array:
  """Queue [K, d] of unit-norm Gaussian rows (upstream: `randn(d, K)` normalised along d)."""
  return l2_normalize(jax.random.normal(key, (size, dim), jnp.float32))


def enqueue(queue: jax.Array, ptr: jax.Array, values: jax.Array) -> Tuple[jax.Array, jax.Array]:
  """FIFO write: queue[ptr : ptr + B] ← values, ptr ← (ptr + B) mod K.

  queue [K, ...] (keys [K, d] or a label queue [K]), ptr int32 scalar, values [B, ...] with K % B == 0 (checked
  statically), so a write never wraps inside a batch and ptr is always a multiple of B.
  """
  K, B = queue.shape[0], values.shape[0]
  if K % B:
    raise ValueError(f"queue size {K} is not a multiple of the global batch {B} (MoCo requires K % B == 0)")
  # Every start index int32: a Python 0 would be int64 under jax_enable_x64, and dynamic_update_slice needs one dtype.
  start = (jnp.asarray(ptr, jnp.int32),) + (jnp.zeros([], jnp.int32),) * (queue.ndim - 1)
  new = jax.lax.dynamic_update_slice(queue, values.astype(queue.dtype), start)
  return new, ((ptr + B) % K).astype(jnp.int32)


def grouped_apply(apply_fn: Callable, variables: Dict[str, PyTree], x: jax.Array, groups: int,
                  ) -> Tuple[Dict[str, jax.Array], PyTree]:
  """Train-mode forward with BatchNorm statistics per group of B/G consecutive examples (one DDP process each).

  x [B, ...] → x.reshape(G, B/G, ...), `apply_fn(variables, x_g, train=True, mutable=['batch_stats'])` vmapped over
  g (the variables are shared). Returns (outputs with the group axis merged back, [B, ...]; new batch_stats = mean
  over g of the per-group running-statistics updates).
  """
  B = x.shape[0]
  if B % groups:
    raise ValueError(f"batch {B} is not divisible into {groups} BatchNorm groups")
  xg = x.reshape((groups, B // groups) + x.shape[1:])

  def one(xi):
    return apply_fn(variables, xi, train=True, mutable=["batch_stats"])

  out, new = jax.vmap(one)(xg)
  out = jax.tree.map(lambda o: o.reshape((B,) + o.shape[2:]), out)
  stats = jax.tree.map(lambda s: jnp.mean(s, axis=0), new["batch_stats"])
  return out, stats


def shuffled_apply(apply_fn: Callable, variables: Dict[str, PyTree], x: jax.Array, groups: int, key: jax.Array,
                   ) -> Tuple[Dict[str, jax.Array], PyTree]:
  """Shuffle-BN forward (`_batch_shuffle_ddp` → encoder → `_batch_unshuffle_ddp`): π = permutation(key, B);
  out = grouped_apply(x[π])[argsort(π)], so row i of the output belongs to example i but was normalised with the
  statistics of the random group π placed it in."""
  perm = jax.random.permutation(key, x.shape[0])
  out, stats = grouped_apply(apply_fn, variables, x[perm], groups)
  inv = jnp.argsort(perm)
  return jax.tree.map(lambda o: o[inv], out), stats
