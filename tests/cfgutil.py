"""Config overrides for tests: `override(cfg, **{"train.epochs": 2})` sets dotted keys, as the command line's
`--config.train.epochs=2` does. Lists become tuples (JSON-carried overrides, e.g. the multi-host worker's)."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository root (main.py, configs/)


def override(cfg, **over):
  """Sets each dotted key of `over` on the ConfigDict `cfg` (in place) and returns `cfg`."""
  for key, value in over.items():
    node = cfg
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = tuple(value) if isinstance(value, list) else value
  return cfg


def labels_dataset(labels, num_classes: int, image_shape=(8, 8, 3)):
  """A Dataset whose training split holds `labels` (and blank uint8 images of `image_shape`), for constructing a
  Method in a unit test that needs no real data: `Method(cfg, labels_dataset(labels, C), stats)`."""
  import numpy as np

  from ltjax.data.dataset import Dataset, Split
  labels = np.asarray(labels, np.int32)
  n = len(labels)
  split = Split(np.zeros((n,) + tuple(image_shape), np.uint8), labels, np.arange(n, dtype=np.int64))
  c = image_shape[-1]
  return Dataset("labels", int(num_classes), split, split, None, (0.5,) * c, (0.25,) * c, 0, False)


def metric_rows(workdir):
  """{(split, step): row without its timing} from WORKDIR/metrics.jsonl, asserting every (split, step) appears once."""
  import json
  rows = {}
  with open(os.path.join(str(workdir), "metrics.jsonl")) as f:
    for line in f:
      row = json.loads(line)
      key = (row.pop("split"), row.pop("step"))
      assert key not in rows, f"{key} logged twice in {workdir}/metrics.jsonl"
      row.pop("images_per_sec", None)
      rows[key] = row
  return rows
