"""Decoupling-style supervised training (imbalanced-semi-self `imagenet_inat/main.py`, SS `imagenet_inat/`; SBCL SBCL's
stage-2 ImageNet head, SBCL `moco/linear_classify.py`):
CE(Uniform), CE(Balanced) and cRT on ImageNet-LT / iNaturalist, and SBCL's ImageNet linear stage 2.

The loss, class weights and mixup are `supervised`'s (ltjax/methods/supervised.py). What this method adds:

* Epoch order (`decouple.sampler`). Upstream's loop runs ⌊N/B⌋ steps per epoch whatever the sampler yields, so
  every epoch here holds L = ⌊N/B⌋·B indices:
    'uniform'      a fresh permutation of the N training examples, truncated to L (random shuffling);
    'class_aware'  `ltjax.data.samplers.class_aware_order(…, per_class, length=L)`: classes visited in a
                   reshuffled cyclic order, `per_class` (4) consecutive items of each visited class from its own
                   reshuffled cycle; SBCL stage 2: ⌊115,846/2048⌋ = 56 steps.
  `decouple.in_batch_shuffle` permutes the positions inside every batch (the "+ in-batch shuffle" of
  CE(Balanced)); with BatchNorm over the global batch the loss does not depend on the order inside a batch, it
  only changes which process/device holds which example.
* Classifier initialisation (`decouple.fc_init`): 'model' keeps the model's own fresh `fc` (cRT re-initialises the
  classifier: load the features with `init.exclude = ('^fc/',)`); 'normal' sets fc/kernel ~ N(0, fc_std²) and
  fc/bias = 0 before the first step (SBCL stage 2, `fc.weight.data.normal_(0, 0.01)`, `fc.bias.data.zero_()`).
  Drawn from (seed, 0xfc), so it is reproducible.

Freezing is the trainer's: `train.trainable = '^fc/'` (only the classifier trains; the feature model gets no
gradient, no update, no weight decay) with `train.frozen_bn = 'train'` (frozen layers still run in train mode, so BN
normalises with batch statistics and updates its running statistics on the class-balanced batches, as cRT and SBCL
stage 2 do).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ltjax.data import pipeline, samplers
from ltjax.errors import ConfigError
from ltjax.methods.supervised import Supervised

FC_SEED = 0xfc


class Decouple(Supervised):
  name = "decouple"

  @staticmethod
  def config_defaults():
    c = ml_collections.ConfigDict()
    c.sampler = "uniform"  # uniform | class_aware
    c.per_class = 4  # class-aware: consecutive items per visited class (num_samples_cls)
    c.in_batch_shuffle = False
    c.fc_init = "model"  # model | normal
    c.fc_std = 0.01
    return c

  @staticmethod
  def validate(cfg) -> None:
    Supervised.validate(cfg)
    if "decouple" not in cfg:
      raise ConfigError("method 'decouple' needs config.decouple: add "
                        "c.decouple = ltjax.methods.REGISTRY['decouple'].config_defaults()")
    d = cfg.decouple
    if d.sampler not in ("uniform", "class_aware"):
      raise ConfigError(f"config.decouple.sampler = {d.sampler!r} is not one of ['uniform', 'class_aware']")
    if d.fc_init not in ("model", "normal"):
      raise ConfigError(f"config.decouple.fc_init = {d.fc_init!r} is not one of ['model', 'normal']")
    if d.per_class < 1 or d.fc_std <= 0:
      raise ConfigError("config.decouple.per_class must be >= 1 and fc_std > 0")
    if cfg.supervised.train_rule == "resample":
      raise ConfigError("method 'decouple' orders its epochs with config.decouple.sampler; train_rule 'resample' "
                        "would be ignored: use train_rule 'none' (or the supervised method)")

  def __init__(self, cfg, data, stats):
    super().__init__(cfg, data, stats)
    self.d = cfg.decouple
    n, b = len(self.train_labels), int(cfg.train.batch_size)
    if n < b:
      raise ConfigError(f"config.train.batch_size = {b} exceeds the {n} training examples: upstream runs ⌊N/B⌋ = 0 "
                        "steps per epoch")
    self.epoch_length = (n // b) * b

  def epoch_order(self, epoch: int, seed: int):
    n, B = len(self.train_labels), int(self.cfg.train.batch_size)
    if self.d.sampler == "class_aware":
      order = samplers.class_aware_order(self.train_labels, self.stats.num_classes, seed, epoch,
                                         per_class=int(self.d.per_class), length=self.epoch_length)
    else:
      order = pipeline.epoch_order(n, seed, epoch)[:self.epoch_length]
    if self.d.in_batch_shuffle:
      rng = np.random.default_rng([seed, epoch, 0x5f1])
      blocks = order.reshape(-1, B)
      order = np.take_along_axis(blocks, rng.permuted(np.tile(np.arange(B), (len(blocks), 1)), axis=1),
                                 axis=1).reshape(-1)
    return order

  def on_epoch_start(self, epoch, state, run):
    if self.d.fc_init != "normal" or int(jax.device_get(state.step)) != 0:
      return state
    from ltjax.train import step as step_lib
    fc = dict(state.params["fc"])
    key = jax.random.fold_in(jax.random.PRNGKey(run.cfg.seed), FC_SEED)
    fc["kernel"] = float(self.d.fc_std) * jax.random.normal(key, fc["kernel"].shape, jnp.float32)
    if "bias" in fc:
      fc["bias"] = jnp.zeros_like(fc["bias"])
    params = dict(state.params, fc=fc)
    return state.replace(params=jax.device_put(params, step_lib.replicated(run.mesh)))
