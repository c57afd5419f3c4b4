"""Checkpoints with orbax: the last N train states plus the best one, each with a JSON record.

Layout under the run directory:
  checkpoints/last/<step>/{state,meta}   the newest `keep` states (resume from the newest readable one)
  checkpoints/best/<step>/{state,meta}   the state with the best selection metric

Orbax writes each checkpoint to a temporary folder and renames it when complete, so an interrupted save never
replaces a good checkpoint, and the temporary folders an interrupted save leaves are removed when the run restarts.

Integrity: each checkpoint's meta records a digest (BLAKE2b-128) of every array of the saved state, and restoring
recomputes it. A checkpoint that cannot be read (truncated, deleted files) or whose arrays do not match their digests
(flipped bytes) is reported by path and moved aside to `checkpoints/corrupt/<last|best>-<step>-<time>` (never
deleted, never restored again, and no longer in the way of a save of the same step); restoring falls back to the
previous one, and only when none is good is it an error. Checkpoints written before digests existed are restored
without the check. Before any array is read, the size of every file of the step folder is compared with the list
written beside it when it was saved (`file_sizes.json`): an emptied, truncated or deleted file is named by path at
once, without handing the folder to the reader (whose failures on such files flood stderr with asynchronous
tracebacks); flipped bytes keep the size and are caught by the digests.

Rotation: a new step is read back and its digests checked before the steps beyond the newest `keep` (best: 1) are
deleted, so keeping the last N and the best can never delete the only good checkpoint: a step that does not read
back intact is moved aside and the save is an error, with every earlier step still in place.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import re
import shutil
from typing import Any, Dict, Optional, Tuple

import jax
import numpy as np
import orbax.checkpoint as ocp

from ltjax.errors import CheckpointError  # noqa: F401 (re-exported)
from ltjax.train.logger import write_json_atomic

log = logging.getLogger("ltjax")


def _manager(path: str) -> ocp.CheckpointManager:
  # No max_to_keep: orbax would delete the oldest step as soon as a new one is written, before anything has read the
  # new one back. `Checkpointer.save` rotates itself, after the new step is verified.
  return ocp.CheckpointManager(
      os.path.abspath(path),
      options=ocp.CheckpointManagerOptions(max_to_keep=None, create=True, enable_async_checkpointing=False,
                                           cleanup_tmp_directories=True))


def _host(x) -> np.ndarray:
  """This process's full copy of a (replicated) array."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    return np.asarray(x.addressable_data(0))
  return np.asarray(jax.device_get(x))


def digests(state) -> Dict[str, str]:
  """'/'-joined leaf path → BLAKE2b-128 hex digest of the leaf's dtype, shape and bytes."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    a = np.ascontiguousarray(_host(leaf))
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    out[jax.tree_util.keystr(path)] = h.hexdigest()
  return out


def os_error_reason(e: BaseException) -> Optional[str]:
  """The operating-system reason behind a failed write ("No space left on device"), or None when `e` is not one:
  an OSError, or TensorStore's ValueError that carries `[os_error_code='N']`."""
  if isinstance(e, OSError):
    return e.strerror or str(e)
  m = re.search(r"os_error_code='?(\d+)", str(e))
  return os.strerror(int(m.group(1))) if m else None


SIZES_FILE = "file_sizes.json"


def file_sizes(step_dir: str) -> Dict[str, int]:
  """{path relative to the step folder: size in bytes} of every file under `step_dir` but the list itself."""
  out = {}
  for root, _, names in os.walk(step_dir):
    for name in names:
      rel = os.path.relpath(os.path.join(root, name), step_dir)
      if rel != SIZES_FILE:
        out[rel] = os.path.getsize(os.path.join(root, name))
  return out


def check_file_sizes(step_dir: str) -> None:
  """CheckpointError naming the first file of `step_dir` that is missing or has another size than when it was saved.
  A step without a readable list (saved before lists existed, or killed before its list was written) is not
  checked here; its arrays' digests still are."""
  try:
    with open(os.path.join(step_dir, SIZES_FILE)) as f:
      want = json.load(f)
  except (OSError, ValueError):
    return
  for rel, size in sorted(want.items()):
    path = os.path.join(step_dir, rel)
    if not os.path.isfile(path):
      raise CheckpointError(f"{rel} is missing ({size} bytes when saved)")
    got = os.path.getsize(path)
    if got != size:
      raise CheckpointError(f"{rel} is {got} bytes, {size} when saved")


def _remove_partial(directory: str, step: int) -> None:
  """Delete what an interrupted save of `step` left (orbax's `<step>.orbax-checkpoint-tmp*` folder)."""
  try:
    names = os.listdir(directory)
  except OSError:
    return
  for name in names:
    if name.startswith(f"{step}.orbax-checkpoint-tmp"):
      shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


def _abstract(state):
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


class Checkpointer:

  def __init__(self, workdir: str, keep: int):
    self.root = os.path.join(workdir, "checkpoints")
    self.keep = keep
    self.last = _manager(os.path.join(self.root, "last"))
    self.best = _manager(os.path.join(self.root, "best"))

  def save(self, state, meta: dict, *, best: bool = False) -> None:
    """Write `state` and `meta` as the step's checkpoint, read it back and check its digests, and only then delete
    the steps beyond the newest `keep` (1 for best). A step that does not read back intact is moved aside and is a
    CheckpointError; the earlier steps are all still there, so rotation never deletes the only good checkpoint."""
    step = int(jax.device_get(state.step))
    meta = dict(meta, digests=digests(state))
    args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
    mngr = self.best if best else self.last
    if step in mngr.all_steps():
      return
    try:
      mngr.save(step, args=args, force=True)
      mngr.wait_until_finished()
      if jax.process_index() == 0:
        step_dir = os.path.join(str(mngr.directory), str(step))
        write_json_atomic(os.path.join(step_dir, SIZES_FILE), file_sizes(step_dir))
    except Exception as e:  # a full disk, a read-only or vanished directory
      reason = os_error_reason(e)
      if reason is None:
        raise
      _remove_partial(str(mngr.directory), step)
      raise CheckpointError(f"saving checkpoint step {step} to {mngr.directory} failed ({reason}); the "
                            "earlier checkpoints are intact: free space or fix the directory, then rerun to resume "
                            "from them") from None
    try:
      self._restore(mngr, step, state)
    except Exception as e:  # written but not readable as written (a failing disk): keep the earlier steps
      kind = "best" if best else "last"
      where = self._move_aside(mngr, kind, step)
      raise CheckpointError(f"checkpoint step {step} in {mngr.directory} did not read back intact "
                            f"({type(e).__name__}: {str(e)[:200]}); moved to {where}, the earlier checkpoints are "
                            "kept: check the disk, then rerun to resume from them") from None
    self._prune(mngr, 1 if best else self.keep)

  def _prune(self, mngr, keep: int) -> None:
    """Delete all but the newest `keep` steps (called only after the newest one was verified)."""
    for old in sorted(mngr.all_steps())[:-keep]:
      mngr.delete(old)

  def _restore(self, mngr, step, template) -> Tuple[Any, dict]:
    check_file_sizes(os.path.join(str(mngr.directory), str(step)))
    args = ocp.args.Composite(state=ocp.args.StandardRestore(_abstract(template)), meta=ocp.args.JsonRestore())
    r = mngr.restore(step, args=args)
    state, meta = r["state"], dict(r["meta"])
    want = meta.pop("digests", None)
    if want is not None:
      got = digests(state)
      bad = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
      if bad:
        raise CheckpointError(f"{len(bad)} array(s) do not match the digests saved with them (first: {bad[0]})")
    return state, meta

  def _move_aside(self, mngr, kind: str, step: int) -> str:
    """Move a corrupt step folder to checkpoints/corrupt/ (process 0) and forget it; returns where it went."""
    src = os.path.join(str(mngr.directory), str(step))
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    dst = os.path.join(self.root, "corrupt", f"{kind}-{step}-{stamp}")
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices(f"ltjax_checkpoint_move_{kind}_{step}")
    if jax.process_index() == 0 and os.path.isdir(src):
      os.makedirs(os.path.dirname(dst), exist_ok=True)
      shutil.move(src, dst)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices(f"ltjax_checkpoint_moved_{kind}_{step}")
    mngr.reload()
    return dst

  def _restore_newest_good(self, mngr, kind: str, template) -> Optional[Tuple[Any, dict]]:
    steps = sorted(mngr.all_steps(), reverse=True)
    errors = []
    for step in steps:
      try:
        return self._restore(mngr, step, template)
      except Exception as e:  # unreadable, partial or corrupt checkpoint: set it aside, fall back to the previous one
        where = self._move_aside(mngr, kind, step)
        msg = (f"checkpoint {mngr.directory}/{step} is damaged ({type(e).__name__}: {str(e)[:200]}); moved to "
               f"{where}")
        log.warning("%s; falling back to an older checkpoint", msg)
        errors.append(msg)
    if steps:
      raise CheckpointError("no good checkpoint under " + str(mngr.directory) + ":\n  " + "\n  ".join(errors) +
                            "\nThe damaged ones were moved aside; rerun to start the run from scratch, or use another "
                            "--workdir.")
    return None

  def restore_latest(self, template) -> Optional[Tuple[Any, dict]]:
    """The newest good (state, meta) of checkpoints/last, or None when there is no checkpoint at all."""
    return self._restore_newest_good(self.last, "last", template)

  def restore_best(self, template) -> Optional[Tuple[Any, dict]]:
    """The best checkpoint's (state, meta), or None when there is none (or it is damaged: it is moved aside)."""
    try:
      return self._restore_newest_good(self.best, "best", template)
    except CheckpointError as e:
      log.warning("%s", str(e).splitlines()[0])
      return None

  def close(self):
    self.last.close()
    self.best.close()
