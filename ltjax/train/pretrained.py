"""Initialising a run from a pre-trained one: stage 2 from stage 1, fine-tuning from self-supervised pre-training,
cRT from a CE run, or weights converted from PyTorch.

A source is either an ltjax run directory (its `checkpoints/{best,last}` orbax checkpoint and `config.json`) or a
`.npz` file whose keys are '/'-joined flax paths under `params/` and `batch_stats/`
(e.g. `params/BasicBlock_0/Conv_0/kernel`), the format the torch converters write.

`merge(fresh, loaded, exclude, strict)` copies every leaf of the new model's {params, batch_stats} from the loaded
variables, except leaves whose path (without the collection prefix, e.g. `fc/kernel`) matches a regex of `exclude`,
which keep their fresh initialisation. A copied leaf must have the same shape; with `strict`, it must also exist.
Leaves of the source that the new model lacks (a projection head `proj/`, a rotation head) are ignored.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Dict, Iterable, Optional, Tuple

import jax
import numpy as np

from ltjax.errors import ConfigError

log = logging.getLogger("ltjax")

COLLECTIONS = ("params", "batch_stats")


def _flatten(tree, prefix="") -> Dict[str, np.ndarray]:
  out = {}
  if isinstance(tree, dict) or hasattr(tree, "items"):
    for k, v in tree.items():
      out.update(_flatten(v, f"{prefix}{k}/"))
  else:
    out[prefix[:-1]] = tree
  return out


def _unflatten(flat: Dict[str, np.ndarray]) -> dict:
  root: dict = {}
  for path, v in flat.items():
    node = root
    *parents, leaf = path.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = v
  return root


def source_model_name(path: str) -> Optional[str]:
  """The model name recorded in a run directory's config.json (None for .npz files or when unknown)."""
  cfg = os.path.join(path, "config.json")
  if not os.path.isfile(cfg):
    return None
  try:
    with open(cfg) as f:
      return json.load(f).get("model", {}).get("name")
  except (OSError, ValueError):
    return None


def check_source(path: str, checkpoint: str = "last") -> None:
  """Raise ConfigError (in milliseconds, before any data is loaded) if `path` holds no usable checkpoint."""
  if not path:
    return
  if path.endswith(".npz"):
    if not os.path.isfile(path):
      raise ConfigError(f"config.init.workdir = {path!r}: no such .npz file")
    return
  if not os.path.isdir(path):
    raise ConfigError(f"config.init.workdir = {path!r} does not exist: point it at the run directory of the "
                      "pre-training (or stage-1) run, or at a converted .npz file")
  root = os.path.join(path, "checkpoints", checkpoint)
  steps = [d for d in os.listdir(root)] if os.path.isdir(root) else []
  if not any(d.isdigit() for d in steps):
    other = "best" if checkpoint == "last" else "last"
    raise ConfigError(f"config.init.workdir = {path!r} has no '{checkpoint}' checkpoint ({root} is empty or missing)"
                      f": has the run finished? Or set config.init.checkpoint = '{other}'")


def load_variables(path: str, checkpoint: str = "last") -> Dict[str, dict]:
  """{'params': nested dict, 'batch_stats': nested dict} of numpy arrays from a run directory or a .npz file."""
  check_source(path, checkpoint)
  if path.endswith(".npz"):
    with np.load(path) as z:
      flat = {k: np.asarray(z[k]) for k in z.files}
    bad = [k for k in flat if k.split("/", 1)[0] not in COLLECTIONS]
    if bad:
      raise ConfigError(f"{path}: keys must start with 'params/' or 'batch_stats/', got e.g. {bad[:3]}")
    tree = _unflatten(flat)
    return {c: tree.get(c, {}) for c in COLLECTIONS}
  import orbax.checkpoint as ocp
  root = os.path.abspath(os.path.join(path, "checkpoints", checkpoint))
  step = max(int(d) for d in os.listdir(root) if d.isdigit())
  item = os.path.join(root, str(step), "state")
  # The step's _CHECKPOINT_METADATA sits one level above `state` (ltjax.train.checkpoint's layout): orbax warns
  # that `state` has none, which is expected here and only noise in the run's start-up log. (The python logger, not
  # absl.set_verbosity: that would also reset the level main.py gives absl's logger.)
  absl_logger = logging.getLogger("absl")
  level = absl_logger.level
  absl_logger.setLevel(logging.ERROR)
  try:
    with ocp.StandardCheckpointer() as ckptr:
      meta = ckptr.metadata(item)
      tree = getattr(meta, "item_metadata", meta)
      tree = getattr(tree, "tree", tree)
      # Restore every leaf as a host numpy array: no sharding or device layout of the source run is needed.
      restored = ckptr.restore(item, jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), dict(tree)))
  finally:
    absl_logger.setLevel(level)
  return {c: jax.tree.map(np.asarray, dict(restored.get(c, {}) or {})) for c in COLLECTIONS}


def merge(fresh: Dict[str, dict], loaded: Dict[str, dict], exclude: Iterable[str] = ("^fc/",), strict: bool = True,
          source: str = "the checkpoint") -> Tuple[Dict[str, dict], Dict[str, int]]:
  """New {params, batch_stats}: fresh leaves replaced by loaded ones (module docstring). Returns (variables,
  {'copied': n, 'fresh': m}). ConfigError names the first mismatching path and both shapes."""
  patterns = [re.compile(p) for p in exclude]
  model_name = source_model_name(source)
  arch = f" (a '{model_name}' run)" if model_name else ""
  out, n_copied, n_fresh = {}, 0, 0
  for c in COLLECTIONS:
    new_flat = _flatten(fresh.get(c, {}) or {})
    old_flat = _flatten(loaded.get(c, {}) or {})
    merged = {}
    for path, value in new_flat.items():
      if any(p.search(path) for p in patterns):
        merged[path], n_fresh = value, n_fresh + 1
        continue
      if path not in old_flat:
        if strict:
          raise ConfigError(
              f"{source}{arch} has no {c}/{path} {tuple(np.shape(value))}, which the new model needs: it is a "
              "checkpoint of another architecture. Point config.init.workdir at a run of the same model, add the "
              "path to config.init.exclude to keep it freshly initialised, or set config.init.strict = False")
        merged[path], n_fresh = value, n_fresh + 1
        continue
      old = old_flat[path]
      if tuple(np.shape(old)) != tuple(np.shape(value)):
        raise ConfigError(
            f"{source}{arch} holds {c}/{path} with shape {tuple(np.shape(old))}, but the new model needs "
            f"{tuple(np.shape(value))}: it is a checkpoint of another architecture (or another head width). Use a "
            "run of the same model, or add the path to config.init.exclude")
      merged[path] = np.asarray(old, dtype=np.asarray(value).dtype)
      n_copied += 1
    out[c] = _unflatten(merged) if merged else (fresh.get(c, {}) or {})
  return out, {"copied": n_copied, "fresh": n_fresh}


def init_from_config(cfg, params, batch_stats):
  """(params, batch_stats) of a new run initialised per `cfg.init` (unchanged when `cfg.init.workdir` is empty)."""
  if not cfg.init.workdir:
    return params, batch_stats
  loaded = load_variables(cfg.init.workdir, cfg.init.checkpoint)
  fresh = {"params": jax.device_get(params), "batch_stats": jax.device_get(batch_stats)}
  merged, report = merge(fresh, loaded, tuple(cfg.init.exclude), bool(cfg.init.strict), cfg.init.workdir)
  log.info("initialised from %s (%s): %d leaves copied, %d freshly initialised", cfg.init.workdir,
           cfg.init.checkpoint, report["copied"], report["fresh"])
  # Keep the exact pytree types of the fresh variables (flax FrozenDict vs dict).
  params = jax.tree.unflatten(jax.tree.structure(params), jax.tree.leaves(merged["params"]))
  if jax.tree.leaves(batch_stats):
    batch_stats = jax.tree.unflatten(jax.tree.structure(batch_stats), jax.tree.leaves(merged["batch_stats"]))
  return params, batch_stats
