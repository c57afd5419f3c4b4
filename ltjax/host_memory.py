"""Host-memory policy for CPU training: let XLA:CPU reuse its per-step buffers instead of faulting in fresh pages.

XLA:CPU allocates each execution's temporary buffer (every intermediate activation of a train step: 452 MB for
ResNet-32 at batch 128) with posix_memalign from its worker threads and frees it when the step ends. glibc serves
such blocks by mmap, so every step maps fresh pages and the kernel zero-fills all of them: 115,800 page faults and
0.22 CPU-s of kernel time per ResNet-32 step on the 2-core machines, a quarter of the step (docs/BENCHMARKS.md).

  configure()                  first thing in the process (main.py, the benchmarks), before jax or TensorFlow
                               start threads: mallopt(M_ARENA_MAX, 1) — every thread allocates from the main heap
                               (a worker thread's own arena would mmap large blocks whatever the settings);
  reuse_temporaries(nbytes)    once the train step is compiled (the training loop calls it with the step's
                               temporary size): if that is at most REUSE_LIMIT, mallopt(M_MMAP_MAX, 0) and
                               mallopt(M_TRIM_THRESHOLD, INT_MAX) — large blocks come from the heap and stay in the
                               process for the next step.

The trainer's default of several steps per compiled call (config.train.steps_per_call) already cuts those faults
4-fold at no memory cost; on top of it this policy adds 2-5% (docs/BENCHMARKS.md, "Several train steps per compiled
call"). Opt-in, `LTJAX_MALLOC_TUNING=1`, because it trades memory and compile time for step time (figures in
docs/BENCHMARKS.md): the resident memory stays at its high-water mark (about twice the default's), compiling is
slower (XLA's compiler threads share the one arena), and temporaries over
REUSE_LIMIT ran slower kept on the heap (batch 512: 1.8 GB; glibc trims a free top chunk beyond 2 GiB, the largest
threshold mallopt takes), so those keep glibc's default. Long CIFAR-sized CPU runs are where it pays. Outside glibc
(macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

ENV_VAR = "LTJAX_MALLOC_TUNING"
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8  # glibc <malloc.h>
INT_MAX = 2**31 - 1
REUSE_LIMIT = 1 << 30  # bytes of step temporaries kept on the heap at most

_state = {"configured": False, "reusing": False}


def _mallopt(*settings) -> bool:
  try:
    mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
  except (OSError, AttributeError):  # not glibc
    return False
  return all(mallopt(opt, val) == 1 for opt, val in settings)


def configure() -> bool:
  """With LTJAX_MALLOC_TUNING=1: one malloc arena for the whole process (call before any thread starts); True
  when in force."""
  enabled = os.environ.get(ENV_VAR, "0").strip().lower() in ("1", "true", "on", "yes")
  if not _state["configured"] and enabled and sys.platform == "linux":
    _state["configured"] = _mallopt((M_ARENA_MAX, 1))
  return _state["configured"]


def configured() -> bool:
  """Whether configure() is in force in this process."""
  return _state["configured"]


def reusing() -> bool:
  """Whether reuse_temporaries() turned buffer reuse on."""
  return _state["reusing"]


def reuse_temporaries(nbytes: int) -> bool:
  """Keep freed large blocks for reuse when a step's temporaries (nbytes) are at most REUSE_LIMIT and configure()
  is in force; True when reuse is on."""
  if _state["configured"] and not _state["reusing"] and 0 < nbytes <= REUSE_LIMIT:
    _state["reusing"] = _mallopt((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, INT_MAX))
  return _state["reusing"]


# Inputs of fewer elements than this (the 8x8 digits runs) make temporaries small enough for glibc to keep anyway;
# sizing such a step would only cost a second trace and lowering (seconds on a minute-long run).
MIN_SIZED_INPUT = 1 << 16


def worth_sizing(batch) -> bool:
  """Whether a step on `batch` (a pytree of arrays) can have temporaries large enough to be worth reusing."""
  import jax
  return configured() and not reusing() and sum(int(x.size) for x in jax.tree.leaves(batch)
                                                  if getattr(x, "ndim", 0) >= 3) >= MIN_SIZED_INPUT


def reuse_for_step(jitted, batch, *args) -> bool:
  """Sizes `jitted(*args)` (a step on `batch`) and turns reuse on if it qualifies; the one call the training loop
  and the benchmark make before their first step. True when reuse is on."""
  if worth_sizing(batch):
    reuse_temporaries(step_temporaries(jitted, *args))
  return reusing()


def step_temporaries(jitted, *args) -> int:
  """Bytes of temporaries of `jitted(*args)` (0 if unknown); compiles it, which the next call then reuses."""
  try:
    analysis = jitted.lower(*args).compile().memory_analysis()
    return int(getattr(analysis, "temp_size_in_bytes", 0) or 0)
  except Exception:  # noqa: BLE001 — an estimate only; some backends report nothing
    return 0
