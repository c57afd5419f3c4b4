"""Checks of a command line that need neither JAX nor TensorFlow: `main.py` runs them first, so a mistyped key, an
ill-typed or non-finite value, an out-of-range number, an unknown choice or a missing file is one line in well under
a second, before anything heavy is imported and before any run directory exists.

The config schema (every key with its type, and the choices of the keys that have a fixed set) is read from
`ltjax/config_schema.json`, generated from the registries by `python -m ltjax.tools.schema` (which imports
everything); `tests/test_preflight.py` fails when the file no longer matches the code. This module imports only the
standard library: nothing here may import jax, flax, optax, tensorflow or ltjax modules that do.

What is checked, for every `--config.KEY=VALUE` (or `--config.KEY VALUE`) of the command line:
  * KEY exists (else the closest known key is suggested);
  * VALUE parses as the key's type; floats are finite;
  * VALUE is among the key's choices (`data.name` also takes `tfds:NAME`);
  * the simple bounds of `RANGES` (also applied by `ltjax.config.validate` to values set in config files);
  * the paths of `PATHS` exist;
and that the `--config` file exists. Everything else (cross-field rules, method and loss specifics, the data itself)
is validated after the config file is loaded (`ltjax.config.validate`).
"""

from __future__ import annotations

import ast
import difflib
import json
import math
import os
import re
from typing import Dict, Iterator, List, Optional, Tuple

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config_schema.json")

# key → (lower bound, inclusive?, upper bound, inclusive?); None = unbounded. One home for these bounds: the
# command line is checked here before any import, config-file values by `ltjax.config.validate` (check_ranges).
RANGES: Dict[str, Tuple[Optional[float], bool, Optional[float], bool]] = {
    "train.epochs": (1, True, None, False),
    "train.batch_size": (1, True, None, False),
    "train.eval_batch_size": (1, True, None, False),
    "train.log_every": (1, True, None, False),
    "train.checkpoint_every": (1, True, None, False),
    "train.keep_checkpoints": (1, True, None, False),
    "train.eval_every": (0, True, None, False),
    "train.steps_per_call": (0, True, None, False),
    "train.diagnostics_every": (0, True, None, False),
    "data.imb_factor": (0, False, 1, True),
    "data.val_per_class": (0, True, None, False),
    "data.resize": (0, True, None, False),
    "data.image_size": (1, True, None, False),
    "data.unlabeled.imb_factor": (0, False, 1, True),
    "data.unlabeled.multiplier": (1, True, None, False),
    "optim.lr": (0, False, None, False),
    "optim.weight_decay": (0, True, None, False),
    "optim.momentum": (0, True, 1, False),
    "optim.warmup_epochs": (0, True, None, False),
    "optim.restart_epoch": (0, True, None, False),
    "mesh.num_devices": (0, True, None, False),
    "distributed.num_processes": (0, True, None, False),
    "distributed.initialization_timeout": (1, True, None, False),
}

# key → what must exist when the key is set to a non-empty value: 'file', 'dir' or 'path' (either).
PATHS = {
    "data.path": "file",
    "data.root": "dir",
    "data.lists_dir": "dir",
    "data.data_dir": "dir",
    "init.workdir": "path",
    "data.unlabeled.pseudo_labels": "file",
    "data.unlabeled.pool": "path",  # except the built-in pools below
}
BUILTIN_POOLS = ("svhn_extra", "unused")
TFDS_PREFIX = "tfds:"


def load_schema(path: str = SCHEMA_PATH) -> Optional[dict]:
  """{'fields': {key: type name}, 'choices': {key: [values]}}, or None when the file is missing or unreadable
  (then only the full validation runs)."""
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _bound_text(key: str) -> str:
  lo, lo_inc, hi, hi_inc = RANGES[key]
  parts = []
  if lo is not None:
    parts.append(f"{'>=' if lo_inc else '>'} {lo:g}")
  if hi is not None:
    parts.append(f"{'<=' if hi_inc else '<'} {hi:g}")
  return " and ".join(parts)


def range_error(key: str, value) -> Optional[str]:
  """The message for a number outside RANGES[key], or None."""
  if key not in RANGES or isinstance(value, bool) or not isinstance(value, (int, float)):
    return None
  lo, lo_inc, hi, hi_inc = RANGES[key]
  bad = (lo is not None and (value < lo if lo_inc else value <= lo)) or \
        (hi is not None and (value > hi if hi_inc else value >= hi))
  if bad:
    return f"config.{key} = {value!r} must be {_bound_text(key)}"
  return None


def check_ranges(cfg) -> None:
  """ConfigError for the first value of `cfg` (a ConfigDict) outside RANGES: the same bounds as the command line."""
  from ltjax.errors import ConfigError
  for key in RANGES:
    node = cfg
    for part in key.split("."):
      node = node.get(part) if hasattr(node, "get") else None
      if node is None:
        break
    msg = range_error(key, node)
    if msg:
      raise ConfigError(msg)


def overrides(argv: List[str]) -> Iterator[Tuple[str, Optional[str]]]:
  """(key, value) of every --config.KEY=VALUE or --config.KEY VALUE in argv (value None when absent)."""
  i = 1
  while i < len(argv):
    m = re.match(r"--config\.([\w.]+)(=(.*))?$", argv[i], re.S)
    if m:
      if m.group(2) is not None:
        yield m.group(1), m.group(3)
      elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
        i += 1
        yield m.group(1), argv[i]
      else:
        yield m.group(1), None
    i += 1


def config_file(argv: List[str]) -> Optional[str]:
  for i, a in enumerate(argv[1:], 1):
    if a.startswith("--config="):
      return a[len("--config="):]
    if a == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _unknown(key: str, fields: dict) -> str:
  """'unknown config key …' naming the level that lacks the part, with the closest name at that level."""
  parts = key.split(".")
  done: List[str] = []
  for part in parts:
    prefix = ".".join(done) + "." if done else ""
    children = sorted({k[len(prefix):].split(".", 1)[0] for k in fields if k.startswith(prefix)})
    if part not in children:
      close = difflib.get_close_matches(part, children, n=1)
      where = "config" + "".join("." + d for d in done)
      hint = f": did you mean --config.{'.'.join(done + [close[0]])}?" if close else ""
      return f"unknown config key '{key}' ({where} has no '{part}'){hint}"
    done.append(part)
  return f"unknown config key '{key}'"


def _parse(key: str, kind: str, text: str):
  """VALUE as the key's type, or raise ValueError with the one-line reason."""
  if kind == "bool":
    low = text.strip().lower()
    if low in ("true", "1", "yes"):
      return True
    if low in ("false", "0", "no"):
      return False
    raise ValueError(f"config.{key} must be a bool (True or False), got {text!r}")
  if kind == "int":
    try:
      return int(text)
    except ValueError:
      raise ValueError(f"config.{key} must be an int, got {text!r}") from None
  if kind == "float":
    try:
      v = float(text)
    except ValueError:
      raise ValueError(f"config.{key} must be a float, got {text!r}") from None
    if not math.isfinite(v):
      raise ValueError(f"config.{key} = {text} is not a finite number: give a finite value")
    return v
  if kind == "tuple":
    try:
      v = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      raise ValueError(f"config.{key} must be a tuple literal such as '(3, 7)' or '()', got {text!r}") from None
    values = v if isinstance(v, (tuple, list)) else (v,)
    if any(isinstance(x, float) and not math.isfinite(x) for x in values):
      raise ValueError(f"config.{key} = {text} holds a number that is not finite: give finite values")
    return v
  return text


def _path_error(key: str, value: str) -> Optional[str]:
  kind = PATHS.get(key)
  if not kind or not value or (key == "data.unlabeled.pool" and value in BUILTIN_POOLS):
    return None
  ok = {"file": os.path.isfile, "dir": os.path.isdir, "path": os.path.exists}[kind](value)
  if ok:
    return None
  what = {"file": "no such file", "dir": "no such directory", "path": "no such file or directory"}[kind]
  return f"config.{key} = {value!r}: {what}"


def check(argv: List[str], schema: Optional[dict] = None) -> Optional[str]:
  """The first problem of the command line as one line, or None. Imports nothing heavy."""
  cfg_file = config_file(argv)
  if cfg_file:
    path = cfg_file.split(":", 1)[0]
    if not os.path.isfile(path):
      return f"--config {path}: no such config file"
  schema = load_schema() if schema is None else schema
  if schema is None:
    return None
  fields, choices = schema["fields"], schema["choices"]
  renamed = schema.get("renamed", {})
  for key, text in overrides(argv):
    if key in renamed:
      return (f"config.{key} was renamed to config.{renamed[key]}: set c.{renamed[key]} = {text!r} in the config file "
              f"(or --config.{renamed[key]}=... on the command line)")
    if key not in fields:
      sections = {k.rsplit(".", 1)[0] for k in fields if "." in k}
      if key in sections:
        return f"config.{key} is a section: set one of its keys, e.g. --config.{key}.KEY=VALUE"
      return _unknown(key, fields)
    if text is None:
      if fields[key] == "bool":
        continue
      return f"--config.{key} needs a value: --config.{key}=VALUE"
    try:
      value = _parse(key, fields[key], text)
    except ValueError as e:
      return str(e)
    allowed = choices.get(key)
    if allowed is not None and value not in allowed and not (
        key == "data.name" and isinstance(value, str) and value.startswith(TFDS_PREFIX) and len(value) > 5):
      close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
      hint = f" (did you mean {close[0]!r}?)" if close else ""
      extra = ", or tfds:NAME" if key == "data.name" else ""
      return f"config.{key} = {value!r} is not one of {list(allowed)}{extra}{hint}"
    msg = range_error(key, value) or (_path_error(key, value) if isinstance(value, str) else None)
    if msg:
      return msg
  return None
