"""Every error ltjax raises for a user to act on, under one base class, `LtjaxError`.

A leaf module (it imports nothing from ltjax), so any module can raise these without an import circle. Each message is
one line that names the problem and the fix; `main.py` and the `ltjax.tools` commands print it as `error: …` and exit
with status 2, without a traceback. Each class also keeps the builtin base it had before this module existed
(`ValueError`, `FileNotFoundError`, …), so `except ValueError` in user code keeps working.
"""


class LtjaxError(Exception):
  """Base of every user-facing ltjax error: the message names the problem and the fix."""


class ConfigError(LtjaxError, ValueError):
  """A config that cannot run; the message names the field and the fix."""


class DataNotFoundError(LtjaxError, FileNotFoundError):
  """A dataset is not prepared where ltjax looks for it (nothing is downloaded)."""


class SplitFileError(LtjaxError, ValueError):
  """A split file or the image tree it lists is malformed or incomplete; the message names the file and line."""


class ImageDecodeError(LtjaxError, ValueError):
  """An image of a file-backed split cannot be read or decoded; the message names the file."""


class PoolError(ConfigError):
  """An unlabeled pool or pseudo-label file that cannot be used with the config; the message names the mismatch
  and the fix."""


class VOCFormatError(LtjaxError, ValueError):
  """A VOC partial-label CSV that does not parse; the message names the file and line."""


class CheckpointError(LtjaxError, RuntimeError):
  """A checkpoint that cannot be restored into this run (missing, corrupt, or from another config)."""


class ConversionError(LtjaxError, ValueError):
  """A PyTorch checkpoint whose keys or shapes do not map onto the ltjax model."""


class MissingDependencyError(LtjaxError, ImportError):
  """What the run asks for needs a package that is not installed; the message names it and the fix."""


class RunDirError(LtjaxError, OSError):
  """The run directory cannot be created or written (read-only, not a directory, no space); the message names it."""


class RunLockedError(LtjaxError, RuntimeError):
  """Another run holds the run directory (ltjax.train.workdir_lock); the message names the holder."""


class TrainingDiverged(LtjaxError, RuntimeError):
  """The loss or a parameter became NaN/inf; the message names the step and the last good checkpoint."""


class Preempted(LtjaxError, RuntimeError):
  """Raised after the state was saved because the run was asked to stop (SIGTERM or `stop_at_step`)."""
