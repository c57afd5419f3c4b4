"""One-stage supervised training: CE, focal, LDAM, balanced softmax, ARB-Loss and its variants, label-aware
smoothing; with the class-balanced train rules of spec ARB_AND_SEMISELF §3.1 and the mixup of §2.3.

Per step (B examples, C classes):
  mixup off:  L = loss(z, y; w, n)
  mixup on:   λ ~ Beta(α, α), π a random permutation of the batch, x̃ = λx + (1−λ)x_π,
              L = λ·loss(z̃, y; w, n) + (1−λ)·loss(z̃, y_π; w, n)
with w the epoch's class weights (reweight / DRW; none otherwise) and n the counts ARB needs (batch counts from the
un-mixed labels y, or the global training counts). Training accuracy is measured against the un-mixed y.
"""

from __future__ import annotations

from typing import Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ltjax import losses
from ltjax.errors import ConfigError
from ltjax.methods.base import Method

CLASS_AWARE_PER_CLASS = 4  # items taken per class visit (ClassAwareSampler's num_samples_cls)


class Supervised(Method):
  name = "supervised"

  @staticmethod
  def validate(cfg) -> None:
    weighted = cfg.train_rule in ("reweight", "drw")
    if weighted and not getattr(losses.REGISTRY[cfg.loss.name], "accepts_class_weights", False):
      raise ConfigError(f"train_rule '{cfg.train_rule}' weights the loss by class, but loss '{cfg.loss.name}' takes "
                       "no class weights: use train_rule 'none' or 'resample', or a loss among "
                       f"{[k for k, f in losses.REGISTRY.items() if getattr(f, 'accepts_class_weights', False)]}")
    if cfg.loss.name == "ldam" and cfg.model.head == "linear":
      raise ConfigError("loss 'ldam' needs cosine logits: set config.model.head to 'cosine' or 'auto'")

  def __init__(self, cfg, stats, train_labels):
    super().__init__(cfg, stats, train_labels)
    self.loss_fn = losses.make(cfg.loss.name, cfg.loss, stats.counts)
    self.weighted = cfg.train_rule in ("reweight", "drw")
    self.mixup_alpha = float(cfg.mixup_alpha)

  def class_weights(self, epoch: int) -> Optional[np.ndarray]:
    rule, counts = self.cfg.train_rule, self.stats.counts
    if rule == "reweight":
      return losses.effective_number_weights(counts, self.cfg.cb_beta)
    if rule == "drw":
      return losses.drw_weights(counts, epoch, drw_epoch=self.cfg.drw_epoch, beta=self.cfg.cb_beta)
    return None

  def epoch_hparams(self, epoch: int) -> Dict[str, np.ndarray]:
    if not self.weighted:
      return {}
    return {"class_weights": np.asarray(self.class_weights(epoch), np.float32)}

  def epoch_order(self, epoch: int, seed: int) -> Optional[np.ndarray]:
    """train_rule 'class_aware': the class-aware sampler (4 consecutive items per visited class, max_c n_c · C
    draws per epoch; SBCL `--train_rule CB`, spec SBCL_AND_RECORDS A.5.5)."""
    if self.cfg.train_rule != "class_aware":
      return None
    from ltjax.data.samplers import class_aware_order
    return class_aware_order(self.train_labels, self.stats.num_classes, seed, epoch, per_class=CLASS_AWARE_PER_CLASS)

  def sampling_probabilities(self, epoch: int) -> Optional[np.ndarray]:
    if self.cfg.train_rule != "resample":
      return None
    return losses.resample_probabilities(self.train_labels, self.stats.counts, self.cfg.cb_beta)

  def loss(self, apply_fn, params, batch_stats, method_state, batch, hparams, rng):
    x, y = batch["image"], batch["label"]
    w = hparams.get("class_weights")
    if self.mixup_alpha > 0:
      k_lam, k_perm = jax.random.split(rng)
      lam = jax.random.beta(k_lam, self.mixup_alpha, self.mixup_alpha)
      perm = jax.random.permutation(k_perm, x.shape[0])
      x = lam * x + (1.0 - lam) * x[perm]
    out, new_vars = apply_fn({"params": params, "batch_stats": batch_stats}, x, train=True,
                             mutable=["batch_stats"])
    logits = out["logits"]
    loss = self.loss_fn(logits, y, class_weights=w, count_labels=y)
    if self.mixup_alpha > 0:
      loss = lam * loss + (1.0 - lam) * self.loss_fn(logits, y[perm], class_weights=w, count_labels=y)
    metrics = {"accuracy": jnp.mean(jnp.argmax(logits, -1) == y)}
    return loss, (new_vars["batch_stats"], method_state, metrics)
