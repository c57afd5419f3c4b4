"""SBCL's queue-based ImageNet-LT losses (SBCL `moco/loss.py`): pure jnp functions.

Inputs shared by all of them
  logits [B, 1 + K]: row i = [q_i·k_i⁺, q_i·u_1, …, q_i·u_K], NOT divided by a temperature (SBCL `moco/moco.py`; the
  losses
    divide). Column 0 is always a positive.
  labels [B] (class y_i), sub_labels [B] (global subclass k_i) of the anchors.
  queue_labels [K], queue_sub_labels [K]: the label queues' contents BEFORE this batch is enqueued; entries never
    written hold −1, which equals no real label.

Phase 1, KCL (`KCL(K, k=6, temperature=0.07)`):
  Pos_i = {0} ∪ S_i, S_i = k indices drawn uniformly WITH replacement among the queue entries j with
  queue_labels_j = y_i (none when there are none; duplicates merged), offset by 1 into the logit row;
  L = −mean_i (1/|Pos_i|) Σ_{j∈Pos_i} log softmax(ℓ_i/T)_j,  softmax over all 1 + K columns.
Phase 2, SBCL with queue (`SupConLoss_rank(K, temperature=0.07)`, ranking temperature 0.12, γ = 0.2):
  P1(i) = {0} ∪ {1+j : queue_sub_j = k_i}
  L1 = −mean_i mean_{j∈P1(i)} log softmax(ℓ_i/T)_j
  N2(i) = {0} ∪ {1+j : queue_sub_j ≠ k_i},  P2(i) = {0} ∪ {1+j : queue_y_j = y_i, queue_sub_j ≠ k_i}
  L2 = −mean_i mean_{j∈P2(i)} [ ℓ_ij/T_r − log Σ_{j'∈N2(i)} exp(ℓ_ij'/T_r) ]
  L = L1 + γ·L2
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _with_positive(mask_queue: jax.Array) -> jax.Array:
  """[B, K] queue mask → [B, 1 + K] with column 0 (the positive key) set."""
  return jnp.concatenate([jnp.ones((mask_queue.shape[0], 1), bool), mask_queue], axis=1)


def multi_positive_nce(logits: jax.Array, positives: jax.Array, temperature: float) -> jax.Array:
  """−mean_i (1/|P_i|) Σ_{j∈P_i} log softmax(ℓ_i/T)_j, softmax over every column; positives [B, 1+K] bool with
  at least one True per row (column 0 always is in the SBCL losses). Scalar."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32) / temperature, axis=1)
  npos = jnp.sum(positives, axis=1)
  return -jnp.mean(jnp.sum(jnp.where(positives, logp, 0.0), axis=1) / npos)


def kcl_positives(labels: jax.Array, queue_labels: jax.Array, key: jax.Array, k: int = 6) -> jax.Array:
  """Pos mask [B, 1 + K] of KCL: column 0, plus k draws with replacement, each uniform over the queue entries of the
  anchor's class (the r-th such entry, r ~ U{0 … n_i − 1}, found through a running count); anchors whose class is
  absent from the queue get column 0 only. Duplicated draws set the same column once. k = 0 is the official KCL's
  "no sampling": every queue entry of the anchor's class is a positive."""
  same = queue_labels[None, :] == labels[:, None]                       # [B, K]
  if k == 0:
    return _with_positive(same)
  n = jnp.sum(same, axis=1)                                             # [B]
  csum = jnp.cumsum(same.astype(jnp.int32), axis=1)                     # [B, K]
  u = jax.random.uniform(key, (k, labels.shape[0]))
  r = jnp.minimum(jnp.floor(u * n[None, :]).astype(jnp.int32), jnp.maximum(n - 1, 0)[None, :])   # [k, B]
  B, K = same.shape
  hit = jnp.zeros((B, K), bool)
  for t in range(k):  # k small: one [B, K] comparison per draw instead of a [k, B, K] tensor
    # index of the (r+1)-th same-class entry = number of positions whose running count is <= r
    idx = jnp.sum(csum <= r[t][:, None], axis=1)                        # [B]
    hit = hit.at[jnp.arange(B), jnp.minimum(idx, K - 1)].set(True)
  hit = hit & (n > 0)[:, None]
  return _with_positive(hit)


def kcl_loss(logits: jax.Array, labels: jax.Array, queue_labels: jax.Array, key: jax.Array, k: int = 6,
             temperature: float = 0.07) -> jax.Array:
  """KCL (phase 1, SBCL `moco/loss.py`), scalar: multi_positive_nce(ℓ, kcl_positives(y, queue_y, key, k), T)."""
  pos = jax.lax.stop_gradient(kcl_positives(labels, queue_labels, key, k))
  return multi_positive_nce(logits, pos, temperature)


def sbcl_queue_loss(logits: jax.Array, labels: jax.Array, sub_labels: jax.Array, queue_labels: jax.Array,
                    queue_sub_labels: jax.Array, temperature: float = 0.07, rank_temperature: float = 0.12,
                    gamma: float = 0.2) -> jax.Array:
  """SBCL queue loss (phase 2, SBCL `moco/loss.py`), scalar: L1 + γ·L2 as in the module docstring (no class
  temperatures)."""
  logits = logits.astype(jnp.float32)
  same_sub = queue_sub_labels[None, :] == sub_labels[:, None]           # [B, K]
  same_cls = queue_labels[None, :] == labels[:, None]
  p1 = _with_positive(same_sub)
  l1 = multi_positive_nce(logits, p1, temperature)
  n2 = _with_positive(~same_sub)
  p2 = _with_positive(same_cls & ~same_sub)
  z = logits / rank_temperature
  lse = jax.nn.logsumexp(jnp.where(n2, z, -jnp.inf), axis=1)
  l2 = -jnp.mean(jnp.sum(jnp.where(p2, z, 0.0), axis=1) / jnp.sum(p2, axis=1) - lse)
  return l1 + gamma * l2
