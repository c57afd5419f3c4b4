"""Checkpoints with orbax: the last N train states plus the best one, each with a JSON record.

Layout under the run directory:
  checkpoints/last/<step>/{state,meta}   the newest `keep` states (resume from the newest readable one)
  checkpoints/best/<step>/{state,meta}   the state with the best selection metric

Orbax writes each checkpoint to a temporary folder and renames it when complete, so an interrupted save never
replaces a good checkpoint. A checkpoint that cannot be read (truncated, deleted files) is reported and skipped:
restoring falls back to the previous one, and only when none is readable is it an error.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional, Tuple

import jax
import orbax.checkpoint as ocp

from ltjax.errors import CheckpointError  # noqa: F401 (re-exported)

log = logging.getLogger("ltjax")


def _manager(path: str, keep: int) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.abspath(path),
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False))


def _abstract(state):
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


class Checkpointer:

  def __init__(self, workdir: str, keep: int):
    root = os.path.join(workdir, "checkpoints")
    self.last = _manager(os.path.join(root, "last"), keep)
    self.best = _manager(os.path.join(root, "best"), 1)

  def save(self, state, meta: dict, *, best: bool = False) -> None:
    step = int(jax.device_get(state.step))
    args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
    mngr = self.best if best else self.last
    if step in mngr.all_steps():
      return
    mngr.save(step, args=args, force=True)
    mngr.wait_until_finished()

  def _restore(self, mngr, step, template) -> Tuple[Any, dict]:
    args = ocp.args.Composite(state=ocp.args.StandardRestore(_abstract(template)), meta=ocp.args.JsonRestore())
    r = mngr.restore(step, args=args)
    return r["state"], dict(r["meta"])

  def restore_latest(self, template) -> Optional[Tuple[Any, dict]]:
    """The newest readable (state, meta) of checkpoints/last, or None when there is no checkpoint at all."""
    steps = sorted(self.last.all_steps(), reverse=True)
    errors = []
    for step in steps:
      try:
        return self._restore(self.last, step, template)
      except Exception as e:  # unreadable or partial checkpoint: fall back to the previous one
        msg = f"checkpoint {self.last.directory}/{step} is unreadable ({type(e).__name__}: {str(e)[:200]})"
        log.warning("%s; falling back to an older checkpoint", msg)
        errors.append(msg)
    if steps:
      raise CheckpointError("no readable checkpoint under " + str(self.last.directory) + ":\n  " +
                            "\n  ".join(errors) + "\nMove the damaged run directory aside and start a new --workdir, "
                            "or delete the unreadable step folders to restart from scratch.")
    return None

  def restore_best(self, template) -> Optional[Tuple[Any, dict]]:
    step = self.best.latest_step()
    return None if step is None else self._restore(self.best, step, template)

  def close(self):
    self.last.close()
    self.best.close()
