"""Issue 20's first faults, each checked against an independent reference: probabilities reported from the logits the
loss uses (LDAM's s·cos), non-finite config values refused, the official constants and k = 0 of SBCL's code, the MoCo
queue under 64-bit JAX, and one-line command-line errors."""

import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import cifar_lt
from ltjax import config as config_lib, losses, metrics
from ltjax.data.stats import ClassStats
from ltjax.losses import contrastive_queue
from ltjax.methods.moco import core as moco_core
from ltjax.methods.supervised import Supervised
from ltjax.train import optim
from tests.cfgutil import ROOT, labels_dataset, metric_rows


def ref_ece(logits, labels, bins=15):
  """Equal-width confidence bins over (0, 1]: Σ_b |acc_b − conf_b|·n_b / N, from softmax probabilities."""
  z = np.asarray(logits, np.float64)
  p = np.exp(z - z.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  conf, pred = p.max(1), p.argmax(1)
  total = 0.0
  for b in range(bins):
    lo, hi = b / bins, (b + 1) / bins
    m = (conf > lo) & (conf <= hi)
    if m.any():
      total += abs((pred[m] == labels[m]).mean() - conf[m].mean()) * m.sum()
  return total / len(labels)


def test_ldam_reports_probabilities_from_s_times_cosine():
  labels = np.arange(40) % 4
  c = cifar_lt.get_config("dataset=cifar10,row=ldam_drw")
  m = Supervised(c, labels_dataset(labels, 4), ClassStats.from_labels(labels, 4))
  rng = np.random.RandomState(0)
  cos = (0.3 * np.tanh(rng.randn(40, 4))).astype(np.float32)
  cos[np.arange(40), labels] = 0.8  # right and well separated, as a trained LDAM model
  z = np.asarray(m.eval_logits({"logits": jnp.asarray(cos)}, {}, None))
  np.testing.assert_allclose(z, 30.0 * cos, rtol=1e-6)
  ece = metrics.calibration(z, labels)["ece"]
  assert ece == pytest.approx(ref_ece(30.0 * cos, labels), abs=1e-6)
  assert ece < ref_ece(cos, labels)  # raw cosines give near-uniform probabilities: the ECE the fault reported
  assert losses.eval_scale("ldam", c.loss) == 30.0 and losses.eval_scale("ce", c.loss) == 1.0
  ce = Supervised(cifar_lt.get_config("row=ce"), labels_dataset(labels, 4), ClassStats.from_labels(labels, 4))
  assert ce.eval_logits({"logits": cos}, {}, None) is cos  # unchanged where the loss uses the logits as they are


@pytest.mark.parametrize("key,value", [("optim.lr", math.nan), ("optim.lr", math.inf), ("optim.weight_decay", -math.inf),
                                       ("data.std", (0.2, math.nan, 0.2)), ("loss.ldam_s", math.nan)])
def test_non_finite_values_are_refused(key, value):
  c = config_lib.default()
  section, field = key.split(".")
  c[section][field] = value
  if key == "data.std":
    c.data.mean = (0.5, 0.5, 0.5)
  with pytest.raises(config_lib.ConfigError, match=rf"config\.{key} = .* is not a finite number"):
    config_lib.validate(c)


def test_unknown_key_suggests_the_closest():
  c = config_lib.default()
  c.train["epoch"] = 3
  with pytest.raises(config_lib.ConfigError, match=r"unknown config key 'train.epoch' \(did you mean 'train.epochs'\?"):
    config_lib.validate(c)


def test_sbcl_stage2_cosine_uses_the_official_pi():
  pi = 3.1415926535  # SimCLR/linear_classify.py
  E, w = 45, 5
  got = optim.lr_table("sbcl_linear_cosine", 0.1, E)
  want = [0.1 * (e + 1) / w if e + 1 <= w else 0.5 * 0.1 * (1 + math.cos(pi * (e + 1 - w) / (E - w)))
          for e in range(E)]
  assert list(got) == want  # bit for bit
  exact_pi = [0.1 * (e + 1) / w if e + 1 <= w else 0.5 * 0.1 * (1 + math.cos(math.pi * (e + 1 - w) / (E - w)))
              for e in range(E)]
  assert list(got) != exact_pi  # the constant matters at float64 precision


def _kcl_ref(labels, queue_labels):
  """k = 0 (official KCL without sampling): positives = column 0 and every same-class queue entry."""
  same = queue_labels[None, :] == labels[:, None]
  return np.concatenate([np.ones((len(labels), 1), bool), same], 1)


def test_kcl_with_k_zero_takes_every_same_class_entry():
  y = np.array([0, 1, 2, 3])
  qy = np.array([0, 1, 0, 2, 0, 1, 5, 0])
  pos = np.asarray(contrastive_queue.kcl_positives(jnp.asarray(y), jnp.asarray(qy), jax.random.PRNGKey(0), k=0))
  np.testing.assert_array_equal(pos, _kcl_ref(y, qy))
  logits = np.random.RandomState(1).randn(4, 9).astype(np.float32)
  z = logits.astype(np.float64) / 0.07
  logp = z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)
  p = _kcl_ref(y, qy)
  ref = -np.mean([logp[i][p[i]].mean() for i in range(4)])
  val = contrastive_queue.kcl_loss(jnp.asarray(logits), jnp.asarray(y), jnp.asarray(qy), jax.random.PRNGKey(0), k=0)
  assert float(val) == pytest.approx(ref, rel=1e-5)


def test_moco_queue_update_under_64_bit_jax():
  with jax.enable_x64(True):
    q = jnp.zeros((8, 3), jnp.float32)
    new, ptr = moco_core.enqueue(q, jnp.asarray(4, jnp.int32), jnp.ones((4, 3), jnp.float32))
    lab, _ = moco_core.enqueue(jnp.zeros((8,), jnp.int32), jnp.asarray(4, jnp.int32), jnp.ones((4,), jnp.int32))
  np.testing.assert_array_equal(np.asarray(new)[4:], 1.0)
  np.testing.assert_array_equal(np.asarray(new)[:4], 0.0)
  assert int(ptr) == 0 and np.asarray(lab).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


@pytest.mark.slow
@pytest.mark.parametrize("arg,expect", [
    ("--config.train.no_such_key=1", "error: unknown config key 'train.no_such_key' (config.train has no 'no_such_key')"),
    ("--config.trian.epochs=3", "did you mean --config.train?"),
    ("--config.optim.lr=nan", "error: config.optim.lr = nan is not a finite number"),
])
def test_command_line_errors_are_one_line_and_create_nothing(tmp_path, arg, expect):
  r = subprocess.run([sys.executable, "main.py", "--config", "configs/quickstart.py", "--workdir",
                      str(tmp_path / "w"), arg], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert r.returncode == 2 and expect in r.stderr
  assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
  assert not (tmp_path / "w").exists()


def test_a_held_workdir_is_refused_at_once_and_left_untouched(tmp_path):
  """A second writer is refused before it writes anything (an in-process flock on another open file description
  conflicts exactly as another process's does); the holder is named; the lock goes with its holder."""
  import time

  from configs import quickstart
  from ltjax.errors import RunLockedError
  from ltjax.train import loop, workdir_lock
  cfg = quickstart.get_config()
  with workdir_lock.hold(str(tmp_path)):
    t0 = time.perf_counter()
    with pytest.raises(RunLockedError, match=r"in use by another run \(pid \d+ on .*, since "):
      loop.train_and_evaluate(cfg, str(tmp_path))
    assert time.perf_counter() - t0 < 3.0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]  # no config.json, no checkpoints
  with workdir_lock.hold(str(tmp_path)):  # released with its holder: taken again at once
    pass


@pytest.mark.slow
def test_two_concurrent_runs_on_one_workdir_the_second_is_refused(tmp_path):
  import os
  import time
  w = str(tmp_path / "w")
  cmd = [sys.executable, "main.py", "--config", "configs/quickstart.py", "--workdir", w,
         "--config.train.progress_bar=False"]
  first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 240
    while not (os.path.exists(os.path.join(w, ".lock")) and os.path.getsize(os.path.join(w, ".lock"))):
      assert time.time() < deadline and first.poll() is None, "the first run did not take the lock"
      time.sleep(0.2)
    second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert second.returncode == 2 and f"pid {first.pid} on " in second.stderr
    assert "in use by another run" in second.stderr and "Traceback" not in second.stderr
  finally:
    first.kill()
    first.wait()
  # kill -9 left no stale lock: a new run on the directory may start (it gets past the lock and resumes or starts).
  from ltjax.train import workdir_lock
  with workdir_lock.hold(w):
    pass


def _data_files(step_dir):
  import os
  out = []
  for root, _, files in os.walk(step_dir / "state"):
    for f in files:
      p = os.path.join(root, f)
      if "manifest" not in f and not f.startswith("_") and os.path.getsize(p) > 4096:
        out.append(p)
  return sorted(out, key=os.path.getsize)


@pytest.mark.slow
def test_flipped_bytes_are_detected_moved_aside_and_the_run_goes_on_from_the_previous_step(tmp_path, caplog):
  import os

  from ltjax.train import loop
  from tests.train.test_train import params_of, tiny
  cfg = tiny(**{"train.epochs": 2, "train.keep_checkpoints": 3})
  full = loop.train_and_evaluate(cfg, str(tmp_path / "full"))
  w = tmp_path / "w"
  loop.train_and_evaluate(cfg, str(w))
  last = w / "checkpoints" / "last"
  steps = sorted(int(s) for s in os.listdir(last) if s.isdigit())
  assert len(steps) == 2
  # Flip bytes in the middle of the newest step's largest array file (the parameters): still a readable checkpoint.
  big = _data_files(last / str(steps[-1]))[-1]
  with open(big, "r+b") as f:
    f.seek(os.path.getsize(big) // 2)
    chunk = bytearray(f.read(64))
    f.seek(os.path.getsize(big) // 2)
    f.write(bytes(b ^ 0xFF for b in chunk))
  state, _ = params_of(str(w), cfg)
  assert int(state.step) == steps[0]
  # Found by the digest check, or by the reader when the flip breaks a compressed chunk (which one depends on where in
  # the file's layout the flipped bytes fall); the digest check alone: test_faults.py.
  assert f"checkpoints/last/{steps[-1]} is damaged" in caplog.text
  moved = os.listdir(w / "checkpoints" / "corrupt")
  assert len(moved) == 1 and moved[0].startswith(f"last-{steps[-1]}-")  # kept for inspection, never deleted
  assert sorted(int(s) for s in os.listdir(last) if s.isdigit()) == steps[:1]
  # The same run again: resumes from the good step and saves the damaged step's number afresh.
  cfg2 = tiny(**{"train.epochs": 2, "train.keep_checkpoints": 3})
  again = loop.train_and_evaluate(cfg2, str(w))
  assert sorted(int(s) for s in os.listdir(last) if s.isdigit()) == steps
  assert again["final"]["top1"] == full["final"]["top1"]
  # The steps after the good one, logged by the first run and redone by this one, appear once, as in the full run.
  assert metric_rows(w) == metric_rows(tmp_path / "full")
  a, _ = params_of(str(w), cfg)
  b, _ = params_of(str(tmp_path / "full"), cfg)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_an_unwritable_workdir_is_one_clear_error(tmp_path):
  """A --workdir that cannot be created (here: below a regular file; a read-only directory takes the same path when
  the tests do not run as root, which ignores permission bits) is one RunDirError naming it, before any work."""
  from configs import quickstart
  from ltjax.errors import LtjaxError, RunDirError
  from ltjax.train import loop
  (tmp_path / "file").write_text("x")
  w = str(tmp_path / "file" / "run")
  with pytest.raises(RunDirError, match=r"cannot create the run directory --workdir .*file/run \(") as e:
    loop.train_and_evaluate(quickstart.get_config(), w)
  assert isinstance(e.value, LtjaxError) and "\n" not in str(e.value)


def test_a_failing_checkpoint_write_is_one_clear_error_and_keeps_the_earlier_ones(tmp_path, monkeypatch):
  """A full disk during a save (a writer that raises ENOSPC in place of the real one): CheckpointError naming the
  step and folder, the earlier checkpoint intact and restorable."""
  import errno
  import os

  import orbax.checkpoint as ocp

  from ltjax.errors import CheckpointError
  from ltjax.train import loop
  from tests.train.test_train import params_of, tiny
  cfg = tiny(**{"train.epochs": 2})
  spe_run = loop.train_and_evaluate(tiny(**{"train.epochs": 1}), str(tmp_path / "probe"))
  spe = spe_run["steps"]
  with pytest.raises(loop.Preempted):
    loop.train_and_evaluate(cfg, str(tmp_path / "w"), stop_at_step=spe)
  real = ocp.CheckpointManager.save

  def full_disk(self, step, *a, **k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  monkeypatch.setattr(ocp.CheckpointManager, "save", full_disk)
  with pytest.raises(CheckpointError, match=r"saving checkpoint step \d+ to .* failed \(No space left on device\); "
                                            r"the earlier checkpoints are intact"):
    loop.train_and_evaluate(cfg, str(tmp_path / "w"))
  monkeypatch.setattr(ocp.CheckpointManager, "save", real)
  state, _ = params_of(str(tmp_path / "w"), cfg)
  assert int(state.step) == spe
