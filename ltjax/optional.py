"""Optional dependencies: TensorFlow and TensorFlow Datasets.

ltjax imports TensorFlow only where a run needs it: the host input pipeline (tf.data: file-backed datasets, and the
augmentations that exist only as TF ops) and TFDS reading. `import ltjax`, config validation, the device data path
on in-memory data (digits, `.npz` arrays), inspection and the notebook work without it. Code that needs it calls
`tensorflow(purpose)` / `tensorflow_datasets(purpose)`, which fail with one line naming what to install.
"""

from __future__ import annotations

import importlib.util

from ltjax.errors import MissingDependencyError  # noqa: F401 (re-exported)

INSTALL = "pip install tensorflow-cpu tensorflow-datasets importlib_resources (the versions in requirements.txt)"


def available(module: str = "tensorflow") -> bool:
  """Whether `module` is installed (found on the path; not imported, so this costs no start-up time)."""
  try:
    return importlib.util.find_spec(module) is not None
  except (ImportError, ValueError):
    return False


def _missing(purpose: str, what: str, error: BaseException) -> MissingDependencyError:
  return MissingDependencyError(
      f"{purpose} needs {what}, which cannot be imported here ({type(error).__name__}: {error}). Install it with "
      f"`{INSTALL}`; without it, in-memory data (digits, or your own arrays: --config.data.name=npz) trains on the "
      f"device data path (--config.data.pipeline=auto or device).")


def tensorflow(purpose: str):
  """`import tensorflow`, kept off any accelerator (JAX owns it); MissingDependencyError naming `purpose` if absent."""
  try:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise _missing(purpose, "TensorFlow", e) from None
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # devices already initialised (set before, or TF ops already ran)
    pass
  return tf


def tensorflow_datasets(purpose: str):
  """`import tensorflow_datasets`; MissingDependencyError naming `purpose` if it (or TensorFlow) is absent."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise _missing(purpose, "TensorFlow Datasets", e) from None
  return tfds
