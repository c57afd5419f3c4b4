"""End-to-end behaviour of the trainer on the embedded digits data: training works, resume equals an uninterrupted
run, 1 device equals 8, NaN losses stop the run without losing checkpoints, damaged checkpoints fall back."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.cfgutil import override

from ltjax import config as config_lib
from ltjax.data import pipeline
from ltjax.train import loop, run as run_lib, step as step_lib


def tiny(**over):
  c = config_lib.default()
  c.data.name = "digits"
  c.data.imb_factor = 0.1
  c.data.group_bounds = (3, 7)
  c.model.name = "resnet8"
  c.loss.name = "arb"
  c.optim.schedule = "arb_cosine"
  c.train.epochs = 2
  c.train.batch_size = 64
  c.train.eval_batch_size = 100
  c.train.log_every = 4
  c.train.progress_bar = False
  c.data.drop_remainder = True  # one compiled step shape keeps the tests fast
  return override(c, **over)


def params_of(workdir, cfg):
  run = run_lib.setup(cfg)
  state = run_lib.create_state(run, cfg.seed)
  from ltjax.train.checkpoint import Checkpointer
  ck = Checkpointer(workdir, 2)
  restored, meta = ck.restore_latest(state)
  ck.close()
  return jax.device_get(restored), meta


@pytest.mark.slow
def test_train_writes_run_directory_and_learns(tmp_path):
  cfg = tiny(**{"train.epochs": 6, "optim.weight_decay": 5e-4})
  res = loop.train_and_evaluate(cfg, str(tmp_path))
  for name in ("config.json", "metrics.jsonl", "results.json"):
    assert (tmp_path / name).exists(), name
  assert os.listdir(tmp_path / "tb")
  assert os.listdir(tmp_path / "checkpoints" / "best")
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["best"]["top1"] == pytest.approx(res["best"]["top1"])
  for key in ("top1", "top5", "per_class", "many_thr", "medium_thr", "few_thr", "many_idx", "few_idx", "ece",
              "mce"):
    assert key in results["best"], key
  # Far above the 10% of chance after 6 short epochs.
  assert results["best"]["top1"] > 50.0
  assert len(results["best"]["per_class"]) == 10
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert {l["split"] for l in lines} == {"train", "test"}
  assert all(np.isfinite(l["loss"]) for l in lines if l["split"] == "train")


@pytest.mark.slow
@pytest.mark.parametrize("per_call", [1, 3])
def test_resume_equals_uninterrupted_run(tmp_path, per_call):
  """Bitwise, also with 3 steps per call: the preempted run's calls are grouped differently from the uninterrupted
  run's (stop mid-group, resume mid-epoch), and every step still runs through the same compiled loop body."""
  cfg = tiny(**{"train.steps_per_call": per_call})
  full = tmp_path / "full"
  loop.train_and_evaluate(cfg, str(full))
  part = tmp_path / "part"
  run = run_lib.setup(cfg)
  spe = run.train_input.steps_per_epoch
  stop = spe + spe // 2  # in the middle of the second epoch
  with pytest.raises(loop.Preempted):
    loop.train_and_evaluate(cfg, str(part), stop_at_step=stop)
  mid, meta = params_of(str(part), cfg)
  assert int(mid.step) == stop
  loop.train_and_evaluate(cfg, str(part))
  a, _ = params_of(str(full), cfg)
  b, _ = params_of(str(part), cfg)
  assert int(a.step) == int(b.step) == 2 * spe
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _three_steps(tmp_path, n, **over):
  """Params and batch stats after three training steps of the tiny digits run on n devices."""
  cfg = tiny(**{"mesh.num_devices": n, "train.epochs": 1, **over})
  with pytest.raises(loop.Preempted):
    loop.train_and_evaluate(cfg, str(tmp_path / f"d{n}"), stop_at_step=3)
  state = params_of(str(tmp_path / f"d{n}"), cfg)[0]
  assert int(state.step) == 3
  return jax.tree.leaves((state.params, state.batch_stats))


def _disagreement(a, b):
  """Largest |x − y| / (atol + rtol·|y|) over all leaves, with rtol = 1e-3 and atol = max(1e-4, 1e-3·max|x|).

  ≤ 1 means the two runs agree to float reassociation (per-device partial sums), the 1-vs-8-device criterion."""
  worst = 0.0
  for x, y in zip(a, b):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    atol = max(1e-4, 1e-3 * float(np.abs(x).max()))
    worst = max(worst, float(np.max(np.abs(x - y) / (atol + 1e-3 * np.abs(y)))))
  return worst


@pytest.mark.multidevice
@pytest.mark.slow
@pytest.mark.parametrize("row", ["arb_mixup", "ldam_drw"])
def test_one_device_equals_eight(tmp_path, row):
  """Three steps (BN over the global batch, mixup draws, DRW weights) agree on 1 and 8 devices."""
  assert jax.device_count() == 8
  extra = {"arb_mixup": {"loss.name": "arb", "supervised.mixup_alpha": 1.0},
           "ldam_drw": {"loss.name": "ldam", "supervised.train_rule": "drw", "supervised.drw_epoch": 1}}[row]
  one, eight = _three_steps(tmp_path, 1, **extra), _three_steps(tmp_path, 8, **extra)
  assert _disagreement(one, eight) <= 1.0


@pytest.mark.multidevice
@pytest.mark.slow
def test_one_vs_eight_tolerance_catches_per_device_batch_norm(tmp_path, monkeypatch):
  """The tolerance above is loose enough for reassociation but not for a sharding bug: BatchNorm statistics taken
  per device (over each device's 8 examples, the classic data-parallel BN mistake) push the 8-device run past it."""
  one = _three_steps(tmp_path, 1)
  from ltjax.models import layers

  def per_device_batch_norm(x, scale, bias, epsilon=1e-5):
    g = x.reshape((8, -1) + x.shape[1:])  # [device, local batch, H, W, C]
    axes = tuple(range(1, g.ndim - 1))
    mean = jnp.mean(g, axes, keepdims=True)
    var = jnp.mean(jnp.square(g - mean), axes, keepdims=True)
    y = (g - mean) * (scale * jax.lax.rsqrt(var + epsilon)) + bias
    return y.reshape(x.shape), mean.reshape(8, -1).mean(0), var.reshape(8, -1).mean(0)

  monkeypatch.setattr(layers, "batch_norm_train", per_device_batch_norm)
  buggy = _three_steps(tmp_path, 8)
  assert _disagreement(one, buggy) > 2.0


@pytest.mark.multidevice
@pytest.mark.slow
def test_steps_per_call_agrees_with_single_steps(tmp_path):
  """4 steps per compiled call (a lax.scan, a short last group padded with skipped steps, the epoch's short last
  batch in a group of its own) trains like one step per call: the same number of steps, a log row after each call,
  parameters equal to float reassociation — on 1 device and on 8 (stacked batches sharded along their second
  axis)."""
  base = {"train.epochs": 1, "train.log_every": 1, "data.drop_remainder": False}  # the epoch ends in a short batch
  spe = run_lib.setup(tiny(**base)).train_input.steps_per_epoch
  assert spe % 4 != 1, "the epoch should end in a partial group before the short batch's own group"
  states, logged = [], []
  for name, over in (("single", {}), ("grouped", {"train.steps_per_call": 4}),
                     ("grouped8", {"train.steps_per_call": 4, "mesh.num_devices": 8})):
    cfg = tiny(**{**base, **over})
    loop.train_and_evaluate(cfg, str(tmp_path / name))
    state = params_of(str(tmp_path / name), cfg)[0]
    assert int(state.step) == spe
    states.append(jax.tree.leaves((state.params, state.batch_stats)))
    with open(tmp_path / name / "metrics.jsonl") as f:
      rows = [json.loads(line) for line in f]
    logged.append([(r["step"], round(r["lr"], 9)) for r in rows if r["split"] == "train"])
  assert _disagreement(states[0], states[1]) <= 1.0 and _disagreement(states[0], states[2]) <= 1.0
  # One log row per step with log_every = 1 and one call per step; a grouped call logs once, after its last step.
  assert [s for s, _ in logged[0]] == list(range(1, spe + 1))
  full = (spe - 1) // 4 * 4  # steps in full groups; then the rest of the full-sized batches, then the short one
  expect = list(range(4, full + 1, 4)) + ([spe - 1] if spe - 1 > full else []) + [spe]
  assert [s for s, _ in logged[1]] == expect == [s for s, _ in logged[2]]


def test_group_steps_stacks_and_pads():
  batches = [{"image": np.full((2, 3, 3, 1), i, np.float32), "label": np.full((2,), i, np.int32)} for i in range(7)]
  groups = list(pipeline.group_steps(iter(batches), 3, 7))
  assert [g[1].tolist() for g in groups] == [[True] * 3, [True] * 3, [True, False, False]]
  assert groups[0][0]["image"].shape == (3, 2, 3, 3, 1) and groups[2][0]["label"].tolist() == [[6, 6], [0, 0], [0, 0]]
  # n limits what is taken (stop_at_step): the rest of the source stays unread.
  it = iter(batches)
  assert [g[1].sum() for g in pipeline.group_steps(it, 3, 4)] == [3, 1] and next(it)["label"][0] == 4
  # A source shorter than n ends with its last (padded) group.
  assert [g[1].sum() for g in pipeline.group_steps(iter(batches[:2]), 3, 7)] == [2]
  # A batch of another shape (the short last batch of an epoch, drop_remainder=False) starts a group of its own.
  short = {"image": np.ones((1, 3, 3, 1), np.float32), "label": np.full((1,), 9, np.int32)}
  groups = list(pipeline.group_steps(iter(batches[:4] + [short]), 3, 5))
  assert [(g[0]["label"].shape, g[1].sum()) for g in groups] == [((3, 2), 3), ((3, 2), 1), ((3, 1), 1)]
  assert groups[2][0]["label"][:, 0].tolist() == [9, 0, 0]


def test_steps_per_call_auto_choice():
  cifar = step_lib.image_values({"image": np.zeros((128, 32, 32, 3), np.float32), "label": np.zeros((128,), np.int32)})
  digits = step_lib.image_values({"image": jax.ShapeDtypeStruct((64, 8, 8, 3), np.float32),
                                  "label": jax.ShapeDtypeStruct((64,), np.int32)})
  assert (cifar, digits) == (128 * 32 * 32 * 3, 64 * 8 * 8 * 3)
  assert step_lib.steps_per_call(0, cifar, "cpu") == step_lib.AUTO_STEPS_PER_CALL > 1
  assert step_lib.steps_per_call(0, digits, "cpu") == 1
  assert step_lib.steps_per_call(0, cifar, "gpu") == step_lib.steps_per_call(0, cifar, "tpu") == 1
  assert step_lib.steps_per_call(3, digits, "gpu") == 3


@pytest.mark.slow
@pytest.mark.parametrize("per_call", [1, 4])
def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, per_call):
  cfg = tiny(**{"train.epochs": 3, "train.steps_per_call": per_call})
  # One good epoch, saved.
  run = run_lib.setup(cfg)
  spe = run.train_input.steps_per_epoch
  with pytest.raises(loop.Preempted):
    loop.train_and_evaluate(cfg, str(tmp_path), stop_at_step=spe)
  good, _ = params_of(str(tmp_path), cfg)
  # Now the loss turns NaN at the third step of the second epoch.
  from ltjax.methods.supervised import Supervised
  orig = Supervised.loss

  def nan_loss(self, apply_fn, params, batch_stats, method_state, batch, hparams, rng):
    import jax.numpy as jnp
    loss, aux = orig(self, apply_fn, params, batch_stats, method_state, batch, hparams, rng)
    return jnp.where(jnp.asarray(batch["index"]).sum() >= 0, jnp.nan, loss), aux

  monkeypatch.setattr(Supervised, "loss", nan_loss)
  with pytest.raises(loop.TrainingDiverged, match=f"at step {spe + 1} ") as e:
    loop.train_and_evaluate(cfg, str(tmp_path))
  assert f"newest good checkpoint is step {spe} " in str(e.value)
  assert (tmp_path / "checkpoints" / "last" / str(spe)).is_dir()
  after, _ = params_of(str(tmp_path), cfg)
  assert int(after.step) == spe
  for x, y in zip(jax.tree.leaves(good), jax.tree.leaves(after)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.slow
def test_divergence_before_the_first_checkpoint_says_none_was_saved(tmp_path, monkeypatch):
  from ltjax.methods.supervised import Supervised
  orig = Supervised.loss

  def nan_loss(self, *args):
    import jax.numpy as jnp
    loss, aux = orig(self, *args)
    return loss * jnp.nan, aux

  monkeypatch.setattr(Supervised, "loss", nan_loss)
  with pytest.raises(loop.TrainingDiverged, match="no checkpoint was saved before it") as e:
    loop.train_and_evaluate(tiny(**{"train.epochs": 2}), str(tmp_path))
  assert "at step 1 " in str(e.value) and "checkpoints/last" not in str(e.value)
  assert not os.listdir(tmp_path / "checkpoints" / "last") if (tmp_path / "checkpoints" / "last").exists() else True


@pytest.mark.slow
def test_unreadable_checkpoint_falls_back_to_previous(tmp_path, caplog):
  """Emptied files are named by the size list saved with the step, before the reader sees the folder; a step whose
  list is gone is still restored (checkpoints from before the lists) and still checked by its digests."""
  cfg = tiny(**{"train.epochs": 2, "train.keep_checkpoints": 3})
  loop.train_and_evaluate(cfg, str(tmp_path))
  last = tmp_path / "checkpoints" / "last"
  steps = sorted(int(s) for s in os.listdir(last) if s.isdigit())
  assert len(steps) == 2
  os.remove(last / str(steps[0]) / "file_sizes.json")
  # Damage the newest checkpoint's array data.
  emptied = []
  for root, _, files in os.walk(last / str(steps[-1]) / "state"):
    for f in files:
      if "manifest" in f or f.startswith("d") or root.endswith("/d"):
        if os.path.getsize(os.path.join(root, f)):
          emptied.append(os.path.relpath(os.path.join(root, f), last / str(steps[-1])))
        open(os.path.join(root, f), "wb").close()
  state, meta = params_of(str(tmp_path), cfg)
  assert int(state.step) == steps[0]
  first = sorted(emptied)[0]
  assert f"last/{steps[-1]} is damaged (CheckpointError: {first} is 0 bytes, " in caplog.text


def test_file_size_check_names_a_truncated_or_missing_file(tmp_path):
  from ltjax.errors import CheckpointError
  from ltjax.train import checkpoint
  (tmp_path / "state" / "d").mkdir(parents=True)
  (tmp_path / "state" / "d" / "a").write_bytes(b"x" * 10)
  (tmp_path / "meta").write_bytes(b"y" * 3)
  sizes = checkpoint.file_sizes(str(tmp_path))
  assert sizes == {"state/d/a": 10, "meta": 3}
  (tmp_path / checkpoint.SIZES_FILE).write_text(json.dumps(sizes))
  assert checkpoint.file_sizes(str(tmp_path)) == sizes  # the list does not list itself
  checkpoint.check_file_sizes(str(tmp_path))
  (tmp_path / "state" / "d" / "a").write_bytes(b"x" * 4)
  with pytest.raises(CheckpointError, match=r"^state/d/a is 4 bytes, 10 when saved$"):
    checkpoint.check_file_sizes(str(tmp_path))
  os.remove(tmp_path / "state" / "d" / "a")
  with pytest.raises(CheckpointError, match=r"^state/d/a is missing \(10 bytes when saved\)$"):
    checkpoint.check_file_sizes(str(tmp_path))
  (tmp_path / checkpoint.SIZES_FILE).write_text("{not json")  # an unreadable list: left to the digests
  checkpoint.check_file_sizes(str(tmp_path))


@pytest.mark.slow
def test_workdir_with_other_config_is_refused(tmp_path):
  loop.train_and_evaluate(tiny(**{"train.epochs": 1}), str(tmp_path))
  before = sorted(os.listdir(tmp_path / "checkpoints" / "last"))
  with pytest.raises(config_lib.ConfigError, match="different config"):
    loop.train_and_evaluate(tiny(**{"train.epochs": 1, "optim.lr": 0.05}), str(tmp_path))
  assert sorted(os.listdir(tmp_path / "checkpoints" / "last")) == before


@pytest.mark.parametrize("over,match", [
    ({"data.imb_factor": 1.5}, "imb_factor"),
    ({"data.imb_factor": 0.0}, "imb_factor"),
    ({"loss.name": "nope"}, "loss.name"),
    ({"supervised.train_rule": "reweight", "loss.name": "arb"}, "takes no class weights"),
    ({"train.select_on": "val"}, "val_per_class"),
    ({"train.steps_per_call": -1}, "steps_per_call"),
])
def test_bad_configs_are_rejected_before_anything_runs(over, match):
  with pytest.raises(config_lib.ConfigError, match=match):
    config_lib.validate(tiny(**over))


def test_unknown_key_in_config_file_is_rejected():
  cfg = tiny()
  cfg.train.epoch = 3  # typo of train.epochs
  with pytest.raises(config_lib.ConfigError, match="unknown config key 'train.epoch'"):
    config_lib.validate(cfg)
