"""One-stage supervised training: CE, focal, LDAM, balanced softmax, ARB-Loss and its variants, label-aware
smoothing (`config.loss`, `ltjax.losses`); with the class-balanced train rules and mixup of this method's section
`config.supervised`: train_rule (none | reweight | drw | resample | class_aware; Cui et al., CVPR 2019, and LDAM-DRW,
Cao et al., NeurIPS 2019), cb_beta, drw_epoch, mixup_alpha (Zhang et al., ICLR 2018).

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
import ml_collections
import numpy as np

from ltjax import losses
from ltjax.data import pipeline, samplers
from ltjax.errors import ConfigError
from ltjax.methods.base import Method

CLASS_AWARE_PER_CLASS = 4  # items taken per class visit (ClassAwareSampler's num_samples_cls)
# none | reweight | drw | resample (class-balanced weights or draws by effective number) | class_aware (class-aware
# sampler, 4 per class: SBCL's "CB").
TRAIN_RULES = ("none", "reweight", "drw", "resample", "class_aware")


class Supervised(Method):
  name = "supervised"

  @staticmethod
  def config_defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.train_rule = "none"  # one of TRAIN_RULES
    c.cb_beta = 0.9999  # effective-number β for reweight / drw / resample
    c.drw_epoch = 160  # DRW switches to class-balanced weights at this epoch index
    c.mixup_alpha = 0.0  # >0: mixup with λ ~ Beta(α, α)
    return c

  @staticmethod
  def validate(cfg) -> None:
    s = cfg.supervised
    if s.train_rule not in TRAIN_RULES:
      raise ConfigError(f"config.supervised.train_rule = {s.train_rule!r} is not one of {list(TRAIN_RULES)}")
    if s.mixup_alpha < 0:
      raise ConfigError(f"config.supervised.mixup_alpha = {s.mixup_alpha} must be >= 0 (0 disables mixup)")
    if not 0.0 <= s.cb_beta < 1.0:
      raise ConfigError(f"config.supervised.cb_beta = {s.cb_beta} must lie in [0, 1)")
    if s.train_rule == "drw" and cfg.train.epochs > 2 * s.drw_epoch:
      raise ConfigError(f"train_rule 'drw' defines weights for epochs < 2*drw_epoch = {2 * s.drw_epoch}, but "
                        f"train.epochs = {cfg.train.epochs}: raise config.supervised.drw_epoch or lower train.epochs")
    weighted = s.train_rule in ("reweight", "drw")
    if weighted and not losses.REGISTRY[cfg.loss.name].accepts_class_weights:
      raise ConfigError(f"train_rule '{s.train_rule}' weights the loss by class, but loss '{cfg.loss.name}' takes "
                        "no class weights: use train_rule 'none' or 'resample', or a loss among "
                        f"{[k for k, e in losses.REGISTRY.items() if e.accepts_class_weights]}")
    if losses.head_for(cfg.loss.name) == "cosine" and cfg.model.head in ("linear", "linear_torch"):
      raise ConfigError(f"loss '{cfg.loss.name}' needs cosine logits: set config.model.head to 'cosine' or 'auto'")

  def __init__(self, cfg, data, stats):
    super().__init__(cfg, data, stats)
    self.s = cfg.supervised
    self.loss_fn = losses.make(cfg.loss.name, cfg.loss, stats.counts)
    self.weighted = self.s.train_rule in ("reweight", "drw")
    self.mixup_alpha = float(self.s.mixup_alpha)
    # Probabilities are reported from the logits the loss uses: s·cos for LDAM (losses.eval_scale), z otherwise.
    self.eval_scale = losses.eval_scale(cfg.loss.name, cfg.loss)

  def class_weights(self, epoch: int) -> Optional[np.ndarray]:
    rule, counts = self.s.train_rule, self.stats.counts
    if rule == "reweight":
      return losses.effective_number_weights(counts, self.s.cb_beta)
    if rule == "drw":
      return losses.drw_weights(counts, epoch, drw_epoch=self.s.drw_epoch, beta=self.s.cb_beta)
    return None

  def epoch_hparams(self, epoch: int) -> Dict[str, np.ndarray]:
    if not self.weighted:
      return {}
    return {"class_weights": np.asarray(self.class_weights(epoch), np.float32)}

  def epoch_order(self, epoch: int, seed: int) -> Optional[np.ndarray]:
    """train_rule 'resample': N draws with replacement ∝ the class-balanced per-example probabilities
    (`losses.resample_probabilities`); 'class_aware': the class-aware sampler (4 consecutive items per visited
    class, max_c n_c · C draws per epoch; SBCL `--train_rule CB`); otherwise the default permutation."""
    rule = self.s.train_rule
    if rule == "resample":
      p = losses.resample_probabilities(self.train_labels, self.stats.counts, self.s.cb_beta)
      return pipeline.epoch_order(len(self.train_labels), seed, epoch, p)
    if rule == "class_aware":
      return samplers.class_aware_order(self.train_labels, self.stats.num_classes, seed, epoch,
                                        per_class=CLASS_AWARE_PER_CLASS)
    return None

  def eval_logits(self, outputs, method_state, params):
    """The logits the loss turns into probabilities: the model's times `losses.eval_scale` (LDAM: s·cos)."""
    z = outputs["logits"]
    return z if self.eval_scale == 1.0 else z * self.eval_scale

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
