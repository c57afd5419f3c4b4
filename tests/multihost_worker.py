"""One process of a multi-process test job (tests/e2e/test_multihost.py): builds the config (large-scale by default)
with the given overrides, joins the job through ltjax.distributed.initialize (as main.py does), trains with train_and_evaluate
(optionally stopping at a step, as a preemption) and exits 0, or 143 when stopped.

  python tests/multihost_worker.py SPEC.json PROCESS_ID
SPEC: {"config_file": "large_lt", "config": "dataset=...,row=...", "overrides": {"data.root": ...}, "workdir": ..., "stop_at_step": null|k,
       "coordinator": "127.0.0.1:PORT", "num_processes": 2}
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def build_config(spec):
  """configs/<spec['config_file']>.py (default large_lt) with spec['config'] as its argument (if any), overridden."""
  import importlib
  from tests.cfgutil import override
  module = importlib.import_module("configs." + spec.get("config_file", "large_lt"))
  cfg = module.get_config(spec["config"]) if spec.get("config") else module.get_config()
  return override(cfg, **spec["overrides"])


def main():
  spec = json.load(open(sys.argv[1]))
  cfg = build_config(spec)
  if spec.get("num_processes", 1) > 1:
    cfg.distributed.coordinator_address = spec["coordinator"]
    cfg.distributed.num_processes = spec["num_processes"]
    cfg.distributed.process_id = int(sys.argv[2])
    cfg.distributed.initialization_timeout = 60
  from ltjax import distributed
  distributed.initialize(cfg)
  from ltjax.train import loop
  try:
    loop.train_and_evaluate(cfg, spec["workdir"], stop_at_step=spec.get("stop_at_step"))
  except loop.Preempted:
    sys.exit(143)


if __name__ == "__main__":
  main()
