"""Deterministic, index-based input (DESIGN principle 1): the host data path (tf.data), and the epoch orders and
batch layout that the device data path (`ltjax.data.device`) shares.

The order of epoch e is a pure function of (seed, e) — a permutation, or for resampling a draw with replacement —
and the pipeline maps those indices to examples. Global batch b of the epoch holds positions [b·B, (b+1)·B); process
p of P takes the contiguous slice [b·B + p·B/P, b·B + (p+1)·B/P). Every example's augmentation is seeded by
(seed, epoch, position), so a run resumed at step k sees exactly the batches an uninterrupted run sees, on any number
of devices or processes.

A Split may be file-backed (image paths, or encoded bytes from TFDS): the rows of this process's slice are then read
and decoded inside tf.data (parallel, deterministic order) and augmented by the dataset's `ImageRecipe`
(RandomResizedCrop decoding only the crop window of a JPEG); the order, slicing and seeding are the same as for
in-memory images, so resuming mid-epoch and multi-process runs work identically. A file that cannot be read or
decoded stops the run with an `ImageDecodeError` naming it.

The last partial batch is kept (as the official loaders do) unless `drop_remainder`; its size is rounded down to a
multiple of the device count so it can be sharded (at most devices−1 examples per epoch are dropped; with one
device nothing is).
"""

from __future__ import annotations

import dataclasses
import itertools
import queue
import threading
from typing import Callable, Iterator, Optional, Tuple

import numpy as np

from ltjax.data import augment
from ltjax.data.dataset import Split
from ltjax.errors import ImageDecodeError  # noqa: F401 (re-exported)
from ltjax.optional import tensorflow


def epoch_order(num_examples: int, seed: int, epoch: int, probabilities: Optional[np.ndarray] = None) -> np.ndarray:
  """Indices of epoch `epoch`: a permutation of range(N), or N draws with replacement ∝ `probabilities`."""
  rng = np.random.default_rng([seed, epoch, 0x1d5])
  if probabilities is None:
    return rng.permutation(num_examples)
  return rng.choice(num_examples, size=num_examples, replace=True, p=probabilities)


@dataclasses.dataclass
class Batches:
  """The batch layout of one split: global batch size, device and process counts."""

  num_examples: int
  global_batch: int
  num_devices: int = 1
  process_index: int = 0
  process_count: int = 1
  drop_remainder: bool = False

  def __post_init__(self):
    if self.global_batch % self.num_devices:
      raise ValueError(f"global batch {self.global_batch} is not divisible by the {self.num_devices} devices: "
                       "choose a batch size that is a multiple of the device count (or config.mesh.num_devices)")
    if self.num_devices % self.process_count:
      raise ValueError("device count must be a multiple of the process count")

  @property
  def last_batch(self) -> int:
    """Size of the kept last partial batch (0 when there is none)."""
    if self.drop_remainder:
      return 0
    r = self.num_examples % self.global_batch
    return r - r % self.num_devices

  @property
  def steps_per_epoch(self) -> int:
    return self.num_examples // self.global_batch + (1 if self.last_batch else 0)

  def batch_size(self, step_in_epoch: int) -> int:
    full = self.num_examples // self.global_batch
    return self.global_batch if step_in_epoch < full else self.last_batch

  def local_positions(self, start_step: int = 0) -> np.ndarray:
    """Epoch positions this process reads, from step `start_step` to the end of the epoch, in order."""
    out = []
    for s in range(start_step, self.steps_per_epoch):
      b = self.batch_size(s)
      local = b // self.process_count
      first = s * self.global_batch + self.process_index * local
      out.append(np.arange(first, first + local))
    return np.concatenate(out) if out else np.zeros([0], np.int64)


AugmentFn = Callable[..., dict]  # (uint8 image [H,W,C] tensor, int64 [2] seed) -> {name: tensor}


def _encoded_source(split: Split, idx: np.ndarray):
  """(values for from_tensor_slices, fn(value tensor) → encoded bytes tensor) for the rows `idx` of a file-backed
  split: file paths read with tf.io.read_file, or TFDS bytes looked up by row (kept in host memory)."""
  import tensorflow as tf
  if split.files is not None:
    return split.files[idx], tf.io.read_file
  encoded = split.encoded

  def lookup(i):
    out = tf.numpy_function(lambda j: encoded[int(j)], [i], tf.string, stateful=False)
    out.set_shape([])
    return out

  return idx.astype(np.int64), lookup


def _describe(split: Split, row: int) -> str:
  return split.files[row] if split.files is not None else f"row {row} of the TFDS split (encoded bytes)"


def _find_undecodable(split: Split, rows: np.ndarray) -> Optional[Tuple[int, str]]:
  """The first row among `rows` whose image cannot be read or decoded, with the error message, or None."""
  import tensorflow as tf
  for r in rows:
    r = int(r)
    try:
      data = tf.io.read_file(split.files[r]) if split.files is not None else tf.constant(split.encoded[r])
      augment.decode_rgb(data)
    except (tf.errors.OpError, ValueError) as e:
      return r, str(e).splitlines()[0][:300] if str(e) else type(e).__name__
  return None


def _guard_decode(batches_iter: Iterator[dict], split: Split, rows: np.ndarray, local_sizes) -> Iterator[dict]:
  """Re-raise a tf.data read/decode failure as ImageDecodeError naming the file (file-backed splits only). `rows` are
  the split rows this process reads, in order; the failing example lies in the batch after the ones yielded."""
  import tensorflow as tf
  done = 0
  it = iter(batches_iter)
  while True:
    try:
      batch = next(it)
    except StopIteration:
      return
    except tf.errors.OpError as e:
      window = rows[done:done + 4 * max(local_sizes)]  # the failing batch and the prefetched ones after it
      found = _find_undecodable(split, window)
      if found is None:
        raise ImageDecodeError(f"reading or decoding an image failed near example {done} of this epoch: "
                               f"{str(e).splitlines()[0][:300]}") from e
      row, msg = found
      raise ImageDecodeError(f"cannot read or decode image {_describe(split, row)} (split row {row}): {msg}. "
                             "Replace or remove the file (and its line in the split file).") from None
    done += len(batch["label"])
    yield batch


def cifar_augment(mean, std, crop_padding: int, flip: bool) -> AugmentFn:
  """The single-view CIFAR recipe: {'image': normalise(flip(crop(pad(x))))}."""
  mean, std = tuple(mean), tuple(std)

  def fn(image, seed):
    image = augment.crop_flip(image, seed, padding=crop_padding, flip=flip)
    return {"image": augment.normalize(image, mean, std)}

  return fn


class EpochOrder:
  """The example order of every epoch: `order(e)` = `order_fn(e)` when it gives one (its length must equal the
  batch layout's num_examples every epoch), else a permutation of the split's rows or draws with replacement
  ∝ `probabilities_fn(e)` (`epoch_order`). Shared by the host and device paths, so both see the same orders."""

  def __init__(self, num_rows: int, batches: Batches, seed: int,
               probabilities_fn: Optional[Callable[[int], Optional[np.ndarray]]] = None,
               order_fn: Optional[Callable[[int], Optional[np.ndarray]]] = None):
    self.num_rows, self.batches, self.seed = num_rows, batches, seed
    self.probabilities_fn = probabilities_fn or (lambda epoch: None)
    self.order_fn = order_fn or (lambda epoch: None)

  def __call__(self, epoch: int) -> np.ndarray:
    order = self.order_fn(epoch)
    if order is None:
      return epoch_order(self.num_rows, self.seed, epoch, self.probabilities_fn(epoch))
    order = np.asarray(order, np.int64)
    if order.ndim != 1 or len(order) != self.batches.num_examples:
      raise ValueError(f"epoch_order({epoch}) gave {order.shape} indices, but the epoch holds "
                       f"{self.batches.num_examples}: a method's epoch order must have the same length every epoch")
    if order.size and (order.min() < 0 or order.max() >= self.num_rows):
      raise ValueError(f"epoch_order({epoch}) holds indices outside [0, {self.num_rows})")
    return order


class TrainInput:
  """Augmented training batches of one split through tf.data on the host: `epoch(e, start_step)` yields numpy dicts.

  Each batch: what `augment_fn` returns per example (default: image float32 [L,H,W,C], normalised), plus
  label int32 [L] and index int64 [L] (the example's row in the split), with L = this process's share of the global
  batch. A method that needs several views supplies its own `augment_fn` (seeded by the given stateless seed).
  """

  on_device = False

  def __init__(self, split: Split, batches: Batches, *, seed: int, mean, std, crop_padding: int, flip: bool,
               probabilities_fn: Optional[Callable[[int], Optional[np.ndarray]]] = None,
               augment_fn: Optional[AugmentFn] = None,
               order_fn: Optional[Callable[[int], Optional[np.ndarray]]] = None,
               recipe: Optional[augment.ImageRecipe] = None):
    self.split, self.batches, self.seed = split, batches, seed
    self.order = EpochOrder(len(split.labels), batches, seed, probabilities_fn, order_fn)
    if split.file_backed:
      # File-backed: encoded bytes → example. A method's own augment_fn gets the whole decoded uint8 image.
      recipe = recipe or augment.ImageRecipe()
      mean, std = tuple(mean), tuple(std)
      if augment_fn is None:
        self.encoded_fn = lambda data, seed: augment.large_scale_train(data, seed, recipe, mean, std)
      else:
        self.encoded_fn = lambda data, seed: augment_fn(augment.decode_rgb(data), seed)
    self.augment_fn = augment_fn or cifar_augment(mean, std, crop_padding, flip)

  @property
  def steps_per_epoch(self) -> int:
    return self.batches.steps_per_epoch

  def epoch(self, epoch: int, start_step: int = 0) -> Iterator[dict]:
    tf = tensorflow("the host input pipeline (tf.data)")
    order = self.order(epoch)
    pos = self.batches.local_positions(start_step)
    idx = order[pos]
    epoch_seed = tf.constant([self.seed, epoch], tf.int64)
    labels, index, position = self.split.labels[idx].astype(np.int32), idx.astype(np.int64), pos.astype(np.int64)
    if self.split.file_backed:
      values, read = _encoded_source(self.split, idx)
      encoded_fn = self.encoded_fn

      def prepare_file(value, label, index, position):
        seed = tf.random.experimental.stateless_fold_in(epoch_seed, position)
        return dict(encoded_fn(read(value), seed), label=label, index=index)

      ds = tf.data.Dataset.from_tensor_slices((values, labels, index, position))
      ds = ds.map(prepare_file, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
      yield from _guard_decode(_batched(ds, self.batches, start_step), self.split, idx,
                               [self.batches.global_batch // self.batches.process_count])
      return
    ds = tf.data.Dataset.from_tensor_slices((self.split.images[idx], labels, index, position))
    augment_fn = self.augment_fn

    def prepare(image, label, index, position):
      out = augment_fn(image, tf.random.experimental.stateless_fold_in(epoch_seed, position))
      return dict(out, label=label, index=index)

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    yield from _batched(ds, self.batches, start_step)


class EvalInput:
  """Batches of a whole split in split order, the last one padded to full size; `mask` marks real examples.

  Without `view` the images get the evaluation transform (normalise; Resize + CenterCrop first for file-backed
  splits). With `view(image uint8 [H, W, C], seed int64 [2]) -> float tensor` (a method's own per-example
  transform, e.g. an augmented view for a clustering pass), row i gets view(image_i, stateless_fold_in(seed, i)),
  seed = `view_seed` (two ints): the same view of the same row on any batch size, device or process count."""

  def __init__(self, split: Split, batches: Batches, *, mean, std, recipe: Optional[augment.ImageRecipe] = None,
               view: Optional[Callable] = None, view_seed: Tuple[int, int] = (0, 0)):
    self.split, self.mean, self.std = split, tuple(mean), tuple(std)
    self.recipe = recipe or augment.ImageRecipe()
    self.view, self.view_seed = view, tuple(int(v) for v in view_seed)
    n = len(split.labels)
    padded = -(-n // batches.global_batch) * batches.global_batch
    self.batches = dataclasses.replace(batches, num_examples=padded, drop_remainder=True)
    self.num_examples = n

  def __iter__(self) -> Iterator[dict]:
    tf = tensorflow("the host evaluation pipeline (tf.data)")
    pos = self.batches.local_positions(0)
    real = pos < self.num_examples
    idx = np.where(real, pos, 0)
    mean, std, recipe, view = self.mean, self.std, self.recipe, self.view
    seed = tf.constant(self.view_seed, tf.int64)
    if self.split.file_backed:
      values, read = _encoded_source(self.split, idx)
      if view is None:
        prep = lambda v, i: augment.large_scale_eval(read(v), recipe, mean, std)  # noqa: E731
      else:
        def prep(v, i):
          return view(augment.decode_rgb(read(v)), tf.random.experimental.stateless_fold_in(seed, i))
    else:
      values = self.split.images[idx]
      if view is None:
        prep = lambda im, i: augment.normalize(im, mean, std)  # noqa: E731
      else:
        prep = lambda im, i: view(im, tf.random.experimental.stateless_fold_in(seed, i))  # noqa: E731
    ds = tf.data.Dataset.from_tensor_slices(
        (values, self.split.labels[idx].astype(np.int32), idx.astype(np.int64), real))
    ds = ds.map(lambda v, l, i, m: {"image": prep(v, i), "label": l, "index": tf.where(m, i, -1), "mask": m},
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    batches = _batched(ds, self.batches, 0)
    if self.split.file_backed:
      batches = _guard_decode(batches, self.split, idx, [self.batches.global_batch // self.batches.process_count])
    yield from batches


def _batched(ds, batches: Batches, start_step: int) -> Iterator[dict]:
  """Batch a per-example dataset into this process's slices, honouring a smaller last batch."""
  import tensorflow as tf
  full = batches.num_examples // batches.global_batch
  local_full = batches.global_batch // batches.process_count
  n_full = max(0, full - start_step)
  parts = [ds.take(n_full * local_full).batch(local_full)]
  if batches.last_batch and start_step <= full:
    parts.append(ds.skip(n_full * local_full).batch(batches.last_batch // batches.process_count))
  out = parts[0] if len(parts) == 1 else parts[0].concatenate(parts[1])
  for batch in out.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
    yield batch


def group_steps(batches: Iterator[dict], k: int, n: int) -> Iterator[Tuple[dict, np.ndarray]]:
  """The first n batches of `batches` in consecutive groups of up to k, for a K-steps-per-call train step:
  (leaves stacked to [k, ...], active bool [k]). A group ends early, padded with zeros (active False), at the n-th
  batch and before a batch of another shape (an epoch's short last batch when the remainder is kept: it gets a group
  of its own, one more compiled shape, as the one-step path has).
  Groups start at the iteration's first batch and every k same-shaped batches after it."""

  def signature(b):
    return tuple((key, np.shape(v)) for key, v in b.items())

  def stacked(group):
    pad = k - len(group)
    return ({key: np.stack([b[key] for b in group] + [np.zeros_like(group[0][key])] * pad) for key in group[0]},
            np.arange(k) < len(group))

  group: list = []
  for b in itertools.islice(batches, n):
    if group and signature(b) != signature(group[0]):
      yield stacked(group)
      group = []
    group.append(b)
    if len(group) == k:
      yield stacked(group)
      group = []
  if group:
    yield stacked(group)


def prefetch(iterator: Iterator[dict], convert: Callable[[dict], dict], size: int = 2) -> Iterator[dict]:
  """Run `convert` (host → device transfer) in a background thread, keeping `size` batches in flight. The thread
  stops when the consumer does (exhausted, closed, or abandoned after an exception)."""
  q: queue.Queue = queue.Queue(maxsize=size)
  done = object()
  stop = threading.Event()

  def put(item) -> bool:
    while not stop.is_set():
      try:
        q.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def worker():
    try:
      for item in iterator:
        if not put(convert(item)):
          return
      put(done)
    except BaseException as e:  # surfaced in the consumer thread
      put(e)

  t = threading.Thread(target=worker, daemon=True)
  t.start()
  try:
    while True:
      item = q.get()
      if item is done:
        return
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    stop.set()
