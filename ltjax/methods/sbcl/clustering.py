"""SBCL building blocks: subclass counts, per-class cosine k-means, class-wise temperatures.

Reference: SBCL (Hou et al., "Subclass-balancing Contrastive Learning for Long-tailed Recognition", ICCV 2023),
official `SimCLR/main.py`: the subclass counts, `cluster` (per-class k-means) and the class-wise temperatures of the
default "Rank" mode. The contrastive losses that use them are `ltjax.losses.contrastive`.

Everything except `subclass_counts` / `subclass_layout` / `reference_init_indices` / `cluster` (host helpers) is a
pure jnp function that runs under `jax.jit`, with arrays sharded along their first axis over a ('data',) mesh; the
reductions are plain jnp ops (matmuls, `segment_sum`, `argmax`) so GSPMD partitions them.

Conventions
  * N training samples, D feature dim, C classes, S = Σ_c M_c subclasses in total (global layout: subclass ids of
    class c are `offset_c … offset_c + M_c − 1`, `offset_c = Σ_{c'<c} M_{c'}`; SBCL `SimCLR/main.py::cluster` "Global
    subclass id").
  * Contrastive losses take z [2B, d] = view 1 of all B images stacked above view 2 (anchor a = v·B + i, SBCL's losses),
  unit-norm rows; labels may be given per image ([B], tiled to both views) or per anchor ([2B]).
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from ltjax.losses import contrastive

# ----------------------------------------------------------------------------------------------------------------
# SBCL `SimCLR/main.py` Number of subclasses per class
# ----------------------------------------------------------------------------------------------------------------


def subclass_counts(class_counts: Sequence[int], cluster: int = 10) -> np.ndarray:
  """Per-class subclass counts M_c, int64 [C] (SBCL `SimCLR/main.py`).

    M_c = ⌊ n_c / max(n_min, L) ⌋, replaced by 1 when 0;  n_min = min_c n_c, L = `cluster` (`--cluster`: 10 in
    SimCLR/main.py, 20 in moco/main.py).

  CIFAR-10-LT r=0.01 → [100, 59, 35, 21, 12, 7, 4, 2, 1, 1] (242); CIFAR-100-LT r=0.01 → 1051 in total.
  Since max(n_min, L) ≥ n_min ≥ 1, the rule never gives more subclasses than samples; ValueError on non-positive
  counts or L < 1.
  """
  n = np.asarray(class_counts, dtype=np.int64)
  if n.ndim != 1 or n.size == 0:
    raise ValueError(f"class_counts must be a non-empty 1-D sequence, got shape {n.shape}")
  if np.any(n < 1):
    raise ValueError(f"every class needs at least one sample to be clustered; counts = {n.tolist()}")
  if int(cluster) < 1:
    raise ValueError(f"cluster (L, the target subclass size) must be >= 1, got {cluster}")
  m = n // max(int(n.min()), int(cluster))
  m = np.where(m == 0, 1, m)
  check_subclass_counts(n, m)
  return m.astype(np.int64)


def check_subclass_counts(class_counts: Sequence[int], sub_counts: Sequence[int]) -> None:
  """ValueError unless 1 <= M_c <= n_c for every class (k-means init draws M_c distinct points, SBCL
  `SimCLR/main.py::cluster`)."""
  n = np.asarray(class_counts, dtype=np.int64)
  m = np.asarray(sub_counts, dtype=np.int64)
  if n.shape != m.shape:
    raise ValueError(f"{m.size} subclass counts for {n.size} classes")
  if np.any(m < 1):
    raise ValueError(f"every class needs >= 1 subclass; subclass counts = {m.tolist()}")
  bad = np.nonzero(m > n)[0]
  if bad.size:
    c = int(bad[0])
    raise ValueError(f"class {c} asks for {int(m[c])} subclasses but has only {int(n[c])} samples (k-means "
                     f"initialises with M_c distinct points; classes {bad.tolist()} are affected)")


def subclass_layout(sub_counts: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
  """(sub_class [S] int32: the class of each global subclass, offsets [C] int32: first global id of each class)."""
  m = np.asarray(sub_counts, dtype=np.int64)
  offsets = np.concatenate([[0], np.cumsum(m)[:-1]]).astype(np.int32)
  sub_class = np.repeat(np.arange(m.size, dtype=np.int32), m)
  return sub_class, offsets


def reference_init_indices(labels: np.ndarray, sub_counts: Sequence[int], seed: Optional[int] = None) -> np.ndarray:
  """Host-side initialisation as the official code draws it (SBCL `SimCLR/main.py::cluster` step 1), int32 [S] of
  *global* indices.

  For each class c in order with M_c > 1: `np.random.choice(n_c, M_c, replace=False)` on the class block (numpy
  legacy RNG, `np.random.RandomState(seed)` ≡ `np.random.seed(seed)`), mapped to the class's sample indices in
  dataset order. Classes with M_c = 1 draw nothing (their single centre is irrelevant: local id 0) and get their
  first sample.
  """
  labels = np.asarray(labels)
  m = np.asarray(sub_counts, dtype=np.int64)
  rng = np.random.RandomState(seed)
  out = []
  for c, mc in enumerate(m):
    members = np.nonzero(labels == c)[0]
    if mc > 1:
      out.append(members[rng.choice(members.size, int(mc), replace=False)])
    else:
      out.append(members[:1])
  return np.concatenate(out).astype(np.int32)


# ----------------------------------------------------------------------------------------------------------------
# SBCL `SimCLR/main.py::cluster` Per-class cosine k-means, vectorised over classes
# ----------------------------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("sub_counts", "tol", "iter_limit"))
def kmeans_subclasses(features: jax.Array, labels: jax.Array, key: jax.Array, sub_counts: Tuple[int, ...],
                      init_indices: Optional[jax.Array] = None, tol: float = 1e-3,
                      iter_limit: int = 35) -> jax.Array:
  """Per-class cosine k-means for all classes at once (SBCL `SimCLR/main.py::cluster`); returns global subclass labels
  int32 [N].

  Args:
    features: [N, D] embeddings (the L2-normalised projection outputs; they are re-normalised here, which is a
      no-op for unit rows). May be sharded along N. Computed in float32.
    labels: [N] int class labels in [0, C); any other value (e.g. −1) marks a padding row, which takes part in
      nothing and gets label −1. Need not be class-sorted.
    key: PRNG key for the initialisation (when `init_indices` is None) and for re-seeding empty clusters.
    sub_counts: static tuple (M_0, …, M_{C−1}), see `subclass_counts`; M_c ≤ n_c is the caller's duty (checked
      by `cluster`).
    init_indices: optional [S] int global sample indices of the initial centres (e.g. `reference_init_indices`),
      in subclass order; entry s must be a sample of class sub_class[s], distinct within a class.
    tol, iter_limit: stopping rule (official `tol=1e-3`, `iter_limit=35`).

  Algorithm, for every class c independently (a class stops on its own; the loop runs while some class is
  active), with centres μ_k (k over the class's M_c subclasses):
    0. init: M_c distinct class-c points uniformly at random (a random permutation per class: sort the samples by
       (class, uniform key), take the first M_c of each class);
    1. assign  a_i = argmin_k 1 − cos(x_i, μ_k)  (= argmax of x̂_i·μ̂_k over the class's own centres; ties →
       lowest id); implemented as one [N, S] matmul with the other classes' centres masked out;
    2. μ_k^new = mean of the points assigned to k (not renormalised; `segment_sum`); an empty cluster gets one
       uniformly random point of its class;
    3. shift_c = Σ_k ‖μ_k^new − μ_k^old‖₂; the class stops when shift_c² < tol or after `iter_limit` updates;
    4. the result is the assignment of step 1 of the last iteration (made before the final centre update).
  Classes with M_c = 1 are never active: every sample gets local id 0.

  Sharding/determinism: the assignment is row-wise and the centre sums are `segment_sum`s over N, which GSPMD
  turns into per-shard partial sums + all-reduce. 1 and 8 devices therefore agree exactly except when float32
  reassociation of a centre sum flips a near-tie (a point equidistant to two centres to ~1e-7) or a shift² within
  ulps of `tol`.
  """
  m = np.asarray(sub_counts, dtype=np.int64)
  C, S = int(m.size), int(m.sum())
  sub_class_np, offsets_np = subclass_layout(m)
  sub_class = jnp.asarray(sub_class_np)
  offsets = jnp.asarray(offsets_np)
  local = jnp.asarray(np.arange(S, dtype=np.int32) - offsets_np[sub_class_np])

  x = contrastive.l2_normalize(features.astype(jnp.float32))
  labels = labels.astype(jnp.int32)
  valid = (labels >= 0) & (labels < C)
  lab = jnp.where(valid, labels, C)                                   # padding → class C (sorts last, dropped)
  n_c = jax.ops.segment_sum(valid.astype(jnp.int32), lab, num_segments=C + 1)[:C]
  starts = jnp.cumsum(n_c) - n_c
  k_init, k_empty = jax.random.split(key)

  # Random within-class order: sort by (class, uniform). Used for the init and for empty-cluster re-seeding.
  u = jax.random.uniform(k_init, lab.shape)
  order = jnp.lexsort((u, lab)).astype(jnp.int32)                     # [N] sample indices, class-major
  if init_indices is None:
    init_idx = order[starts[sub_class] + local]                       # first M_c of each class's permutation
  else:
    init_idx = jnp.asarray(init_indices, jnp.int32)
  centres0 = x[init_idx]                                              # [S, D]

  same_class = sub_class[None, :] == lab[:, None]                     # [N, S] mask (padding rows: all False)
  seg = lambda a: jnp.where(valid, a, S)                              # padding rows → dropped segment S

  def assign(centres):
    sims = x @ contrastive.l2_normalize(centres).T                                         # [N, S] cosine similarities
    sims = jnp.where(same_class, sims, -jnp.inf)
    return jnp.argmax(sims, axis=1).astype(jnp.int32)                 # global ids (first max on ties)

  def update(centres, a, it):
    sums = jax.ops.segment_sum(x, seg(a), num_segments=S + 1)[:S]     # [S, D]
    cnt = jax.ops.segment_sum(valid.astype(jnp.float32), seg(a), num_segments=S + 1)[:S]
    ur = jax.random.uniform(jax.random.fold_in(k_empty, it), (S,))
    nc_s = n_c[sub_class]
    pick = starts[sub_class] + jnp.minimum((ur * nc_s).astype(jnp.int32), nc_s - 1)
    empty_pt = x[order[pick]]                                         # a uniformly random point of the class
    return jnp.where((cnt > 0)[:, None], sums / jnp.maximum(cnt, 1.0)[:, None], empty_pt)

  def body(state):
    centres, a_out, done, it = state
    a = assign(centres)
    new = update(centres, a, it)
    shift = jax.ops.segment_sum(jnp.linalg.norm(new - centres, axis=1), sub_class, num_segments=C)
    active = ~done
    a_out = jnp.where(active[lab.clip(0, C - 1)] & valid, a, a_out)
    centres = jnp.where(active[sub_class][:, None], new, centres)
    done = done | (shift * shift < tol)
    return centres, a_out, done, it + 1

  def cond(state):
    _, _, done, it = state
    return (it < iter_limit) & ~jnp.all(done)

  a0 = jnp.where(valid, offsets[lab.clip(0, C - 1)], -1).astype(jnp.int32)   # local id 0 (M_c = 1 classes)
  done0 = jnp.asarray(m <= 1)
  _, a_out, _, _ = jax.lax.while_loop(cond, body, (centres0, a0, done0, jnp.int32(0)))
  return jnp.where(valid, a_out, -1)


def cluster(features, labels, sub_counts: Sequence[int], key, *, mesh: Optional[jax.sharding.Mesh] = None,
            init_indices=None, tol: float = 1e-3, iter_limit: int = 35) -> np.ndarray:
  """Host wrapper of `kmeans_subclasses` (SBCL `SimCLR/main.py::cluster`): checks M_c ≤ n_c, pads N to a multiple of the
  mesh size
  (padding label −1), shards features/labels along N over `mesh` ('data' axis), returns numpy int32 [N]."""
  features = np.asarray(features, np.float32)
  labels = np.asarray(labels, np.int32)
  m = tuple(int(v) for v in np.asarray(sub_counts))
  n_c = np.bincount(labels[labels >= 0], minlength=len(m))[:len(m)]
  check_subclass_counts(n_c, m)
  N = labels.shape[0]
  ndev = 1 if mesh is None else int(mesh.devices.size)
  pad = (-N) % ndev
  f = np.concatenate([features, np.zeros((pad, features.shape[1]), np.float32)])
  lab = np.concatenate([labels, -np.ones((pad,), np.int32)])
  if mesh is not None:
    shard = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    f, lab = jax.device_put(f, shard), jax.device_put(lab, shard)
  out = kmeans_subclasses(f, lab, key, m, init_indices=None if init_indices is None else jnp.asarray(init_indices),
                          tol=tol, iter_limit=iter_limit)
  return np.asarray(out)[:N]


# ----------------------------------------------------------------------------------------------------------------
# SBCL `SimCLR/main.py` Class-wise temperature
# ----------------------------------------------------------------------------------------------------------------


def class_temperatures(features: jax.Array, labels: jax.Array, sub_counts, num_classes: int,
                       temperature: float = 0.1, eps: float = 1e-6) -> jax.Array:
  """τ_c, float32 [C] (SBCL `SimCLR/main.py`, "Rank" mode). Jittable; labels outside [0, C) are padding and ignored.

    μ_c = mean_{i∈c} x_i;  d_c = mean_{i∈c} ‖x_i − μ_c + ε·1‖₂ / ln(n_c + 10)   (ε = 1e-6, PyTorch pairwise eps)
    d ← clip(d, P20(d), P80(d))     (percentiles over classes, linear interpolation)
    τ_c = T · d_c / mean_c(d_c)     (mean of the clipped d; T = --temperature = 0.1)
    τ_c = T where M_c = 1.
  features [N, D] are the same (normalised) embeddings the clustering uses; every class must be non-empty.
  """
  C = int(num_classes)
  x = features.astype(jnp.float32)
  labels = labels.astype(jnp.int32)
  valid = (labels >= 0) & (labels < C)
  lab = jnp.where(valid, labels, C)
  n = jax.ops.segment_sum(valid.astype(jnp.float32), lab, num_segments=C + 1)[:C]
  mu = jax.ops.segment_sum(x, lab, num_segments=C + 1)[:C] / n[:, None]
  dist = jnp.linalg.norm(x - mu[lab.clip(0, C - 1)] + eps, axis=1)
  d = jax.ops.segment_sum(jnp.where(valid, dist, 0.0), lab, num_segments=C + 1)[:C] / n
  d = d / jnp.log(n + 10.0)
  lo, hi = jnp.percentile(d, 20.0), jnp.percentile(d, 80.0)
  d = jnp.clip(d, lo, hi)
  tau = temperature * d / jnp.mean(d)
  tau = jnp.where(jnp.asarray(sub_counts) <= 1, temperature, tau)
  return tau.astype(jnp.float32)
