"""What CORR/RECORDS and SoLar share on the host: candidate sets, the weak/strong views, the config keys of both, and
the extra evaluation figures. The two methods are `records.py` (`Records`) and `solar.py` (`SoLar`)."""

from __future__ import annotations

import copy
import logging
from typing import Dict

import jax.numpy as jnp
import ml_collections
import numpy as np

from ltjax.errors import ConfigError
from ltjax.methods.base import Method
from ltjax.methods.records import candidates as pl
from ltjax.methods.records.metrics import batch_mean_top1, rank_group_accuracies

log = logging.getLogger("ltjax")

# Train-view normalisation of the official loaders (RECORDS' transforms); the test transform uses CIFAR-100's for both
# datasets
# (set config.data.mean / std to CIFAR100_STATS for that, the RECORDS code's known issues).
CIFAR10_TRAIN_STATS = ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))
CIFAR100_STATS = ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))
VIEWS = ("records", "plain")


def generate_candidates(labels: np.ndarray, num_classes: int, q: float, hierarchical: bool,
                        rng: np.random.RandomState) -> np.ndarray:
  """Candidate sets of RECORDS' candidate-set generation on the given legacy stream (advanced in place): hierarchical
  (8q / q) for 100 classes
  with `hierarchical`, uniform otherwise (CIFAR-10 ignores `--hierarchical` here, as upstream)."""
  if hierarchical and num_classes == 100:
    s = pl.hierarchical_candidates(labels, q, rng=rng)
  else:
    s = pl.uniform_candidates(labels, num_classes, q, rng=rng)
  return pl.check_candidates(s, labels, require_true=True)


def partial_label_defaults(c: ml_collections.ConfigDict) -> None:
  c.partial_rate = 0.1  # q: flip probability of each non-true label into the candidate set (--partial_rate)
  c.hierarchical = False  # CIFAR-100-LT-NU candidates (8q in the superclass); pair with data.count_shuffle_seed
  # records (the weak/strong views of RECORDS' transforms) | plain (both views un-augmented: tiny images, digits)
  c.views = "records"
  c.train_mean = ()  # train-view normalisation; () = config.data.mean / the dataset's
  c.train_std = ()


def method_section(cfg, cls):
  if cls.name not in cfg:
    raise ConfigError(f"method '{cls.name}' needs its config section: add `c.{cls.name} = "
                      f"ltjax.methods.records.{cls.__name__}.config_defaults()` to the config")
  return cfg[cls.name]


def validate_partial_label(s, cfg) -> None:
  if not 0.0 <= s.partial_rate <= 1.0:  # NaN fails too
    raise ConfigError(f"config.{cfg.method}.partial_rate = {s.partial_rate} must lie in [0, 1] (the flip "
                      "probability q of each non-true label)")
  if s.views not in VIEWS:
    raise ConfigError(f"config.{cfg.method}.views = {s.views!r} is not one of {list(VIEWS)}")
  if len(tuple(s.train_mean)) != len(tuple(s.train_std)):
    raise ConfigError(f"config.{cfg.method}.train_mean and train_std must have the same length")
  if s.hierarchical and cfg.data.count_shuffle_seed < 0:
    raise ConfigError(f"config.{cfg.method}.hierarchical reproduces upstream --hierarchical, which also shuffles the "
                      "class sizes: set config.data.count_shuffle_seed (to config.seed, 123 in the README)")
  if cfg.model.head not in ("auto", "linear"):
    raise ConfigError(f"{cfg.method} uses a linear classifier: set config.model.head to 'linear' or 'auto'")
  if cfg.loss.name != "ce":
    raise ConfigError(f"{cfg.method} has its own loss; leave config.loss.name = 'ce' (it is not used)")
  if cfg.supervised.train_rule != "none" or cfg.supervised.mixup_alpha != 0:
    raise ConfigError(f"{cfg.method} ignores config.supervised.train_rule / mixup_alpha: leave them at 'none' / 0 "
                      f"(RECORDS' mixup is config.records.mixup)")


class PartialLabelMethod(Method):
  """Shared host side: candidate sets, weak/strong views, extra evaluation figures."""

  def __init__(self, cfg, data, stats):
    super().__init__(cfg, data, stats)
    self.s = cfg[self.name]
    self.num_classes = stats.num_classes
    rng = data.selection_rng
    if rng is None:
      log.warning("%s: the data source gives no selection RandomState; candidate sets use RandomState(%d)",
                  data.name, self.cfg.data.rand_number)
      rng = np.random.RandomState(self.cfg.data.rand_number)
    rng = copy.deepcopy(rng)  # setup() may run more than once on the same Dataset (inspection)
    if self.s.hierarchical and data.num_classes != 100:
      log.info("%s: hierarchical candidate sets need the CIFAR-100 superclasses; using uniform ones (as upstream "
               "for CIFAR-10)", data.name)
    self.candidates = generate_candidates(np.asarray(data.train.labels), data.num_classes,
                                          float(self.s.partial_rate), bool(self.s.hierarchical), rng)
    if data.train.images is None:
      raise ConfigError(f"{self.name} needs an in-memory dataset (CIFAR, digits); '{data.name}' is file-backed")
    self.image_shape = tuple(data.train.images.shape[1:])
    mean = tuple(self.s.train_mean) or tuple(data.mean)
    std = tuple(self.s.train_std) or tuple(data.std)
    if len(mean) != self.image_shape[-1]:
      raise ConfigError(f"config.{self.name}.train_mean {mean} needs one value per image channel "
                        f"({self.image_shape[-1]})")
    self.train_stats = (mean, std)
    log.info("%s: candidate sets for %d examples, mean size %.3f (expected %.3f)", data.name, len(self.candidates),
             self.candidates.sum(1).mean(), self.expected_size())

  def expected_size(self) -> float:
    q, c = float(self.s.partial_rate), self.num_classes
    if self.s.hierarchical and c == 100:
      return 1 + 32 * q + 95 * q
    return 1 + q * (c - 1)

  def device_augment(self):
    from ltjax.data import device_randaugment
    mean, std = self.train_stats
    return device_randaugment.weak_strong(mean, std, size=int(self.image_shape[0]), views=self.s.views)

  def train_augment(self):
    from ltjax.data import randaugment
    mean, std = self.train_stats
    return randaugment.weak_strong(mean, std, size=int(self.image_shape[0]), views=self.s.views)

  def eval_metrics(self, logits, labels) -> Dict[str, float]:
    k = max(1, int(round(self.num_classes / 3)))
    out = {"top1_batch_mean": batch_mean_top1(logits, labels, 4 * int(self.cfg.train.batch_size))}
    out.update(rank_group_accuracies(logits, labels, self.stats.counts, k))
    return out

  def _tables(self):
    cand = jnp.asarray(self.candidates, jnp.float32)
    return {"confidence": jnp.asarray(pl.initial_confidence(self.candidates)), "candidates": cand}
