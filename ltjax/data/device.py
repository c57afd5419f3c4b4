"""The device data path: an in-memory dataset lives on the accelerators, and each training batch is gathered and
augmented inside the compiled train step (no host pipeline, no host-to-device copy per step, no TensorFlow).

Placement.
* The training split (uint8 images [N, H, W, C], int32 labels [N]) is put on the devices once, **replicated**: an
  epoch's order is a random permutation (or a class-aware / resampled draw), so a device's share of any batch can be
  any rows of the split; with the table on every device the gather is local and needs no collective. The cost is the
  split's size per device (CIFAR-100-LT: 33 MB; all of CIFAR-10: 150 MB), nothing next to an accelerator's memory.
  Sharding the table over the data axis instead would turn every step's gather into an all-to-all.
* Each epoch's order (int32 [L]) is uploaded once per epoch, replicated (43 KB for CIFAR-100-LT).
* An evaluation split is padded to whole batches and laid out as [batches, B, H, W, C], **sharded** along B: each
  device holds exactly the rows it evaluates, evaluation runs over all batches in one compiled call (a `lax.map`),
  and no device holds the whole split.
* Several processes: every process computes the same order and puts the whole split on its own devices; the step's
  global batch is split over all devices as on the host path (process p's devices hold the slice p of every batch).

Per training step (global step t, S steps per epoch, global batch G, this step's batch B ≤ G):
  e = ⌊t / S⌋,  s = t mod S,  positions p = s·G + [0, B),  rows r = order_e[p]
  key_i = fold_in(fold_in(fold_in(PRNGKey(seed), SALT), e), p_i)
  batch = augment(images[r], key) ∪ {label: labels[r], index: r}
which is the host path's layout (the same `EpochOrder`, the same positions per step and per process, the last
partial batch kept unless drop_remainder): a resumed run at step t continues exactly, and 1 device computes what 8
do. The random draws of the augmentation differ from the host path's TF draws (same distributions;
docs/DEVIATIONS.md).
"""

from __future__ import annotations

from typing import Callable, Dict, Iterator, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ltjax.data import device_augment
from ltjax.data.dataset import Split
from ltjax.data.pipeline import Batches, EpochOrder

SALT = 0xDA7A  # separates the augmentation keys from the other uses of the run seed


PIPELINES = ("auto", "device", "host")


def choose(requested: str, method_paths, file_backed: bool) -> str:
  """The training data path, 'device' or 'host', for config.data.pipeline = `requested` ('auto' | 'device' |
  'host'), the paths the method's training views run on (`Method.pipelines(cfg)`) and whether the training split is
  read from files. 'auto' takes the device path wherever it can run: an in-memory split and views the method has as
  JAX ops. (Validation rejects 'device' where it cannot run, before this is asked.)"""
  if requested == "host" or file_backed or "device" not in tuple(method_paths):
    return "host"
  return "device"


def put_replicated(x: np.ndarray, mesh: Mesh) -> jax.Array:
  """A host array (the same on every process) → a global array replicated over the mesh."""
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, NamedSharding(mesh, P()), lambda idx: x[idx])


def put_stacked(x: np.ndarray, mesh: Mesh) -> jax.Array:
  """A host array [K, B, ...] (the same on every process) → a global array sharded along B (axis 1)."""
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, NamedSharding(mesh, P(None, "data")), lambda idx: x[idx])


def example_keys(seed: int, epoch: jax.Array, positions: jax.Array) -> jax.Array:
  """uint32 [B, 2]: one raw PRNG key per example, fold_in(fold_in(fold_in(PRNGKey(seed), SALT), epoch), position)."""
  base = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), SALT), epoch)
  return jax.vmap(lambda p: jax.random.fold_in(base, p))(positions)


class DeviceTrainInput:
  """The training split on the devices and the in-step batch builder (see the module docstring).

  `make_batch(data, step, batch_size)` runs inside jit: `data` = `arrays(epoch)` (images, labels and the epoch's
  order, replicated), `step` the state's step counter; it returns the method's batch {views…, label, index} sharded
  along 'data'. `groups(start, n, k)` lays an epoch's steps out in calls of k steps as the host path's
  `pipeline.group_steps` does. `epoch(e, start)` yields the same batches as host numpy dicts (for inspection).
  """

  on_device = True

  def __init__(self, split: Split, batches: Batches, mesh: Mesh, *, seed: int, order: EpochOrder,
               augment_fn: device_augment.AugmentFn):
    if split.file_backed:
      raise ValueError("the device data path needs an in-memory split (images), not a file-backed one")
    self.split, self.batches, self.mesh, self.seed, self.order = split, batches, mesh, seed, order
    self.augment_fn = augment_fn
    self._table: Optional[Dict[str, jax.Array]] = None
    self._order_cache: Tuple[Optional[int], Optional[jax.Array]] = (None, None)
    self._shapes: Dict[int, Dict[str, jax.ShapeDtypeStruct]] = {}

  @property
  def steps_per_epoch(self) -> int:
    return self.batches.steps_per_epoch

  @property
  def full_steps(self) -> int:
    """Steps of the full global batch size in an epoch (a kept short last batch comes after them)."""
    return self.batches.num_examples // self.batches.global_batch

  def arrays(self, epoch: int) -> Dict[str, jax.Array]:
    """{'images' uint8 [N, H, W, C], 'labels' int32 [N], 'order' int32 [L]}, replicated; the split is uploaded once,
    the order once per epoch."""
    if self._table is None:
      self._table = {"images": put_replicated(self.split.images, self.mesh),
                     "labels": put_replicated(self.split.labels.astype(np.int32), self.mesh)}
    cached_epoch, order = self._order_cache
    if cached_epoch != epoch:
      order = put_replicated(self.order(epoch).astype(np.int32), self.mesh)
      self._order_cache = (epoch, order)
    return dict(self._table, order=order)

  def make_batch(self, data: Dict[str, jax.Array], step: jax.Array, batch_size: int) -> Dict[str, jax.Array]:
    """Inside jit: the batch of global step `step` (int32 scalar) with `batch_size` examples (see module docstring)."""
    spe, g = self.steps_per_epoch, self.batches.global_batch
    epoch, s = step // spe, step % spe
    pos = s * g + jnp.arange(batch_size, dtype=jnp.int32)
    pos = jax.lax.with_sharding_constraint(pos, NamedSharding(self.mesh, P("data")))
    rows = data["order"][pos]
    out = self.augment_fn(data["images"][rows], example_keys(self.seed, epoch, pos))
    return dict(out, label=data["labels"][rows], index=rows)

  def batch_shapes(self, batch_size: int) -> Dict[str, jax.ShapeDtypeStruct]:
    """Shapes and dtypes of `make_batch`'s output, without running it (traced once per batch size)."""
    if batch_size not in self._shapes:
      self._shapes[batch_size] = self._trace_shapes(batch_size)
    return self._shapes[batch_size]

  def _trace_shapes(self, batch_size: int) -> Dict[str, jax.ShapeDtypeStruct]:
    dummy = {"images": jax.ShapeDtypeStruct(self.split.images.shape, jnp.uint8),
             "labels": jax.ShapeDtypeStruct(self.split.labels.shape, jnp.int32),
             "order": jax.ShapeDtypeStruct((self.batches.num_examples,), jnp.int32)}
    return jax.eval_shape(lambda d, t: self.make_batch(d, t, batch_size), dummy, jax.ShapeDtypeStruct((), jnp.int32))

  def groups(self, start: int, n: int, k: int) -> Iterator[Tuple[int, int]]:
    """The calls that run steps [start, start + n) of an epoch, k steps per call: (batch size, steps in the call).
    As `pipeline.group_steps`: groups start at `start` and every k steps after it, end early at the n-th step, and a
    short last batch (another shape) gets a call of its own."""
    end = min(start + n, self.steps_per_epoch)
    s = start
    while s < end:
      if s < self.full_steps:
        count = min(k, end - s, self.full_steps - s)
        yield self.batches.global_batch, count
      else:
        count = 1
        yield self.batches.batch_size(s), count
      s += count

  def epoch(self, epoch: int, start_step: int = 0) -> Iterator[Dict[str, np.ndarray]]:
    """The epoch's batches from `start_step` on, built on the devices and copied to the host (global batches, not
    per-process slices): what the train step sees. For inspection and tests; training never copies them."""
    data = self.arrays(epoch)
    spe = self.steps_per_epoch
    fns: Dict[int, Callable] = {}
    for s in range(start_step, spe):
      b = self.batches.batch_size(s)
      if b not in fns:
        fns[b] = jax.jit(lambda d, t, b=b: self.make_batch(d, t, b))
      out = fns[b](data, jnp.asarray(epoch * spe + s, jnp.int32))
      yield {k: np.asarray(jax.device_get(v)) for k, v in out.items()}


class DeviceEvalInput:
  """An evaluation split on the devices, [batches, B, H, W, C] sharded along B (uint8, normalised in the step).

  `images` is the global array; `num_examples` the real rows (the padding repeats row 0 and is cut off after the
  call); `labels` stay on the host."""

  def __init__(self, split: Split, batch_size: int, mesh: Mesh):
    if split.file_backed:
      raise ValueError("device evaluation needs an in-memory split (images), not a file-backed one")
    n = len(split.labels)
    nb = max(1, -(-n // batch_size))
    rows = np.arange(nb * batch_size)
    rows = np.where(rows < n, rows, 0)
    self.split, self.num_examples, self.batch_size = split, n, batch_size
    self.images = put_stacked(split.images[rows].reshape((nb, batch_size) + split.images.shape[1:]), mesh)


def map_split(fn: Callable, view: Optional[Callable], mesh: Mesh, mean, std, seed: int = 0):
  """Jitted `run(operand, images, epoch) -> {name: [K, B, ...]}` over a DeviceEvalInput's images [K, B, H, W, C]
  (sharded along B): batch k's rows r = k·B + [0, B) go through x = view(images_k, keys) with key_r =
  `example_keys(seed, epoch, r)`, or x = the normalised images without a view, then `fn(operand, x)`; a lax.map,
  so one batch's activations at a time. The output stays sharded along B."""
  mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
  stacked, rep = NamedSharding(mesh, P(None, "data")), NamedSharding(mesh, P())

  def run(operand, images, epoch):
    b = images.shape[1]

    def one(args):
      x, k = args
      if view is None:
        x = device_augment.normalize(x, mean, std)
      else:
        x = view(x, example_keys(seed, epoch, k * b + jnp.arange(b, dtype=jnp.int32)))
      return fn(operand, x)

    return jax.lax.map(one, (images, jnp.arange(images.shape[0], dtype=jnp.int32)))

  return jax.jit(run, in_shardings=(rep, stacked, rep), out_shardings=stacked)
