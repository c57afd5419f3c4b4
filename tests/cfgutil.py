"""Config overrides for tests: `override(cfg, **{"train.epochs": 2})` sets dotted keys, as the command line's
`--config.train.epochs=2` does. Lists become tuples (JSON-carried overrides, e.g. the multi-host worker's)."""


def override(cfg, **over):
  """Sets each dotted key of `over` on the ConfigDict `cfg` (in place) and returns `cfg`."""
  for key, value in over.items():
    node = cfg
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = tuple(value) if isinstance(value, list) else value
  return cfg
