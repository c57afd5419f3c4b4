"""`data.name = 'tfds:NAME'`: any prepared TFDS image-classification dataset, read pixel-exact in TFDS order, made
long-tailed or kept as it is, refused clearly when it is not image classification or its images differ in size,
and trained end to end through main.py (TFDS answered by tfds.testing.mock_data)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ltjax.data import imbalance
from ltjax.errors import ConfigError
from tests.cfgutil import ROOT, override

pytestmark = pytest.mark.tensorflow


def _known(n_train=120, n_test=40, side=28):
  """as_dataset_fn for mock_data: fixed images (class c is filled around 20·c) and labels, in a fixed order."""
  import tensorflow as tf

  def fn(self, split, decoders=None, read_config=None, **kw):
    n = n_train if str(split) == "train" else n_test
    rng = np.random.RandomState(0 if str(split) == "train" else 1)
    y = (np.arange(n) * 7) % 10
    x = np.clip(20 * y[:, None, None, None] + rng.randint(0, 15, (n, side, side, 1)), 0, 255).astype(np.uint8)
    fn.data[str(split)] = (x, y)
    return tf.data.Dataset.from_tensor_slices({"image": x, "label": y.astype(np.int64)})

  fn.data = {}
  return fn


def _cfg(**kw):
  from configs import quickstart
  return override(quickstart.get_config(), **{"data.name": "tfds:mnist", "data.group_bounds": (), **kw}).data


def test_mnist_is_read_pixel_exact_and_made_long_tailed():
  import tensorflow_datasets as tfds

  from ltjax.data import sources
  fn = _known()
  with tfds.testing.mock_data(as_dataset_fn=fn, policy=tfds.testing.MockPolicy.USE_CODE):
    d = sources.load(_cfg(**{"data.imb_type": "none"}))
  x, y = fn.data["train"]
  assert sorted(d.train.indices.tolist()) == list(range(len(y)))  # imb_type none: every image (natural imbalance)
  np.testing.assert_array_equal(d.train.images, x[d.train.indices])  # pixel-exact, indexed by TFDS position
  np.testing.assert_array_equal(d.train.labels, y[d.train.indices])
  np.testing.assert_array_equal(d.test.images, fn.data["test"][0])
  assert d.num_classes == 10 and d.crop_padding == 3 and d.flip  # 28 px: ⌊28/8⌋ padding, flip
  want_mean = (x / 255.0).mean()
  assert d.mean[0] == pytest.approx(want_mean, rel=1e-6)  # statistics of the training split
  with tfds.testing.mock_data(as_dataset_fn=_known(), policy=tfds.testing.MockPolicy.USE_CODE):
    lt = sources.load(_cfg(**{"data.imb_factor": 0.1}))
  assert np.bincount(lt.train.labels).tolist() == imbalance.class_counts(12, 10, "exp", 0.1).tolist()  # N = 12


def test_not_image_classification_and_varying_sizes_are_refused():
  import tensorflow_datasets as tfds

  from ltjax.data import sources
  with tfds.testing.mock_data(num_examples=10, policy=tfds.testing.MockPolicy.USE_CODE):
    with pytest.raises(ConfigError, match="not an image-classification dataset.*sentence"):
      sources.load(_cfg(**{"data.name": "tfds:glue"}))
    with pytest.raises(ConfigError, match="varying size.*data.resize"):
      sources.load(_cfg(**{"data.name": "tfds:caltech101"}))
  with pytest.raises(ConfigError, match="unknown dataset 'tfds:'"):
    sources.loader_for("tfds:")


@pytest.mark.slow
def test_tfds_dataset_end_to_end_through_main(tmp_path):
  script = f"""
import runpy, sys
import numpy as np
import tensorflow_datasets as tfds
sys.path.insert(0, {ROOT!r})
from tests.data.test_tfds_any import _known
sys.argv = ["main.py"] + sys.argv[1:]
with tfds.testing.mock_data(as_dataset_fn=_known(300, 100, 28), policy=tfds.testing.MockPolicy.USE_CODE):
  runpy.run_path("main.py", run_name="__main__")
"""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("XLA_FLAGS", None)
  r = subprocess.run([sys.executable, "-c", script, "--config", "configs/quickstart.py", "--workdir", str(tmp_path),
                      "--config.data.name=tfds:mnist", "--config.data.group_bounds=()", "--config.model.name=resnet8",
                      "--config.train.epochs=2", "--config.train.progress_bar=False", "--config.train.eval_every=1"],
                     cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  res = json.loads((tmp_path / "results.json").read_text())
  assert res["train_counts"] == imbalance.class_counts(30, 10, "exp", 0.1).tolist()  # ρ = 0.1 profile, N = 30
  assert res["best"]["num_examples"] == 100 and len(res["best"]["per_class"]) == 10
  assert json.loads((tmp_path / "config.json").read_text())["data"]["name"] == "tfds:mnist"
