"""Writes (or checks) `ltjax/config_schema.json`, the config schema the JAX-free command-line checks read
(`ltjax/preflight.py`): every key of `ltjax.config.schema()` with its type, and the choices of the keys whose values
come from a registry or a fixed list.

  python -m ltjax.tools.schema           # regenerate after adding a method, a loss, a model or a config key
  python -m ltjax.tools.schema --check   # exit 1 when the file is out of date (tests/test_preflight.py does this)
"""

from __future__ import annotations

import argparse
import json
import sys

from ltjax import preflight


def _type_name(v) -> str:
  if isinstance(v, bool):
    return "bool"
  if isinstance(v, int):
    return "int"
  if isinstance(v, float):
    return "float"
  if isinstance(v, str):
    return "str"
  if isinstance(v, (tuple, list)):
    return "tuple"
  return "any"


def build() -> dict:
  """The schema as plain data (imports every registry: JAX included)."""
  from ltjax import config, losses, methods
  from ltjax.data import device, sources, unlabeled
  from ltjax.models import MODELS
  from ltjax.train import optim
  fields = {}
  for key, v in config._walk(config.schema()):
    fields[key] = _type_name(v)
  choices = {
      "method": sorted(methods.REGISTRY),
      "loss.name": sorted(losses.REGISTRY),
      "model.name": sorted(MODELS),
      "model.head": ["auto", "linear", "cosine", "linear_torch", "linear_lws"],
      "model.dtype": ["float32", "bfloat16"],
      "optim.schedule": sorted(optim.SCHEDULES),
      "data.name": sorted(sources.REGISTRY),
      "data.imb_type": ["exp", "step", "none"],
      "data.pipeline": list(device.PIPELINES),
      "data.label_remap": ["frequency", "none"],
      "data.unlabeled.select_by": list(unlabeled.SELECT_BY),
      "train.select_on": list(config.SELECT_ON),
      "train.frozen_bn": ["train", "eval"],
      "init.checkpoint": ["best", "last"],
  }
  for entry in losses.REGISTRY.values():
    for field, allowed in entry.choices.items():
      choices[f"loss.{field}"] = list(allowed)
  renamed = {old: new for old, (new, _) in config.RENAMED.items()}
  return {"fields": dict(sorted(fields.items())), "choices": dict(sorted(choices.items())), "renamed": renamed}


def text() -> str:
  return json.dumps(build(), indent=1, sort_keys=True) + "\n"


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m ltjax.tools.schema", description=__doc__.split("\n\n")[0])
  p.add_argument("--check", action="store_true", help="only check that the file is up to date")
  a = p.parse_args(argv)
  want = text()
  if a.check:
    try:
      have = open(preflight.SCHEMA_PATH).read()
    except OSError:
      have = ""
    if have != want:
      print(f"{preflight.SCHEMA_PATH} is out of date: run `python -m ltjax.tools.schema`", file=sys.stderr)
      return 1
    print(f"{preflight.SCHEMA_PATH} is up to date")
    return 0
  with open(preflight.SCHEMA_PATH, "w") as f:
    f.write(want)
  print(f"wrote {preflight.SCHEMA_PATH}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
