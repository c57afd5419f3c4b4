"""ltjax.host_memory: opt-in malloc policy that lets XLA:CPU's per-step temporaries be reused (no fresh page faults)."""

import json
import os
import subprocess
import sys

import numpy as np

from ltjax import host_memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Allocates, touches and frees a 256 MB block from a worker thread (as XLA's executor does) three times and reports
# the page faults of the last round: glibc's default maps fresh zero pages each time (65,536 faults of 4 KiB).
PROBE = r"""
import ctypes, json, resource, sys, threading
from ltjax import host_memory
on = host_memory.configure()
reuse = host_memory.reuse_temporaries(int(sys.argv[1]))
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def once():  # plain malloc, as XLA's posix_memalign (numpy would madvise huge pages)
  p = libc.malloc(256 << 20); ctypes.memset(p, 1, 256 << 20); libc.free(p)
faults = []
for _ in range(3):
  r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  t = threading.Thread(target=once); t.start(); t.join()
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
print(json.dumps({"configured": on, "reusing": reuse, "faults": faults[-1]}))
"""


def _probe(env_value, temp_bytes):
  env = dict(os.environ, PYTHONPATH=ROOT)
  env.pop(host_memory.ENV_VAR, None)
  if env_value is not None:
    env[host_memory.ENV_VAR] = env_value
  out = subprocess.run([sys.executable, "-c", PROBE, str(temp_bytes)], env=env, capture_output=True, text=True,
                       timeout=120, check=True).stdout
  return json.loads(out.strip().splitlines()[-1])


def test_opt_in_reuses_freed_temporaries():
  off = _probe(None, 300 << 20)
  assert off == {"configured": False, "reusing": False, "faults": off["faults"]}
  assert off["faults"] > 60000  # a fresh mapping every round
  on = _probe("1", 300 << 20)
  assert on["configured"] and on["reusing"]
  assert on["faults"] < 1000  # the freed block is reused in place


def test_large_temporaries_keep_glibc_default():
  big = _probe("1", host_memory.REUSE_LIMIT + 1)
  assert big["configured"] and not big["reusing"]


def test_worth_sizing_skips_small_inputs_and_unconfigured_processes(monkeypatch):
  monkeypatch.setitem(host_memory._state, "configured", True)
  monkeypatch.setitem(host_memory._state, "reusing", False)
  assert host_memory.worth_sizing({"image": np.zeros((128, 32, 32, 3), np.float32), "label": np.zeros(128)})
  assert not host_memory.worth_sizing({"image": np.zeros((128, 8, 8, 1), np.float32)})  # digits-sized
  monkeypatch.setitem(host_memory._state, "configured", False)
  assert not host_memory.worth_sizing({"image": np.zeros((128, 32, 32, 3), np.float32)})


def test_step_temporaries_reads_the_compiled_size():
  import jax
  import jax.numpy as jnp
  f = jax.jit(lambda x: jnp.sum(jnp.sin(x @ x.T) @ jnp.cos(x)))  # a [256, 256] intermediate at least
  nbytes = host_memory.step_temporaries(f, jnp.ones((256, 64), jnp.float32))
  assert 256 * 256 * 4 <= nbytes < 64 << 20
  assert host_memory.step_temporaries(lambda x: x, 1.0) == 0  # not jitted: unknown, no error


def test_reuse_for_step_sizes_qualifying_steps_only(monkeypatch):
  import jax
  import jax.numpy as jnp
  calls = []
  monkeypatch.setattr(host_memory, "_mallopt", lambda *settings: calls.append(settings) or True)  # this process
  monkeypatch.setitem(host_memory._state, "configured", True)
  monkeypatch.setitem(host_memory._state, "reusing", False)
  step = jax.jit(lambda x: jnp.sum(jnp.sin(x @ x.T) @ jnp.cos(x)))  # an [N, N] temporary
  small = jnp.ones((8, 8, 8, 1), jnp.float32)
  assert not host_memory.reuse_for_step(step, {"image": small}, small.reshape(64, 8)) and not calls
  big = jnp.ones((64, 32, 32, 1), jnp.float32)
  assert host_memory.reuse_for_step(step, {"image": big}, big.reshape(2048, 32))
  assert calls == [((host_memory.M_MMAP_MAX, 0), (host_memory.M_TRIM_THRESHOLD, host_memory.INT_MAX))]
