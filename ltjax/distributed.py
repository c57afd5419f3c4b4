"""Multi-process (multi-host) start-up: `initialize(cfg)` calls `jax.distributed.initialize` once, before anything
touches a device (main.py calls it first).

Where the settings come from, first match wins:
  1. config.distributed.{coordinator_address, num_processes, process_id} (set fields);
  2. the environment: $JAX_COORDINATOR_ADDRESS, $JAX_NUM_PROCESSES, $JAX_PROCESS_ID;
  3. config.distributed.cluster_detection = True: JAX's own detection (SLURM, Open MPI, TPU pods, ...).
Nothing set → a single-process run (no call). Each process then sees all devices of the job in `jax.devices()`;
the mesh spans them, each process feeds its contiguous slice of every global batch (ltjax.data.pipeline), orbax
saves and restores checkpoints collectively (every process calls save/restore), process 0 writes the logs.

Launch (two hosts, 8 GPUs each):
  host 0: python main.py --config ... --workdir /shared/run --config.distributed.coordinator_address=host0:1234 \\
            --config.distributed.num_processes=2 --config.distributed.process_id=0
  host 1: same with --config.distributed.process_id=1
The workdir must be on a file system all processes share.
"""

from __future__ import annotations

import logging
import os
from typing import Optional

log = logging.getLogger("ltjax")


def validate(section) -> None:
  """The config's `distributed` section: num_processes >= 0, process_id in [-1, num_processes), timeout >= 1."""
  from ltjax.errors import ConfigError
  if section.num_processes < 0 or section.process_id < -1 or section.initialization_timeout < 1:
    raise ConfigError("config.distributed needs num_processes >= 0, process_id >= -1 and initialization_timeout >= 1")
  if section.num_processes and section.process_id >= section.num_processes:
    raise ConfigError(f"config.distributed.process_id = {section.process_id} must be < num_processes = "
                      f"{section.num_processes}")


def settings(dist_cfg, environ=None) -> Optional[dict]:
  """The keyword arguments for jax.distributed.initialize, {} for cluster detection, or None (single process).

  Raises ValueError for an incomplete setting (an address without a process count, an id outside the count).
  """
  environ = os.environ if environ is None else environ
  addr = (getattr(dist_cfg, "coordinator_address", "") or environ.get("JAX_COORDINATOR_ADDRESS", "")).strip()
  n = int(getattr(dist_cfg, "num_processes", 0) or environ.get("JAX_NUM_PROCESSES", 0) or 0)
  pid = int(getattr(dist_cfg, "process_id", -1))
  if pid < 0:
    pid = int(environ.get("JAX_PROCESS_ID", -1))
  if not addr and n <= 1 and pid < 0:
    return {} if getattr(dist_cfg, "cluster_detection", False) else None
  if not addr or n < 1 or not 0 <= pid < n:
    raise ValueError(
        f"incomplete multi-process setting: coordinator_address={addr!r}, num_processes={n}, process_id={pid}. "
        "Set all three (config.distributed.* or $JAX_COORDINATOR_ADDRESS / $JAX_NUM_PROCESSES / $JAX_PROCESS_ID) "
        "with 0 <= process_id < num_processes, or none for a single process")
  return {"coordinator_address": addr, "num_processes": n, "process_id": pid}


def initialize(cfg) -> bool:
  """jax.distributed.initialize from `cfg.distributed` / the environment; True when this is a multi-process job."""
  import jax
  dist_cfg = getattr(cfg, "distributed", None)
  kw = settings(dist_cfg)
  if kw is None:
    return False
  timeout = int(getattr(dist_cfg, "initialization_timeout", 300))
  jax.distributed.initialize(initialization_timeout=timeout, **kw)
  log.info("process %d of %d (%d local devices, %d in all)", jax.process_index(), jax.process_count(),
           jax.local_device_count(), jax.device_count())
  return True
