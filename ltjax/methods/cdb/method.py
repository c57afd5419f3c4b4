"""CDB-CE (Sinha et al., ACCV 2020): cross-entropy weighted per class by the class's current difficulty.

After every `every`-th epoch (0-based epoch e with e % every == 0, as the official `cifar_train.py`), the model is
evaluated on a held-out split and, with acc_c its per-class top-1 accuracy:

  d_c   = 1 − acc_c                                                      class difficulty
  τ     = sigmoid((1 − min_c d_c) / (1 − max_c d_c + 0.01))              'dynamic' (official `CDB_loss`), or fixed
  w_c   = C · d_c^τ / Σ_k d_k^τ                                          (Σ_c w_c = C)

and the next epochs train on

  L = (1/B) Σ_i w_{y_i} · CE(z_i, y_i)

(the official `CrossEntropyLoss(weight=w, reduction='none')` followed by `torch.mean`: a plain mean over the batch,
not PyTorch's weighted mean). Before the first update every w_c = 1.

Method state (checkpointed, so a resumed run continues with the same weights): `class_weights` [C] float32 and
`weights_epoch` int32, the epoch at whose start they were last computed. The held-out split is `cdb.split`: 'val'
(the official 25 images per class held out of the training pool: `data.val_per_class = 25`) or 'train'.
Deviation: when every class is perfect (Σ d^τ = 0) the official weights are 0/0 = NaN; here they stay 1.
"""

from __future__ import annotations

import logging
from typing import Dict

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ltjax import losses
from ltjax.errors import ConfigError
from ltjax.methods.base import Method

log = logging.getLogger("ltjax")

SPLITS = ("val", "train")


def cdb_weights(accuracy: np.ndarray, tau="dynamic") -> np.ndarray:
  """w [C] float64 from per-class accuracies acc [C] in [0, 1] (the module docstring's formula; ones when every
  class is perfect)."""
  d = 1.0 - np.asarray(accuracy, np.float64)
  if tau == "dynamic":
    t = 1.0 / (1.0 + np.exp(-(1.0 - d.min()) / (1.0 - d.max() + 0.01)))
  else:
    t = float(tau)
  w = d ** t
  if not w.sum() > 0:
    return np.ones_like(d)
  return w / w.sum() * len(w)


def per_class_accuracy(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
  """acc [C]: top-1 accuracy per true class (0 for a class absent from the labels)."""
  labels = np.asarray(labels)
  correct = np.bincount(labels[np.argmax(logits, 1) == labels], minlength=num_classes)
  return correct / np.maximum(np.bincount(labels, minlength=num_classes), 1)


class CDB(Method):
  name = "cdb"

  @staticmethod
  def config_defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.tau = "dynamic"  # 'dynamic' or a number, e.g. '1.5' (--tau)
    c.split = "val"  # the held-out split the difficulties are measured on: val | train
    c.every = 1  # update after every this many epochs (--validate_after_every)
    return c

  @staticmethod
  def validate(cfg) -> None:
    if "cdb" not in cfg:
      raise ConfigError("method 'cdb' needs config.cdb: add c.cdb = ltjax.methods.cdb.CDB.config_defaults()")
    s = cfg.cdb
    if s.tau != "dynamic":
      try:
        ok = float(s.tau) >= 0
      except ValueError:
        ok = False
      if not ok:
        raise ConfigError(f"config.cdb.tau = {s.tau!r} must be 'dynamic' or a number >= 0, e.g. '1.5'")
    if s.split not in SPLITS:
      raise ConfigError(f"config.cdb.split = {s.split!r} is not one of {list(SPLITS)}")
    if s.split == "val" and cfg.data.val_per_class < 1 and not cfg.data.val_list:
      raise ConfigError("config.cdb.split = 'val' measures class difficulty on a validation split: set "
                        "config.data.val_per_class (25 in the official CIFAR-LT code), or config.cdb.split = 'train'")
    if s.every < 1:
      raise ConfigError(f"config.cdb.every = {s.every} must be >= 1")
    if cfg.loss.name != "ce" or cfg.supervised.train_rule != "none" or cfg.supervised.mixup_alpha:
      raise ConfigError("method 'cdb' is its own weighted cross-entropy: leave config.loss.name = 'ce', "
                        "config.supervised.train_rule = 'none' and mixup_alpha = 0")

  def __init__(self, cfg, data, stats):
    super().__init__(cfg, data, stats)
    self.s = cfg.cdb
    self.tau = "dynamic" if self.s.tau == "dynamic" else float(self.s.tau)

  def init_state(self, rng) -> Dict[str, jax.Array]:
    return {"class_weights": jnp.ones((self.stats.num_classes,), jnp.float32),
            "weights_epoch": jnp.zeros([], jnp.int32)}

  def on_epoch_start(self, epoch, state, run):
    ms = state.method_state
    if epoch == 0 or (epoch - 1) % int(self.s.every) or int(jax.device_get(ms["weights_epoch"])) == epoch:
      return state  # no update due, or already applied (a run resumed inside this epoch)
    p = run.predict(state, self.s.split)
    acc = per_class_accuracy(p["logits"], p["labels"], self.stats.num_classes)
    w = cdb_weights(acc, self.tau)
    log.info("cdb: epoch %d class weights from %s accuracies (mean %.3f): min %.3f, max %.3f", epoch, self.s.split,
             acc.mean(), w.min(), w.max())
    new = {"class_weights": jnp.asarray(w, jnp.float32), "weights_epoch": jnp.asarray(epoch, jnp.int32)}
    return state.replace(method_state={k: jax.device_put(v, ms[k].sharding) for k, v in new.items()})

  def loss(self, apply_fn, params, batch_stats, method_state, batch, hparams, rng):
    x, y = batch["image"], batch["label"]
    out, new_vars = apply_fn({"params": params, "batch_stats": batch_stats}, x, train=True, mutable=["batch_stats"])
    logits = out["logits"]
    w = method_state["class_weights"][y]
    loss = jnp.mean(w * losses.per_example_ce(logits, y))
    metrics = {"accuracy": jnp.mean(jnp.argmax(logits, -1) == y), "mean_weight": jnp.mean(w)}
    return loss, (new_vars["batch_stats"], method_state, metrics)
