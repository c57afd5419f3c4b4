"""A Python environment in which `import tensorflow` (and `import tensorflow_datasets`) raises ModuleNotFoundError,
as on a machine without them: stub packages first on PYTHONPATH, for subprocesses and notebook kernels that must run
without TensorFlow."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MESSAGE = "TensorFlow is blocked in this test"


def blocker(tmp_path) -> str:
  """A directory holding stub `tensorflow` and `tensorflow_datasets` packages that raise ModuleNotFoundError on import."""
  root = os.path.join(str(tmp_path), "no_tensorflow")
  for name in ("tensorflow", "tensorflow_datasets"):
    os.makedirs(os.path.join(root, name), exist_ok=True)
    with open(os.path.join(root, name, "__init__.py"), "w") as f:
      f.write(f"raise ModuleNotFoundError({MESSAGE!r})\n")
  return root


def env_without_tensorflow(tmp_path) -> dict:
  """os.environ for a subprocess of one CPU device in which TensorFlow cannot be imported (ltjax on the path)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("XLA_FLAGS", None)
  env["PYTHONPATH"] = os.pathsep.join([blocker(tmp_path), ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH")
                                                                     else []))
  return env
