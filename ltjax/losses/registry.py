"""The supervised loss registry: `config.loss.name` names an entry; each entry declares its own config fields.

A loss module registers a factory next to its pure function:

    @registry.register("focal", accepts_class_weights=True, defaults={"focal_gamma": 1.0})
    def _focal(p, counts):
      return lambda z, y, *, class_weights=None, count_labels=None: focal_loss(z, y, p.focal_gamma, class_weights)

`p` holds every declared field of that loss, read from the config's `loss` section (missing fields take the declared
defaults), and `counts` are the training set's class counts [C]. The built function is

    fn(logits [B, C], labels [B], *, class_weights=None, count_labels=None) -> float32 scalar

The config's `loss` section (`config_defaults()`) is `name` plus the union of every registered loss's fields, so a new
loss adds its fields by declaring them here, and nothing else changes. `choices` declares the allowed values of a
field (checked by `validate`), and `head` the classifier head the loss needs (LDAM's margins are defined on cosine
logits: `head='cosine'`, which `model.head = 'auto'` then picks).

`count_labels` are the un-mixed batch labels from which the ARB family counts classes in 'batch' mode (default:
`labels`). `class_weights` ([C] float32 or None) is used only by losses registered with
`accepts_class_weights=True`; the others raise ValueError (at trace time) when given class weights that are not None,
rather than silently dropping them.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import ml_collections
import numpy as np

from ltjax.errors import ConfigError

HEADS = ("linear", "cosine")


@dataclasses.dataclass(frozen=True)
class LossEntry:
  name: str
  factory: Callable  # (p: SimpleNamespace of the declared fields, counts [C]) -> fn
  accepts_class_weights: bool
  defaults: Mapping[str, Any]
  choices: Mapping[str, Sequence[Any]]
  head: str  # the classifier head the loss needs: 'linear' | 'cosine'
  scale_field: Optional[str] = None  # a declared field by which the loss multiplies the model's logits (LDAM: ldam_s)

  def __call__(self, cfg, class_counts) -> Callable:
    return build(self, cfg, class_counts)


REGISTRY: Dict[str, LossEntry] = {}


def register(name: str, *, accepts_class_weights: bool, defaults: Optional[Mapping[str, Any]] = None,
             choices: Optional[Mapping[str, Sequence[Any]]] = None, head: str = "linear",
             scale_field: Optional[str] = None):
  """Decorator: register a factory `(p, counts) -> fn` as loss `name` with its config fields and their defaults.

  `scale_field` names the declared field by which the loss scales the model's logits before its softmax (LDAM:
  s·cos); evaluation then reports probabilities from the logits so scaled (`eval_scale`), so that calibration
  figures describe the distribution the model was trained to output.

  A field several losses share (the ARB family's `arb_counts`, `arb_clamp`, `reduction`) must be declared with the
  same default and choices by each; a conflict is an error at import time."""
  defaults = dict(defaults or {})
  choices = {k: tuple(v) for k, v in (choices or {}).items()}
  if head not in HEADS:
    raise ValueError(f"loss {name!r}: head must be one of {HEADS}, got {head!r}")
  for field, allowed in choices.items():
    if field not in defaults:
      raise ValueError(f"loss {name!r}: choices for {field!r}, which it does not declare in defaults")
    if defaults[field] not in allowed:
      raise ValueError(f"loss {name!r}: the default {defaults[field]!r} of {field!r} is not among {allowed}")
  for other in REGISTRY.values():
    for field in set(defaults) & set(other.defaults):
      if defaults[field] != other.defaults[field] or choices.get(field) != other.choices.get(field):
        raise ValueError(f"loss {name!r} declares config.loss.{field} differently from loss {other.name!r}")
  if name == "name":
    raise ValueError("'name' is the loss section's selector, not a loss")
  if scale_field is not None and scale_field not in defaults:
    raise ValueError(f"loss {name!r}: scale_field {scale_field!r} is not among its declared fields")

  def deco(factory):
    if name in REGISTRY and REGISTRY[name].factory is not factory:
      raise ValueError(f"loss {name!r} is already registered")
    REGISTRY[name] = LossEntry(name, factory, accepts_class_weights, defaults, choices, head, scale_field)
    return factory

  return deco


def _fields(entry: LossEntry, cfg) -> types.SimpleNamespace:
  """The entry's declared fields from `cfg` (an attribute object or None), defaults where missing."""
  values = {}
  for field, default in entry.defaults.items():
    values[field] = getattr(cfg, field, default) if cfg is not None else default
  return types.SimpleNamespace(**values)


def build(entry: LossEntry, cfg, class_counts) -> Callable:
  """`entry.factory(fields, counts)`, wrapped so that a loss without class weights refuses them."""
  counts = np.asarray(class_counts)
  if counts.ndim != 1 or counts.size == 0:
    raise ValueError(f"class_counts must be a non-empty 1-D per-class vector, got shape {counts.shape}")
  p = _fields(entry, cfg)
  for field, allowed in entry.choices.items():
    if getattr(p, field) not in allowed:
      raise ValueError(f"loss {entry.name!r}: {field} must be one of {list(allowed)}, got {getattr(p, field)!r}")
  inner = entry.factory(p, counts)
  if entry.accepts_class_weights:
    fn = inner
  else:
    def fn(logits, labels, *, class_weights=None, count_labels=None):
      if class_weights is not None:
        raise ValueError(f"loss {entry.name!r} takes no class weights (losses that do: "
                         f"{[k for k, e in REGISTRY.items() if e.accepts_class_weights]})")
      return inner(logits, labels, class_weights=None, count_labels=count_labels)
  fn.accepts_class_weights = entry.accepts_class_weights
  fn.loss_name = entry.name
  return fn


def make(name: str, cfg, class_counts) -> Callable:
  """Build the loss `name` (a key of REGISTRY; ValueError listing the known names otherwise) with its fields read
  from `cfg` (an attribute object, e.g. the config's `loss` section; missing fields take the declared defaults) and
  the training set's class counts [C] (label-indexed)."""
  if name not in REGISTRY:
    raise ValueError(f"unknown loss {name!r} (known: {sorted(REGISTRY)})")
  return build(REGISTRY[name], cfg, class_counts)


def config_defaults() -> ml_collections.ConfigDict:
  """The config's `loss` section: `name` ('ce') and every registered loss's declared fields with their defaults."""
  c = ml_collections.ConfigDict()
  c.name = "ce"  # a key of ltjax.losses.REGISTRY
  for entry in REGISTRY.values():
    for field, default in entry.defaults.items():
      c[field] = default
  return c


def validate(section) -> None:
  """The `loss` section: a registered name, and every declared field with choices holding an allowed value."""
  if section.name not in REGISTRY:
    raise ConfigError(f"config.loss.name = {section.name!r} is not one of {sorted(REGISTRY)}")
  for entry in REGISTRY.values():
    for field, allowed in entry.choices.items():
      if field in section and section[field] not in allowed:
        raise ConfigError(f"config.loss.{field} = {section[field]!r} is not one of {list(allowed)}")


def eval_scale(name: str, cfg) -> float:
  """The factor by which loss `name` (its fields read from `cfg`) multiplies the model's logits: evaluation logits
  are the model's times this, so reported probabilities and calibration are the loss's (1.0 for most losses)."""
  entry = REGISTRY[name]
  return 1.0 if entry.scale_field is None else float(getattr(_fields(entry, cfg), entry.scale_field))


def head_for(name: str) -> str:
  """The classifier head loss `name` needs ('linear' or 'cosine'), for `model.head = 'auto'`."""
  return REGISTRY[name].head
