"""The device data path (ltjax.data.device): the same epoch orders and batch layout as the host path, augmentation
with the right distributions, batches built where they are used (no collective), equal on 1 and 8 devices, exact
resume, runs on user arrays (.npz), and training, inspection and the notebook without TensorFlow."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

from tests import notf
from tests.cfgutil import labels_dataset
from tests.train.test_train import _disagreement, params_of, tiny

from ltjax import methods
from ltjax.data import device, device_augment, pipeline
from ltjax.data.dataset import Split
from ltjax.train import loop, run as run_lib, step as step_lib


def write_npz(path, side=16, classes=5, per_class=40, test_per_class=8, channels=3, nhw=False, seed=0):
  """Balanced random uint8 images whose mean brightness encodes the class (learnable), as a user's .npz
  (`nhw`: one channel stored as [N, H, W])."""
  rng = np.random.RandomState(seed)

  def split(n):
    y = np.repeat(np.arange(classes), n)
    x = rng.randint(0, 96, (len(y), side, side, channels)) + (y * (160 // classes))[:, None, None, None]
    x = x.astype(np.uint8)
    return (x[..., 0] if nhw else x), y.astype(np.int64)

  x_train, y_train = split(per_class)
  x_test, y_test = split(test_per_class)
  np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
  return str(path)


def npz_cfg(path, **over):
  """The tiny run of test_train on user arrays (crop padding 2 and flips at 16×16: augmentation is active)."""
  return tiny(**{"data.name": "npz", "data.path": path, "data.imb_factor": 0.2, "data.group_bounds": (),
                 "train.batch_size": 32, **over})


def mesh_of(n):
  return step_lib.make_mesh(n)


def random_split(n=40, side=6, channels=3, seed=0):
  rng = np.random.RandomState(seed)
  return Split(rng.randint(1, 256, (n, side, side, channels)).astype(np.uint8), (np.arange(n) % 4).astype(np.int32),
               np.arange(n))


def device_input(split, mesh, batch=16, seed=3, padding=2, flip=True, drop=False):
  b = pipeline.Batches(len(split.labels), batch, mesh.devices.size, drop_remainder=drop)
  order = pipeline.EpochOrder(len(split.labels), b, seed)
  aug = device_augment.standard((0.5, 0.4, 0.3), (0.2, 0.25, 0.3), padding, flip)
  return device.DeviceTrainInput(split, b, mesh, seed=seed, order=order, augment_fn=aug)


# ------------------------------------------------------------------------------------------------ order and layout


@pytest.mark.tensorflow
@pytest.mark.parametrize("rule", ["none", "resample", "class_aware"])
def test_epoch_orders_and_batches_equal_on_host_and_device_paths(rule):
  """Same EpochOrder on both paths (a permutation, resampling with replacement, the class-aware sampler), and on the
  digits (no crop, no flip: the views are the normalised images) the very same batches, step by step."""
  host = run_lib.setup(tiny(**{"data.pipeline": "host", "supervised.train_rule": rule, "data.drop_remainder": False}))
  dev = run_lib.setup(tiny(**{"data.pipeline": "device", "supervised.train_rule": rule, "data.drop_remainder": False}))
  assert not host.train_input.on_device and dev.train_input.on_device
  assert host.train_input.steps_per_epoch == dev.train_input.steps_per_epoch
  for epoch in (0, 1, 5):
    np.testing.assert_array_equal(host.train_input.order(epoch), dev.train_input.order(epoch))
  hb, db = list(host.train_input.epoch(1, start_step=1)), list(dev.train_input.epoch(1, start_step=1))
  assert [len(b["label"]) for b in hb] == [len(b["label"]) for b in db]  # the short last batch too
  for h, d in zip(hb, db):
    np.testing.assert_array_equal(h["index"], d["index"])
    np.testing.assert_array_equal(h["label"], d["label"])
    np.testing.assert_allclose(h["image"], d["image"], rtol=0, atol=1e-6)


def test_groups_lay_out_calls_like_the_host_grouping():
  split = random_split(n=70)
  ti = device_input(split, mesh_of(1), batch=16)  # 4 full steps and a short batch of 6
  assert ti.steps_per_epoch == 5 and ti.full_steps == 4
  assert list(ti.groups(0, 5, 3)) == [(16, 3), (16, 1), (6, 1)]
  assert list(ti.groups(1, 5, 3)) == [(16, 3), (6, 1)]
  assert list(ti.groups(1, 2, 3)) == [(16, 2)]  # stop_at_step inside the epoch
  assert list(ti.groups(4, 1, 3)) == [(6, 1)]
  assert list(ti.groups(0, 5, 1)) == [(16, 1)] * 4 + [(6, 1)]


@pytest.mark.multidevice
def test_batches_equal_on_one_and_eight_devices_and_gather_needs_no_collective():
  """An example's augmentation is a function of (seed, epoch, position) alone, so 1 and 8 devices build identical
  batches; with the table replicated the gather is local: the compiled batch builder holds no collective, and the
  batch comes out sharded along 'data'."""
  split = random_split(n=50)
  one, eight = device_input(split, mesh_of(1)), device_input(split, mesh_of(8))
  for e in (0, 2):
    for a, b in zip(one.epoch(e), eight.epoch(e)):
      assert a.keys() == b.keys() == {"image", "label", "index"}
      for k in a:
        np.testing.assert_array_equal(a[k], b[k])
  data = eight.arrays(2)
  fn = jax.jit(lambda d, t: eight.make_batch(d, t, 16))
  out = fn(data, jnp.asarray(9, jnp.int32))
  assert out["image"].sharding.spec == jax.sharding.PartitionSpec("data")
  hlo = fn.lower(data, jnp.asarray(9, jnp.int32)).compile().as_text()
  for op in ("all-gather", "all-to-all", "all-reduce", "collective-permute"):
    assert op not in hlo, op


@pytest.mark.multidevice
def test_batch_is_the_order_at_the_step_positions():
  """Step t of epoch e holds rows order_e[s·G + j] (s = t mod S), labels and normalised augmented views of them;
  resuming at any step reproduces the uninterrupted epoch's batches bit for bit."""
  split = random_split(n=58)  # 3·16 + 10: the short batch is rounded down to the 8 devices' multiple, 8
  ti = device_input(split, mesh_of(8), padding=0, flip=False)
  full = list(ti.epoch(3))
  assert [len(b["index"]) for b in full] == [16, 16, 16, 8]
  order = ti.order(3)
  for s, b in enumerate(full):
    rows = order[s * 16:s * 16 + len(b["index"])]
    np.testing.assert_array_equal(b["index"], rows)
    np.testing.assert_array_equal(b["label"], split.labels[rows])
    x = (split.images[rows] / 255.0 - np.array([0.5, 0.4, 0.3])) / np.array([0.2, 0.25, 0.3])
    np.testing.assert_allclose(b["image"], x, rtol=1e-5, atol=1e-5)
  resumed = list(ti.epoch(3, start_step=1))
  for a, b in zip(full[1:], resumed):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])


# ------------------------------------------------------------------------------------------------ augmentation


def _decode(out, side, p):
  """(offset y, offset x, flipped) of each crop_flip output of the coded image (pixel (y, x) = 1 + y·side + x)."""
  c = side // 2
  a, b = out[:, c, c, 0].astype(int), out[:, c, c - 1, 0].astype(int)
  flipped = a - b == -1
  src = np.where(flipped, b, a) - 1  # the pixel that sat at (c, c) before the flip
  return src // side - c + p, src % side - c + p, flipped


def test_crop_offsets_are_uniform_and_flip_rate_is_one_half():
  """20,000 draws: offsets uniform on {0, …, 2p}² (χ² over the 25 cells), flips Bernoulli(½) (within 4σ) and
  independent of the offsets; zero padding shows where the crop leaves the image."""
  side, p, n = 6, 2, 20000
  coded = (1 + np.arange(side * side)).reshape(side, side).astype(np.uint8)
  images = jnp.broadcast_to(jnp.asarray(coded)[None, :, :, None], (n, side, side, 1))
  keys = device.example_keys(7, jnp.asarray(0), jnp.arange(n))
  out = np.asarray(device_augment.crop_flip(images, keys, padding=p, flip=True))
  oy, ox, flipped = _decode(out, side, p)
  assert oy.min() == ox.min() == 0 and oy.max() == ox.max() == 2 * p
  cells = np.bincount(oy * (2 * p + 1) + ox, minlength=(2 * p + 1) ** 2)
  assert sps.chisquare(cells).pvalue > 1e-3
  assert abs(flipped.mean() - 0.5) < 4 * np.sqrt(0.25 / n)
  assert abs(flipped[oy == 0].mean() - flipped[oy == 2 * p].mean()) < 0.05
  # A crop shifted by the full padding shows p zero rows/columns at its edge (the pad is black, as torchvision's).
  corner = out[(oy == 0) & (ox == 0) & ~flipped][0, :, :, 0]
  assert (corner[:p] == 0).all() and (corner[:, :p] == 0).all() and (corner[p:, p:] == coded[:side - p, :side - p]).all()
  # Each output is a translate of the image: the coded values stay in increasing runs (no resampling).
  assert set(np.unique(out)) <= set(range(side * side + 1))


def test_augmentation_draws_depend_on_epoch_and_position_only():
  keys = lambda e, pos: device.example_keys(11, jnp.asarray(e), jnp.asarray(pos))  # noqa: E731
  np.testing.assert_array_equal(keys(2, [5, 9]), np.asarray(keys(2, [9, 5]))[::-1])
  assert not np.array_equal(keys(2, [5]), keys(3, [5]))
  assert not np.array_equal(keys(2, [5]), device.example_keys(12, jnp.asarray(2), jnp.asarray([5])))


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_mixup_lambda_follows_its_beta_distribution(alpha):
  """The supervised loss mixes x̃ = λx + (1−λ)x_π with λ ~ Beta(α, α) (on either data path: it runs in the step).
  With one-hot inputs, λ = 1 − the off-diagonal mass of a row moved by π; a KS test against Beta(α, α)."""
  from ltjax import config as config_lib, methods
  from ltjax.data.stats import ClassStats
  cfg = config_lib.default()
  cfg.supervised.mixup_alpha = alpha
  b = 8
  labels = np.arange(b) % 4
  method = methods.REGISTRY["supervised"](cfg, labels_dataset(labels, 4), ClassStats.from_labels(labels, 4))
  batch = {"image": jnp.eye(b, dtype=jnp.float32), "label": jnp.asarray(labels, jnp.int32)}

  def mixed(rng):
    box = {}

    def apply_fn(variables, x, train, mutable):
      box["x"] = x
      return {"logits": jnp.zeros((b, 4))}, {"batch_stats": {}}

    method.loss(apply_fn, {}, {}, {}, batch, {}, rng)
    return box["x"]

  x = np.asarray(jax.jit(jax.vmap(mixed))(jax.random.split(jax.random.PRNGKey(0), 4000)))
  off = x * (1 - np.eye(b))
  moved = off.sum(-1) > 0
  keep = moved.any(-1)  # π = identity (prob 1/8!) leaves λ unobservable
  lam = 1.0 - np.array([off[i][moved[i]].max(-1).min() for i in np.flatnonzero(keep)])
  assert keep.mean() > 0.99
  assert sps.kstest(lam, sps.beta(alpha, alpha).cdf).pvalue > 1e-3


# ------------------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
  return write_npz(tmp_path_factory.mktemp("npz") / "data.npz")


@pytest.mark.slow
def test_device_training_resumes_bitwise_with_active_augmentation(tmp_path, arrays):
  """A preemption in the middle of an epoch (and of a 3-step call) on user arrays with random crops and flips:
  resumed, the run ends with the parameters of the uninterrupted run, bit for bit."""
  cfg = npz_cfg(arrays, **{"train.steps_per_call": 3, "train.epochs": 2})
  run = run_lib.setup(cfg)
  assert run.train_input.on_device and run.data.crop_padding == 2 and run.data.flip
  spe = run.train_input.steps_per_epoch
  loop.train_and_evaluate(cfg, str(tmp_path / "full"))
  with pytest.raises(loop.Preempted):
    loop.train_and_evaluate(cfg, str(tmp_path / "part"), stop_at_step=spe + 1)
  loop.train_and_evaluate(cfg, str(tmp_path / "part"))
  a, _ = params_of(str(tmp_path / "full"), cfg)
  b, _ = params_of(str(tmp_path / "part"), cfg)
  assert int(a.step) == int(b.step) == 2 * spe
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.multidevice
@pytest.mark.slow
def test_device_training_on_one_device_equals_eight(tmp_path, arrays):
  def three(n):
    cfg = npz_cfg(arrays, **{"mesh.num_devices": n, "train.epochs": 2, "supervised.mixup_alpha": 1.0})
    with pytest.raises(loop.Preempted):
      loop.train_and_evaluate(cfg, str(tmp_path / f"d{n}"), stop_at_step=3)
    state = params_of(str(tmp_path / f"d{n}"), cfg)[0]
    return jax.tree.leaves((state.params, state.batch_stats))

  assert _disagreement(three(1), three(8)) <= 1.0


@pytest.mark.slow
@pytest.mark.tensorflow
def test_device_and_host_paths_train_alike(tmp_path, arrays):
  """Same data, same orders, augmentation from the same distributions (different draws): both paths learn the
  arrays' classes, and their evaluations are the same function (device evaluation = host evaluation of a state)."""
  res = {}
  for path in ("host", "device"):
    cfg = npz_cfg(arrays, **{"data.pipeline": path, "train.epochs": 6, "data.imb_factor": 1.0})
    res[path] = loop.train_and_evaluate(cfg, str(tmp_path / path))
    assert res[path]["best"]["top1"] > 60.0  # 5 classes, chance 20%
  cfg = npz_cfg(arrays, **{"data.imb_factor": 1.0})
  state, _ = params_of(str(tmp_path / "host"), cfg)
  on_host = run_lib.setup(npz_cfg(arrays, **{"data.pipeline": "host"})).predict(state, "test")
  on_dev = run_lib.setup(npz_cfg(arrays, **{"data.pipeline": "device"})).predict(state, "test")
  np.testing.assert_array_equal(on_host["labels"], on_dev["labels"])
  np.testing.assert_allclose(on_host["logits"], on_dev["logits"], rtol=1e-4, atol=1e-4)


def test_predict_on_device_handles_replaced_splits_and_padding(arrays):
  """`predict` uploads a split once and again when the run's data is replaced (rotation_eval and pseudolabel swap
  the test split); the padded rows of the last batch are cut off."""
  import dataclasses
  run = run_lib.setup(npz_cfg(arrays, **{"train.eval_batch_size": 16}))
  state = run_lib.create_state(run, 0)
  p = run.predict(state, "test", with_features=True)
  n = len(run.data.test.labels)  # 40: the last batch of 16 is half padding
  assert p["logits"].shape == (n, 5) and p["features"].shape[0] == n
  np.testing.assert_array_equal(p["index"], np.arange(n))
  half = dataclasses.replace(run.data.test, images=run.data.test.images[:10], labels=run.data.test.labels[:10],
                             indices=run.data.test.indices[:10])
  r2 = dataclasses.replace(run, data=dataclasses.replace(run.data, test=half))
  q = r2.predict(state, "test")
  np.testing.assert_allclose(q["logits"], p["logits"][:10], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------ config


class _HostOnly(methods.REGISTRY["supervised"]):
  """A method whose views exist only as TF ops (none of ltjax's own since every family has JAX views)."""
  name = "test_host_only"

  @staticmethod
  def pipelines(cfg):
    return ("host",)


@pytest.mark.parametrize("over,expect", [
    ({"data.pipeline": "gpu"}, "data.pipeline"),
    ({"data.pipeline": "device", "method": "test_host_only"}, "host"),
    ({"data.pipeline": "device", "data.name": "imagenet_lt"}, "in-memory"),
    ({"data.name": "npz"}, "data.path"),
])
def test_impossible_pipeline_settings_are_config_errors(over, expect):
  from ltjax import config as config_lib
  methods.register(_HostOnly)
  try:
    with pytest.raises(config_lib.ConfigError, match=expect):
      config_lib.validate(tiny(**over))
    assert device.choose("auto", _HostOnly.pipelines(None), False) == "host"
  finally:
    methods.REGISTRY.pop("test_host_only")


def test_auto_chooses_the_device_path_where_it_can_run():
  assert device.choose("auto", ("device", "host"), False) == "device"
  assert device.choose("auto", ("host",), False) == "host"  # TF-only views
  assert device.choose("auto", ("device", "host"), True) == "host"  # file-backed split
  assert device.choose("host", ("device", "host"), False) == "host"
  assert device.choose("device", ("device", "host"), False) == "device"


# ------------------------------------------------------------------------------------------------ no TensorFlow


@pytest.mark.slow
def test_cli_trains_and_inspects_without_tensorflow(tmp_path):
  """`import tensorflow` raises in these subprocesses: the digits quickstart trains through main.py on the device
  path, the run opens for inspection, and a run that needs TensorFlow (the tf.data host path) fails at once with one
  line naming what to install."""
  env = notf.env_without_tensorflow(tmp_path)
  run = lambda *a, timeout=600: subprocess.run([sys.executable, *a], cwd=notf.ROOT, env=env, capture_output=True,  # noqa: E731
                                               text=True, timeout=timeout)
  wd = str(tmp_path / "q")
  r = run("main.py", "--config", "configs/quickstart.py", "--workdir", wd, "--config.train.epochs=2",
          "--config.train.eval_every=1", "--config.train.progress_bar=False")
  assert r.returncode == 0, r.stderr[-3000:]
  assert "top-1" in r.stdout
  res = json.loads(open(os.path.join(wd, "results.json")).read())
  assert res["best"]["top1"] > 30.0 and json.load(open(os.path.join(wd, "config.json")))["data"]["pipeline"] == "auto"
  probe = ("import sys, ltjax\nfrom ltjax.tools.open_run import open_run\nr = open_run(sys.argv[1])\nev = r.evaluate('test')\n"
           "r.geometry('test'); r.confusion('test')\nassert 'tensorflow' not in sys.modules\nprint('TOP1', ev['top1'])")
  r = run("-c", probe, wd)
  assert r.returncode == 0, r.stderr[-3000:]
  assert abs(float(r.stdout.split("TOP1")[1]) - res["best"]["top1"]) < 1e-6
  r = run("main.py", "--config", "configs/quickstart.py", "--workdir", str(tmp_path / "r"),
          "--config.data.pipeline=host", timeout=120)
  assert r.returncode == 2 and "needs TensorFlow" in r.stderr and "pip install" in r.stderr
  assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
  assert not os.path.exists(tmp_path / "r")
