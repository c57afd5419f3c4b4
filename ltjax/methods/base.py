"""The interface a training method implements. The trainer knows nothing else about a method.

A method is constructed once, host side, from the config, the loaded dataset and its class statistics:
`Method(cfg, data, stats)`. Each hook then has one way in:

  config_defaults(), validate(cfg)        its config section `config.<name>` and its checks (static, before data)
  model_kwargs()                          extra create_model arguments (a rotation head, a projection MLP)
  init_state(rng)                         method state carried in the train state and checkpoints
  epoch_order(epoch, seed)                the epoch's example order (a sampler, resampling draws), or None
  epoch_hparams(epoch)                    per-epoch arrays handed to the step (DRW weights, ramps)
  train_augment() / device_augment()      the training views: TF ops (host path) / JAX ops (device path)
  on_epoch_start(epoch, state, run)       host-side work between epochs (re-clustering, priors)
  loss(...)                               pure, inside jax.jit: the training loss, new BN stats, state, metrics
  eval_logits(outputs, method_state, params)   pure: test-time logits
  eval_metrics(logits, labels)            extra host-side evaluation figures
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

  def __init__(self, cfg: ml_collections.ConfigDict, data, stats: ClassStats):
    """`data`: the loaded `ltjax.data.dataset.Dataset` (its long-tailed training split, image shape, normalisation,
    and `selection_rng` for state that continues the selection's RandomState, e.g. RECORDS' candidate sets);
    `stats`: the training split's class statistics."""
    self.cfg, self.data, self.stats = cfg, data, stats
    self.train_labels = np.asarray(data.train.labels)

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

  def epoch_order(self, epoch: int, seed: int) -> Optional[np.ndarray]:
    """Indices (rows of the training split) of epoch `epoch` in order, or None for the default permutation
    (`ltjax.data.pipeline.epoch_order(N, seed, epoch)`). Resampling is `pipeline.epoch_order(N, seed, epoch,
    probabilities)`; a sampler of its own is any order (`ltjax.data.samplers`). The length must be the same for
    every epoch: the trainer derives steps_per_epoch from `len(epoch_order(0, seed))`. Must be a pure function of
    (epoch, seed): resuming recomputes it."""
    return None

  @staticmethod
  def pipelines(cfg: ml_collections.ConfigDict) -> Tuple[str, ...]:
    """The data paths this method's training views can run on (config.data.pipeline): 'device' (the views as JAX
    ops inside the compiled step, `device_augment`, or the dataset's standard recipe) and 'host' (tf.data,
    `train_augment`, or the standard recipe). Every family in ltjax has both; a method whose views exist only as TF
    ops returns ('host',)."""
    return ("device", "host")

  def train_augment(self) -> Optional[Callable]:
    """Host path: per-example TF augmentation `(uint8 image, int64[2] seed) -> {name: tensor}` for training batches
    (several views, say), or None for the dataset's standard single-view recipe."""
    return None

  def device_augment(self) -> Optional[Callable]:
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

  def eval_logits(self, outputs: Dict[str, jax.Array], method_state: PyTree, params: PyTree) -> jax.Array:
    """Pure: the logits used for evaluation, from the model's outputs, the method state and the current parameters
    (a test-time adjustment, e.g. RECORDS' prior from the current classifier). Default: `outputs['logits']`."""
    return outputs["logits"]

  def eval_metrics(self, logits: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    """Extra evaluation figures (host side, from the split's eval logits [N, C] and labels [N], split order), merged
    into the trainer's evaluation dict: e.g. an official code's own accuracy definition. Default: none."""
    return {}
