"""The training loop: the imperative shell around the pure step (I/O, logging, evaluation, checkpoints).

`ltjax.train.run.setup(cfg)` builds everything a run needs from a validated config (also used to open a finished run);
`train_and_evaluate(cfg, workdir)` trains, evaluating every `eval_every` epochs, keeping the last checkpoints and
the best one, and writes `results.json`. Restarted with the same workdir, it resumes at the exact step it stopped.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import math
import os
import shutil
import signal
import time
from typing import Any, Dict, Optional

import jax
import ml_collections
import numpy as np

from ltjax import config as config_lib, host_memory, methods, optional
from ltjax.data import device, pipeline, sources
from ltjax.errors import Preempted, RunDirError, TrainingDiverged  # noqa: F401 (re-exported)
from ltjax.train import pretrained as pretrained_lib, step as step_lib, workdir_lock
from ltjax.train.checkpoint import Checkpointer
from ltjax.train.logger import MetricWriter, write_json_atomic, write_text_atomic
from ltjax.train.run import Run, create_state, setup, training_diagnostics
from ltjax.train.state import TrainState

log = logging.getLogger("ltjax")

# Config fields that may differ when a run directory is resumed (they do not change what is computed).
RESUMABLE_CHANGES = ("train.epochs", "train.log_every", "train.progress_bar", "train.eval_every",
                     "train.checkpoint_every", "train.keep_checkpoints", "train.diagnostics_every",
                     "distributed.coordinator_address", "distributed.num_processes", "distributed.process_id",
                     "distributed.cluster_detection", "distributed.initialization_timeout")


def _import_optional(cfg) -> None:
  """Imports TensorFlow / TFDS when the run needs them, before anything is loaded or written: a missing one is a
  one-line MissingDependencyError at once, not a traceback after the data has loaded."""
  d = cfg.data
  if d.name in sources.FILE_BACKED:
    optional.tensorflow(f"dataset '{d.name}' (images decoded by the host input pipeline)")
  elif device.choose(d.pipeline, methods.REGISTRY[cfg.method].pipelines(cfg), False) == "host":
    optional.tensorflow("config.data.pipeline = 'host' (tf.data)" if d.pipeline == "host" else
                        f"method '{cfg.method}' (its training views are TensorFlow ops: it trains on the host data "
                        "path)")
  if sources.reads_tfds(d.name):
    optional.tensorflow_datasets(f"dataset '{d.name}' (read from TFDS)")


def _check_workdir_config(workdir: str, cfg) -> None:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return
  old = dict(config_lib._walk(config_lib.load_stored(path)))
  new = dict(config_lib._walk(ml_collections.ConfigDict(config_lib.to_dict(cfg))))
  # A key the stored config lacks (written by an older ltjax) matches when the new value is the schema default.
  defaults = dict(config_lib._walk(ml_collections.ConfigDict(config_lib.to_dict(config_lib.schema()))))
  norm = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731  (JSON stores tuples as lists)
  diff = sorted(k for k in set(old) | set(new) if norm(old.get(k, defaults.get(k))) != norm(new.get(k))
                and k not in RESUMABLE_CHANGES)
  if diff:
    shown = ", ".join(f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in diff[:8])
    raise config_lib.ConfigError(f"--workdir {workdir} holds a run with a different config ({shown}). Resuming it "
                                 "would mix two experiments: choose a new --workdir, or rerun with the config stored "
                                 "in config.json.")


class _Stepper:
  """A run's compiled train steps, and the calls that take an epoch's steps through them: on the host path a
  tf.data batch (or a group of `per_call` stacked batches) per call, on the device path nothing but the step
  counter and the epoch's device-resident order. `per_call` (steps per compiled call) is fixed on the first epoch:
  config.train.steps_per_call, or the auto choice from the size of one global step's images."""

  def __init__(self, run: Run):
    self.run = run
    cfg = run.cfg
    self.step_args = (run.method, run.model.apply, run.tx, run.schedule, run.mesh, cfg.train.trainable,
                      cfg.train.frozen_bn)
    self.per_call: Optional[int] = None
    self.fns: Dict[Any, Any] = {}

  def _choose(self, values: int) -> None:
    self.per_call = step_lib.steps_per_call(self.run.cfg.train.steps_per_call, values, jax.default_backend())
    if self.per_call > 1:
      log.info("%d train steps per compiled call (config.train.steps_per_call)", self.per_call)

  def calls(self, epoch: int, start: int, n: int, hparams):
    """Yields (jitted step, its arguments after the state, steps it runs, images it trains on, a batch or its
    shapes) for steps [start, start + n) of `epoch` (the one-step host path stops only when the caller does)."""
    if self.run.train_input.on_device:
      yield from self._device_calls(epoch, start, n, hparams)
    else:
      yield from self._host_calls(epoch, start, n, hparams)

  def _host_calls(self, epoch, start, n, hparams):
    mesh = self.run.mesh
    batches = self.run.train_input.epoch(epoch, start)
    if self.per_call is None:
      first = next(batches)
      self._choose(step_lib.image_values(first) * jax.process_count())
      batches = itertools.chain([first], batches)
    k = self.per_call
    if "host" not in self.fns:
      make = step_lib.make_train_step if k == 1 else step_lib.make_multi_train_step
      self.fns["host"] = make(*self.step_args)
    fn = self.fns["host"]
    if k == 1:
      it = pipeline.prefetch(batches, lambda b: step_lib.to_global(b, mesh))
    else:
      it = pipeline.prefetch(pipeline.group_steps(batches, k, n),
                             lambda g: (step_lib.to_global(g[0], mesh, stacked=True), g[1]))
    with contextlib.closing(it):
      for item in it:
        if k == 1:
          yield fn, (item, hparams), 1, item["label"].shape[0], item
        else:
          batch, active = item
          count = int(active.sum())
          yield (fn, (batch, jax.device_put(active, step_lib.replicated(mesh)), hparams), count,
                 count * batch["label"].shape[1], batch)

  def _device_calls(self, epoch, start, n, hparams):
    ti = self.run.train_input
    if self.per_call is None:
      self._choose(step_lib.image_values(ti.batch_shapes(ti.batches.global_batch)))
    k = self.per_call
    data = ti.arrays(epoch)
    rep = step_lib.replicated(self.run.mesh)
    for size, count in ti.groups(start, n, k):
      if size not in self.fns:
        self.fns[size] = step_lib.make_device_train_step(*self.step_args, feed=ti, batch_size=size, per_call=k)
      args = (data, hparams) if k == 1 else (data, jax.device_put(np.arange(k) < count, rep), hparams)
      yield self.fns[size], args, count, count * size, ti.batch_shapes(size)


def _per_step(metrics: list, counts: list, per_call: int) -> list:
  """Host metrics of a run of calls → one dict per step: a K-step call's [K] leaves hold its first n steps."""
  if per_call == 1:
    return metrics
  return [{k: v[i] for k, v in m.items()} for m, n in zip(metrics, counts) for i in range(n)]


def _selection_score(cfg, evals: dict) -> Optional[float]:
  if cfg.train.select_on == "last":
    return math.inf
  e = evals.get(cfg.train.select_on)
  return None if e is None else e["top1"]


def _open_workdir(cfg, workdir: str):
  """(run, fresh): check the workdir holds this experiment or nothing, build the run and store its config (process
  0, atomically: other processes may be reading it). `fresh`: the workdir held no checkpoint when the run started
  (decided once, before any process creates checkpoint folders)."""
  _check_workdir_config(workdir, cfg)
  fresh = not _has_checkpoint(workdir)
  if fresh:
    pretrained_lib.check_source(cfg.init.workdir, cfg.init.checkpoint)
  run = setup(cfg, validated=True)
  if jax.process_index() == 0:
    write_text_atomic(os.path.join(workdir, "config.json"), config_lib.to_json(cfg))
  counts = run.stats.counts
  log.info("data %s: train %d images (per class %d…%d), test %d, classes %d", run.data.name, counts.sum(),
           counts.max(), counts.min(), len(run.data.test.labels), run.data.num_classes)
  return run, fresh


def _has_checkpoint(workdir: str) -> bool:
  root = os.path.join(workdir, "checkpoints", "last")
  return os.path.isdir(root) and bool(os.listdir(root))


def _restore_or_init(run: Run, ckpt: Checkpointer, workdir: str, fresh: bool):
  """(state, selection record): the latest checkpoint of the workdir, or a fresh state (with `config.init`'s
  pre-trained weights) and an empty record."""
  cfg = run.cfg
  restored = None if fresh else ckpt.restore_latest(create_state(run, cfg.seed))
  if restored is None:
    return create_state(run, cfg.seed, pretrained=True), {"best_score": None, "best_epoch": None, "best": None,
                                                          "final": None}
  state, meta = restored
  log.info("resuming %s at step %d", workdir, int(state.step))
  return jax.device_put(state, step_lib.replicated(run.mesh)), meta["record"]


@contextlib.contextmanager
def _preemption():
  """A flag dict {'flag': bool} set by SIGTERM while the block runs (the previous handler restored after)."""
  flag = {"flag": False}
  old = None
  try:
    old = signal.signal(signal.SIGTERM, lambda *_: flag.update(flag=True))
  except ValueError:  # not the main thread
    pass
  try:
    yield flag
  finally:
    if old is not None:
      signal.signal(signal.SIGTERM, old)


def _flush_train_metrics(pending, per_call: int, *, step: int, epoch: int, last_saved: Optional[int], workdir: str,
                         writer: MetricWriter, bar, seconds: float, images: int) -> None:
  """Write the mean of the pending steps' metrics (and images/s) at `step`; a non-finite loss among them raises
  TrainingDiverged naming the first bad step and the newest good checkpoint (`last_saved`, None when this run has
  none yet)."""
  host = _per_step(jax.device_get([m for m, _ in pending]), [c for _, c in pending], per_call)
  losses = np.array([h["loss"] for h in host])
  if not np.all(np.isfinite(losses)):
    bad = step - len(host) + int(np.argmin(np.isfinite(losses))) + 1
    if last_saved is None:
      saved = ("no checkpoint was saved before it (the first is written at the end of the first epoch), so a rerun "
               "starts over")
    else:
      saved = (f"the newest good checkpoint is step {last_saved} ({workdir}/checkpoints/last/{last_saved}), which a "
               "rerun resumes from")
    raise TrainingDiverged(
        f"the loss became {losses[~np.isfinite(losses)][0]} at step {bad} (epoch {epoch}); {saved}. Lower "
        "config.optim.lr or check the data and loss settings first.")
  avg = {k: float(np.mean([h[k] for h in host])) for k in host[0]}
  avg["images_per_sec"] = images / max(seconds, 1e-9)
  writer.write(step, "train", avg, epoch=epoch)
  if bar is not None:
    bar.set_postfix(loss=f"{avg['loss']:.4f}", lr=f"{avg['lr']:.4g}", img_s=f"{avg['images_per_sec']:.0f}")
    bar.update(len(host))


def _evaluate_and_select(run: Run, state: TrainState, record: dict, *, step: int, done_epochs: int,
                         writer: MetricWriter) -> bool:
  """Evaluate test (and val) after `done_epochs` epochs, log them (and the diagnostics when due), update the
  selection record in place; returns whether this is the new best (the caller saves it)."""
  cfg = run.cfg
  evals = {"test": run.evaluate(state, "test")}
  if run.data.val is not None:
    evals["val"] = run.evaluate(state, "val")
  for split, e in evals.items():
    writer.write(step, split, e, epoch=done_epochs - 1)
  every = cfg.train.diagnostics_every
  if every and (done_epochs % every == 0 or done_epochs == cfg.train.epochs):
    writer.write(step, "diagnostics", training_diagnostics(run, state), epoch=done_epochs - 1)
  record["final"] = evals["test"]
  score = _selection_score(cfg, evals)
  best = score is not None and (record["best_score"] is None or score > record["best_score"])
  if best:
    record.update(best_score=score, best_epoch=done_epochs - 1, best=evals["test"])
  log.info("epoch %d/%d: test top-1 %.2f (best %.2f after epoch %d)", done_epochs, cfg.train.epochs,
           evals["test"]["top1"], record["best"]["top1"], record["best_epoch"] + 1)
  return best


def train_and_evaluate(cfg: ml_collections.ConfigDict, workdir: str, *, stop_at_step: Optional[int] = None) -> dict:
  """Train (or resume) the run in `workdir`; returns the results dict also written to results.json.

  Phases: validation (once, before the workdir is created), the workdir's lock (`workdir_lock`: one writer per run
  directory), `_open_workdir` (check, set up, store the config), `_restore_or_init`, then per epoch the method's
  `on_epoch_start`, the compiled train calls (`_Stepper`) with `_flush_train_metrics` every `log_every` steps,
  `_evaluate_and_select` every `eval_every` epochs, and checkpoints; SIGTERM (`_preemption`) or `stop_at_step` saves
  the state and raises Preempted.
  """
  config_lib.validate(cfg)
  _import_optional(cfg)
  created = not os.path.exists(workdir)
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise RunDirError(f"cannot create the run directory --workdir {workdir} ({e.strerror or e}): choose a "
                      "writable directory") from None
  with workdir_lock.hold(workdir, enabled=jax.process_index() == 0):
    try:
      return _train(cfg, workdir, stop_at_step)
    except OSError as e:
      if created and jax.process_index() == 0:
        _discard_if_unused(workdir)
      if e.errno not in _WRITE_ERRNOS:
        raise
      raise RunDirError(f"writing {e.filename or workdir} failed ({e.strerror}); the checkpoints saved so far are "
                        "intact: free space or fix the directory, then rerun to resume") from None
    except BaseException:
      if created and jax.process_index() == 0:
        _discard_if_unused(workdir)
      raise


# Errors of a write the run directory refused (full disk, quota, read-only file system, permissions).
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def _discard_if_unused(workdir: str) -> None:
  """Remove a run directory this call created when the run failed before storing anything in it (missing data, a
  stage-1 run that is not there): a failed start leaves no empty workdir behind."""
  try:
    if set(os.listdir(workdir)) <= {workdir_lock.LOCK_FILE}:
      shutil.rmtree(workdir)
  except OSError:
    pass


def _train(cfg, workdir: str, stop_at_step: Optional[int]) -> dict:
  run, fresh = _open_workdir(cfg, workdir)
  ckpt = Checkpointer(workdir, cfg.train.keep_checkpoints)
  state, record = _restore_or_init(run, ckpt, workdir, fresh)
  n_params = int(sum(x.size for x in jax.tree.leaves(state.params)))
  stepper = _Stepper(run)
  spe = run.train_input.steps_per_epoch
  epochs = cfg.train.epochs
  step = int(jax.device_get(state.step))
  writer = MetricWriter(workdir, resume_step=step)
  last_saved = step if step > 0 else None  # the newest checkpoint this run can fall back to (a restored one)

  def save(best=False):
    ckpt.save(state, {"record": record, "epoch": step // spe, "step": step}, best=best)

  sized = False
  try:
    with _preemption() as preempt:
      while step < spe * epochs:
        epoch, start = divmod(step, spe)
        state = run.method.on_epoch_start(epoch, state, run)
        hparams = jax.device_put(run.method.epoch_hparams(epoch), step_lib.replicated(run.mesh))
        # Calls never run past the epoch's end or stop_at_step (at least one step, as the one-step path does).
        n = spe - start if stop_at_step is None else max(1, min(spe - start, stop_at_step - step))
        bar = _progress(cfg, spe, start, epoch, epochs)
        pending, t0, n_img = [], time.perf_counter(), 0
        with contextlib.closing(stepper.calls(epoch, start, n, hparams)) as call_iter:
          for train_step, args, n_steps, n_images, probe in call_iter:
            first = not sized
            if first:  # first call: keep the step's temporaries for reuse (main.py set up the malloc policy)
              sized = True
              log.info("compiling the train step (the first call waits for it)…")
              t_compile = time.perf_counter()
              host_memory.reuse_for_step(train_step, probe, state, *args)
            state, m = train_step(state, *args)
            if first:
              jax.block_until_ready(m)
              log.info("train step compiled and first call done in %.1f s", time.perf_counter() - t_compile)
            pending.append((m, n_steps))
            n_img += n_images
            step += n_steps
            end_of_epoch = step % spe == 0
            stop = preempt["flag"] or (stop_at_step is not None and step >= stop_at_step)
            if sum(c for _, c in pending) >= cfg.train.log_every or end_of_epoch or stop:
              _flush_train_metrics(pending, stepper.per_call, step=step, epoch=epoch, last_saved=last_saved,
                                   workdir=workdir, writer=writer, bar=bar, seconds=time.perf_counter() - t0,
                                   images=n_img)
              pending, t0, n_img = [], time.perf_counter(), 0
            if stop and not end_of_epoch:
              save()
              raise Preempted(f"stopped at step {step} (epoch {epoch}); the state is saved in {workdir}: rerun the "
                              "same command to resume")
        if bar is not None:
          bar.close()
        done_epochs = step // spe
        if cfg.train.eval_every and (done_epochs % cfg.train.eval_every == 0 or done_epochs == epochs):
          if _evaluate_and_select(run, state, record, step=step, done_epochs=done_epochs, writer=writer):
            save(best=True)
        if done_epochs % cfg.train.checkpoint_every == 0 or done_epochs == epochs or preempt["flag"]:
          save()
          last_saved = step
        if preempt["flag"] or (stop_at_step is not None and step >= stop_at_step and step < spe * epochs):
          raise Preempted(f"stopped at step {step}; the state is saved in {workdir}: rerun the same command to "
                          "resume")
  finally:
    writer.close()
    ckpt.close()

  results = {
      "dataset": run.data.name, "method": cfg.method, "loss": cfg.loss.name, "steps": step, "epochs": epochs,
      "num_params": n_params, "selected_on": cfg.train.select_on, "best_epoch": record["best_epoch"],
      "best": record["best"], "final": record["final"], "train_counts": run.stats.counts.tolist(),
  }
  if jax.process_index() == 0:
    write_json_atomic(os.path.join(workdir, "results.json"), results)
  return results


def _progress(cfg, total, initial, epoch, epochs):
  if not cfg.train.progress_bar or jax.process_index() != 0:
    return None
  from tqdm import tqdm
  return tqdm(total=total, initial=initial, desc=f"epoch {epoch + 1}/{epochs}", leave=False, dynamic_ncols=True)


def _pct(v) -> str:
  """A percentage with two decimals, or '–' for a group with no class (nothing measured, not 0%)."""
  return "–" if v is None else f"{v:.2f}"


def summary_lines(results: dict) -> list:
  """Human-readable lines for the end of a run: overall and many/medium/few accuracy."""
  lines = []
  for name in ("best", "final"):
    r = results.get(name)
    if not r:
      continue
    # best_epoch is stored 0-based (the index of the epoch); printed as the count of epochs done, like the log lines.
    s = f"{name:>5} (after epoch {results['best_epoch'] + 1}): " if name == "best" else f"{name:>5}: "
    s += f"top-1 {r['top1']:.2f}"
    if "top5" in r:
      s += f"  top-5 {r['top5']:.2f}"
    s += f"  many {_pct(r['many_thr'])}  medium {_pct(r['medium_thr'])}  few {_pct(r['few_thr'])} (threshold groups)"
    if "many_idx" in r:
      s += f"  | index groups {_pct(r['many_idx'])}/{_pct(r['medium_idx'])}/{_pct(r['few_idx'])}"
    s += f"  ECE {r['ece']:.2f}"
    lines.append(s)
  return lines
