"""One writer per run directory: an exclusive `fcntl.flock` on `<workdir>/.lock`, held for the whole run.

The kernel drops the lock when its holder exits, however it exits (kill -9 included), so a crashed run never leaves
a stale lock behind. The file records the holder (pid, host, start time) for the message a second run gets. In a
multi-process job only process 0 takes it (the job's processes share the directory by design); a second job is
refused by its own process 0. On file systems without working `flock` (some network mounts) the lock is advisory
at best; the run directory should then not be shared between jobs.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import socket

from ltjax.errors import RunDirError, RunLockedError

LOCK_FILE = ".lock"


def _holder(path: str) -> str:
  try:
    with open(path) as f:
      text = f.read().strip()
  except OSError:
    text = ""
  return text or "an unknown process"


@contextlib.contextmanager
def hold(workdir: str, enabled: bool = True):
  """Hold the run directory's lock for the block; RunLockedError at once if another run holds it."""
  if not enabled:
    yield
    return
  path = os.path.join(workdir, LOCK_FILE)
  try:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:
    raise RunDirError(f"cannot write the run directory --workdir {workdir} ({e.strerror or e}): choose a writable "
                      "directory") from None
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise RunLockedError(f"--workdir {workdir} is in use by another run ({_holder(path)}): wait for it to finish "
                           "or stop it, or choose another --workdir") from None
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {stamp}\n".encode(), 0)
    yield
  finally:
    os.close(fd)  # releases the lock
