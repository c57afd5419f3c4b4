"""Test-wide setup: 8 virtual CPU devices (for sharding tests), float64 available for numpy references.

JAX_PLATFORMS defaults to cpu; `JAX_PLATFORMS=cuda python -m pytest -m "not tensorflow"` runs the suite on a GPU
(benchmarks/gpu/check.sh), where the `multidevice` tests are skipped."""

import os

# Must happen before jax is imported anywhere in the test process.
flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in flags:
  os.environ["XLA_FLAGS"] = (flags + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import tempfile  # noqa: E402

import jax  # noqa: E402

# Identical programs (the same tiny model compiled by several end-to-end tests) are compiled once per session.
jax.config.update("jax_compilation_cache_dir", os.path.join(tempfile.gettempdir(), "ltjax_test_jax_cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_collection_modifyitems(config, items):
  """Everything under tests/e2e/ is marked `e2e` and `slow`; tests marked `multidevice` are skipped where fewer
  than 8 devices exist (one GPU: JAX_PLATFORMS=cuda), and tests marked `tensorflow` where TensorFlow is not
  installed (the accelerator machine)."""
  import pytest
  for item in items:
    if f"{os.sep}e2e{os.sep}" in str(item.fspath):
      item.add_marker(pytest.mark.e2e)
      item.add_marker(pytest.mark.slow)
  if jax.device_count() < 8:
    few = pytest.mark.skip(reason=f"needs 8 devices, {jax.device_count()} here ({jax.default_backend()})")
    for item in items:
      if "multidevice" in item.keywords:
        item.add_marker(few)
  try:
    import tensorflow  # noqa: F401  (most of the suite imports it anyway)
    return
  except ImportError:
    pass
  skip = pytest.mark.skip(reason="TensorFlow is not installed")
  for item in items:
    if "tensorflow" in item.keywords:
      item.add_marker(skip)
