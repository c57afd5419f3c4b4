"""The interface a training method implements. The trainer knows nothing else about a method.

A method is constructed once, host side, from the config, the class statistics and the training split. The
trainer then calls, each epoch, `epoch_hparams(epoch)` (arrays passed into the compiled step, so per-epoch changes
such as DRW never recompile) and `sampling_probabilities(epoch)` (per-example draw probabilities for resampling,
or None for a plain shuffle), and, each step inside `jax.jit`, the pure `loss(...)`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

import jax
import ml_collections
import numpy as np

from ltjax.data.stats import ClassStats

PyTree = Any
ApplyFn = Callable[..., Any]


class Method:
  """Base class: override what the method needs."""

  name: str = ""

  @staticmethod
  def config_defaults() -> Optional[ml_collections.ConfigDict]:
    """The method's own config section (stored as `config.<name>`), or None if it needs none."""
    return None

  @staticmethod
  def validate(cfg: ml_collections.ConfigDict) -> None:
    """Raise ValueError for method-specific settings that cannot run."""

  def __init__(self, cfg: ml_collections.ConfigDict, stats: ClassStats, train_labels: np.ndarray):
    self.cfg, self.stats, self.train_labels = cfg, stats, train_labels

  def bind_data(self, data) -> None:
    """Called once by the trainer right after construction with the loaded `sources.Dataset` (before `init_state`),
    for methods whose state derives from more than the labels: RECORDS' candidate sets continue the selection's
    RandomState (`data.selection_rng`). Default: nothing."""

  def init_state(self, rng: jax.Array) -> PyTree:
    """Method state carried in the train state and checkpoints (queues, confidence tables, subclass labels)."""
    return {}

  def epoch_hparams(self, epoch: int) -> Dict[str, np.ndarray]:
    """Per-epoch arrays handed to `loss`; their shapes must not change between epochs."""
    return {}

  def model_kwargs(self) -> Dict[str, Any]:
    """Extra keyword arguments for `ltjax.models.create_model`: e.g. `{"num_classes": 4}` for a rotation head, or
    `{"projection": (64, 128)}` for a contrastive projection MLP (the model then returns `outputs["projection"]`)."""
    return {}

  def sampling_probabilities(self, epoch: int) -> Optional[np.ndarray]:
    """Per-example draw probabilities for the epoch (with replacement), or None for a permutation."""
    return None

  def epoch_order(self, epoch: int, seed: int) -> Optional[np.ndarray]:
    """Indices (rows of the training split) of epoch `epoch` in order, or None for the default: a permutation, or
    draws ∝ `sampling_probabilities(epoch)`. The length must be the same for every epoch: the trainer derives
    steps_per_epoch from `len(epoch_order(0, seed))` (e.g. a class-aware sampler, `ltjax.data.samplers`)."""
    return None

  @staticmethod
  def pipelines(cfg: ml_collections.ConfigDict) -> Tuple[str, ...]:
    """The data paths this method's training views can run on (config.data.pipeline): 'device' (the views as JAX
    ops inside the compiled step, `device_augment`, or the dataset's standard recipe) and 'host' (tf.data,
    `train_augment`, or the standard recipe). Every family in ltjax has both; a method whose views exist only as TF
    ops returns ('host',)."""
    return ("device", "host")

  def train_augment(self, data) -> Optional[Callable]:
    """Host path: per-example TF augmentation `(uint8 image, int64[2] seed) -> {name: tensor}` for training batches
    (several views, say), or None for the dataset's standard single-view recipe. `data` is the loaded Dataset."""
    return None

  def device_augment(self, data) -> Optional[Callable]:
    """Device path: the same views as JAX ops, `(uint8 images [B, H, W, C], raw keys uint32 [B, 2]) -> {name: array
    [B, ...]}` (`ltjax.data.device_augment`), or None for the dataset's standard recipe."""
    return None

  def on_epoch_start(self, epoch: int, state: PyTree, run) -> PyTree:
    """Host-side hook before each epoch (re-clustering, pseudo-labelling); returns the (possibly new) TrainState.
    `run` is the run's `ltjax.train.run.Run`: `run.predict(state, split)` gives logits and features, and
    `run.map_split` any other pass over a split."""
    return state

  def loss(self, apply_fn: ApplyFn, params: PyTree, batch_stats: PyTree, method_state: PyTree,
           batch: Dict[str, jax.Array], hparams: Dict[str, jax.Array],
           rng: jax.Array) -> Tuple[jax.Array, Tuple[PyTree, PyTree, Dict[str, jax.Array]]]:
    """Pure: returns (loss, (new_batch_stats, new_method_state, metrics)). Differentiated w.r.t. params."""
    raise NotImplementedError

  def eval_logits(self, outputs: Dict[str, jax.Array], method_state: PyTree) -> jax.Array:
    """Logits used for evaluation (a method may adjust them at test time). A method may add a keyword argument
    `params`: the trainer then passes the current parameters (RECORDS' prior uses the current classifier)."""
    return outputs["logits"]

  def eval_metrics(self, logits: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    """Extra evaluation figures (host side, from the split's eval logits [N, C] and labels [N], split order), merged
    into the trainer's evaluation dict: e.g. an official code's own accuracy definition. Default: none."""
    return {}
