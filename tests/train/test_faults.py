"""Fault injection (issue 20): kill -9 at random points of a real `main.py` run, each resumed and compared bitwise
with an uninterrupted run; a checkpoint that is written but does not read back intact (rotation keeps the only good
one); a failed start leaves no run directory behind."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from ltjax.train import loop
from tests.cfgutil import ROOT, metric_rows
from tests.train.test_train import params_of, tiny

# A short real run (resnet8, 4 epochs of 10 steps, a checkpoint every epoch, evaluation every 2).
RUN_ARGS = ["--config", "configs/quickstart.py", "--config.train.epochs=4", "--config.train.checkpoint_every=1",
            "--config.train.eval_every=2", "--config.model.name=resnet8", "--config.train.progress_bar=False"]


def _main(workdir, **kw):
  return subprocess.Popen([sys.executable, "main.py", "--workdir", str(workdir)] + RUN_ARGS, cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)


def _quickstart_cfg():
  from configs import quickstart
  from tests.cfgutil import override
  return override(quickstart.get_config(), **{"train.epochs": 4, "train.checkpoint_every": 1, "train.eval_every": 2,
                                              "model.name": "resnet8", "train.progress_bar": False})


def _leaves(workdir):
  state, meta = params_of(str(workdir), _quickstart_cfg())
  return [np.asarray(x) for x in jax.tree.leaves(state)], meta


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_is_bitwise_equal(tmp_path):
  """Three runs killed with SIGKILL (four kills) at seeded random moments (anywhere: start-up, compiling, mid-epoch, during a save
  or an evaluation), each rerun to the end: the final state, results and metrics equal the uninterrupted run's."""
  ref = tmp_path / "ref"
  t0 = time.perf_counter()
  p = _main(ref)
  assert p.wait(timeout=600) == 0, p.stderr.read()
  duration = time.perf_counter() - t0
  want, want_meta = _leaves(ref)
  want_results = json.loads((ref / "results.json").read_text())
  rng = random.Random(20)
  for trial, n_kills in enumerate((2, 1)):  # 3 kills in all, at random moments; the first run dies twice
    w = tmp_path / f"k{trial}"
    kills = 0
    for _ in range(n_kills):
      p = _main(w)
      time.sleep(rng.uniform(0.3, 1.0) * duration)
      if p.poll() is None:
        p.send_signal(signal.SIGKILL)
        kills += 1
      p.wait(timeout=60)
    p = _main(w)
    assert p.wait(timeout=600) == 0, p.stderr.read()
    got, meta = _leaves(w)
    assert meta["step"] == want_meta["step"]
    for a, b in zip(got, want):
      np.testing.assert_array_equal(a, b)
    results = json.loads((w / "results.json").read_text())
    assert results["final"]["top1"] == want_results["final"]["top1"]
    assert results["best"] == want_results["best"], f"trial {trial} ({kills} kills)"
    assert metric_rows(w) == metric_rows(ref), f"trial {trial}: metrics.jsonl differs from the uninterrupted run's"
    assert not [d for d in os.listdir(w / "checkpoints" / "last") if "tmp" in d]  # no partial folder left


def _flip_newest(mngr):
  """Flip bytes in the largest array file of the newest step `mngr` wrote (a disk that corrupts what it stores)."""
  step = max(mngr.all_steps())
  files = []
  for root, _, names in os.walk(os.path.join(str(mngr.directory), str(step), "state")):
    files += [os.path.join(root, n) for n in names if "manifest" not in n and not n.startswith("_")]
  big = max(files, key=os.path.getsize)
  with open(big, "r+b") as f:
    f.seek(os.path.getsize(big) // 2)
    chunk = bytearray(f.read(64))
    f.seek(os.path.getsize(big) // 2)
    f.write(bytes(b ^ 0xFF for b in chunk))


@pytest.mark.slow
def test_a_step_that_does_not_read_back_never_costs_the_only_good_checkpoint(tmp_path, monkeypatch):
  """keep_checkpoints = 1: the save of epoch 2 writes corrupt bytes. The run stops with a CheckpointError naming the
  step; the epoch-1 checkpoint is still there (orbax's own rotation would have deleted it), the bad step is in
  corrupt/, and a rerun resumes from epoch 1 and ends equal to an uninterrupted run."""
  import orbax.checkpoint as ocp

  from ltjax.errors import CheckpointError
  over = {"train.epochs": 2, "train.keep_checkpoints": 1, "train.checkpoint_every": 1}
  full = loop.train_and_evaluate(tiny(**over), str(tmp_path / "full"))
  spe = full["steps"] // 2
  w = tmp_path / "w"
  real = ocp.CheckpointManager.save

  def save_then_rot(self, step, *a, **k):
    out = real(self, step, *a, **k)
    if step == 2 * spe and str(self.directory).endswith("last"):
      _flip_newest(self)
    return out

  monkeypatch.setattr(ocp.CheckpointManager, "save", save_then_rot)
  with pytest.raises(CheckpointError, match=rf"checkpoint step {2 * spe} in .*last did not read back intact .*"
                                            r"the earlier checkpoints are kept"):
    loop.train_and_evaluate(tiny(**over), str(w))
  assert os.listdir(w / "checkpoints" / "last") == [str(spe)]
  assert [d.split("-")[:2] for d in os.listdir(w / "checkpoints" / "corrupt")] == [["last", str(2 * spe)]]
  monkeypatch.setattr(ocp.CheckpointManager, "save", real)
  again = loop.train_and_evaluate(tiny(**over), str(w))
  assert again["final"]["top1"] == full["final"]["top1"]
  a, _ = params_of(str(w), tiny(**over))
  b, _ = params_of(str(tmp_path / "full"), tiny(**over))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_rotation_keeps_the_newest_n_after_verifying(tmp_path):
  """Checkpointer.save: the newest `keep` steps of last/ and one of best/, older ones deleted only after the new
  one was read back."""
  from ltjax.train.checkpoint import Checkpointer
  import jax.numpy as jnp
  from flax import struct

  @struct.dataclass
  class S:
    step: jax.Array
    w: jax.Array

  ck = Checkpointer(str(tmp_path), 2)
  for i in range(1, 5):
    ck.save(S(jnp.asarray(i), jnp.full((3,), float(i))), {"i": i})
    ck.save(S(jnp.asarray(i), jnp.full((3,), float(i))), {"i": i}, best=True)
  assert sorted(ck.last.all_steps()) == [3, 4] and list(ck.best.all_steps()) == [4]
  state, meta = ck.restore_latest(S(jnp.asarray(0), jnp.zeros((3,))))
  assert int(state.step) == 4 and meta["i"] == 4
  ck.close()


@pytest.mark.parametrize("over,expect", [
    ({"data.name": "npz", "data.path": "/no/such/file.npz"}, "no such file"),
    ({"init.workdir": "/no/such/stage1"}, "/no/such/stage1"),
])
def test_a_failed_start_leaves_no_run_directory(tmp_path, over, expect):
  from configs import quickstart
  from ltjax.errors import LtjaxError
  from tests.cfgutil import override
  w = tmp_path / "new"
  with pytest.raises(LtjaxError, match=expect):
    loop.train_and_evaluate(override(quickstart.get_config(), **over), str(w))
  assert not w.exists()
  (tmp_path / "old").mkdir()  # a directory the user made is never removed
  with pytest.raises(LtjaxError):
    loop.train_and_evaluate(override(quickstart.get_config(), **over), str(tmp_path / "old"))
  assert (tmp_path / "old").is_dir()


def test_arrays_that_read_back_changed_are_caught_by_the_digests(tmp_path, monkeypatch, caplog):
  """Bytes that decode but are not the saved ones (a flip orbax's reader cannot see): the digest check refuses the
  step, it is moved aside, and the previous step is restored."""
  import jax.numpy as jnp
  import orbax.checkpoint as ocp
  from flax import struct

  from ltjax.train.checkpoint import Checkpointer

  @struct.dataclass
  class S:
    step: jax.Array
    w: jax.Array

  ck = Checkpointer(str(tmp_path), 3)
  for i in (1, 2):
    ck.save(S(jnp.asarray(i), jnp.arange(4.0) * i), {"i": i})
  real = ocp.CheckpointManager.restore

  def restore_flipped(self, step, *a, **k):
    out = real(self, step, *a, **k)
    if step == 2:
      return {"state": out["state"].replace(w=out["state"].w.at[1].add(1e-3)), "meta": out["meta"]}
    return out

  monkeypatch.setattr(ocp.CheckpointManager, "restore", restore_flipped)
  state, meta = ck.restore_latest(S(jnp.asarray(0), jnp.zeros((4,))))
  assert int(state.step) == 1 and meta["i"] == 1
  assert "1 array(s) do not match the digests saved with them (first: .w)" in caplog.text
  moved = os.listdir(tmp_path / "checkpoints" / "corrupt")
  assert len(moved) == 1 and moved[0].startswith("last-2-")
  ck.close()


@pytest.fixture
def small_disk(tmp_path):
  """A 2.2 MB tmpfs at tmp_path/disk (room for about three of the tiny run's checkpoints); skipped where the test
  may not mount one (not root, no mount namespace). Yields (path, grow): grow() enlarges it to 64 MB."""
  import shutil as sh
  disk = tmp_path / "disk"
  disk.mkdir()
  if os.geteuid() != 0 or not sh.which("mount"):
    pytest.skip("mounting a tmpfs needs root")
  r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2200k", "tmpfs", str(disk)], capture_output=True)
  if r.returncode:
    pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")

  def grow():
    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)

  try:
    yield disk, grow
  finally:
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.slow
def test_a_disk_that_fills_up_is_one_clear_error_and_the_run_resumes_once_there_is_room(small_disk, tmp_path):
  from ltjax.errors import LtjaxError
  disk, grow = small_disk
  over = {"train.epochs": 3, "train.keep_checkpoints": 2, "train.checkpoint_every": 1, "train.eval_every": 1}
  full = loop.train_and_evaluate(tiny(**over), str(tmp_path / "full"))
  w = disk / "w"
  with pytest.raises(LtjaxError) as e:
    loop.train_and_evaluate(tiny(**over), str(w))
  msg = str(e.value)
  print(msg)
  assert "\n" not in msg and "No space left on device" in msg and str(w) in msg
  grow()
  again = loop.train_and_evaluate(tiny(**over), str(w))
  assert again["final"]["top1"] == full["final"]["top1"]
  for kind in ("last", "best"):
    assert not [d for d in os.listdir(w / "checkpoints" / kind) if not d.isdigit()], kind  # no partial folder
  a, _ = params_of(str(w), tiny(**over))
  b, _ = params_of(str(tmp_path / "full"), tiny(**over))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.slow
def test_a_full_disk_while_writing_metrics_is_one_line_naming_the_file(tmp_path, monkeypatch):
  import errno

  from ltjax.errors import RunDirError
  from ltjax.train import logger
  real = logger.MetricWriter.write

  def write(self, step, split, values, **extra):
    if split == "test":
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "w" / "metrics.jsonl"))
    return real(self, step, split, values, **extra)

  monkeypatch.setattr(logger.MetricWriter, "write", write)
  with pytest.raises(RunDirError, match=r"writing .*w/metrics.jsonl failed \(No space left on device\); the "
                                        r"checkpoints saved so far are intact"):
    loop.train_and_evaluate(tiny(**{"train.epochs": 1}), str(tmp_path / "w"))
