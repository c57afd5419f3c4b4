"""The command line: the README's quickstart run, main.py end to end on TFDS-mocked CIFAR-100, and its errors."""

import json
import os
import subprocess
import sys
import time

import pytest

from tests.cfgutil import ROOT  # noqa: E402


def run_main(*args, timeout=600):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("XLA_FLAGS", None)  # the CLI as a user runs it: one CPU device
  return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=timeout)


def test_quickstart_run_from_the_readme(tmp_path):
  """The README's main job, unchanged: ARB-Loss on long-tailed digits, 30 epochs."""
  r = run_main("--config", "configs/quickstart.py", "--workdir", str(tmp_path), "--config.train.progress_bar=False")
  assert r.returncode == 0, r.stderr[-3000:]
  assert "many" in r.stdout and "few" in r.stdout and "top-1" in r.stdout
  res = json.loads((tmp_path / "results.json").read_text())
  # measured 97.3 (oneDNN convolutions, one-pass BN variance), 97.0 (two-pass), 96.3 (XLA's convolutions)
  assert res["best"]["top1"] > 90.0
  assert res["train_counts"][0] == 144 and res["train_counts"][-1] == 14


MOCK_MAIN = """
import runpy, sys
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

def fn(self, split, decoders=None, read_config=None, **kw):
  # Random images, balanced labels, real-format ids ('train_%05d'), stored in a shuffled order like TFDS.
  n = 2000 if str(split) == "train" else 500
  rng = np.random.RandomState(0 if str(split) == "train" else 1)
  pos = rng.permutation(n)
  return tf.data.Dataset.from_tensor_slices({
      "id": np.array([f"{split}_{p:05d}" for p in pos]),
      "image": rng.randint(0, 256, (n, 32, 32, 3)).astype(np.uint8),
      "label": (pos % 100).astype(np.int64),
      "coarse_label": (pos % 20).astype(np.int64)})

sys.argv = ["main.py"] + sys.argv[1:]
with tfds.testing.mock_data(as_dataset_fn=fn, policy=tfds.testing.MockPolicy.USE_CODE):
  runpy.run_path("main.py", run_name="__main__")
"""


@pytest.mark.tensorflow
def test_main_end_to_end_on_mock_cifar100(tmp_path):
  """main.py as a user runs it, with TFDS answered by tfds.testing.mock_data (balanced CIFAR-100-shaped data)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("XLA_FLAGS", None)
  r = subprocess.run(
      [sys.executable, "-c", MOCK_MAIN, "--config", "configs/cifar_lt.py:dataset=cifar100,imb=0.1,row=arb_mixup",
       "--workdir", str(tmp_path), "--config.model.name=resnet8", "--config.train.epochs=2",
       "--config.train.batch_size=64", "--config.train.progress_bar=False", "--config.train.log_every=5"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "top-1" in r.stdout
  res = json.loads((tmp_path / "results.json").read_text())
  counts = res["train_counts"]
  assert len(counts) == 100 and counts[0] == 20 and counts[-1] == 2  # exp profile, N = 2000/100, ρ = 0.1
  assert res["best"]["num_examples"] == 500 and len(res["best"]["per_class"]) == 100
  for k in ("many_idx", "medium_idx", "few_idx", "many_thr", "ece", "top5"):
    assert k in res["best"]
  cfg = json.loads((tmp_path / "config.json").read_text())
  assert cfg["loss"]["name"] == "arb" and cfg["supervised"]["mixup_alpha"] == 1.0 and "mixup_alpha" not in cfg
  assert cfg["data"]["group_bounds"] == [36, 71]
  steps = [json.loads(l)["step"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert max(steps) == res["steps"] > 0


@pytest.mark.parametrize("args,expect", [
    (["--config.train.epoch=3"], "epoch"),
    (["--config.data.imb_factor=1.5"], "imb_factor"),
    (["--config.train.epochs=abc"], "epochs"),
    (["--config.train_rule=drw"], "config.train_rule was renamed to config.supervised.train_rule"),
    (["--config.mixup_alpha=1.0"], "config.mixup_alpha was renamed to config.supervised.mixup_alpha"),
])
def test_bad_command_lines_fail_clearly(tmp_path, args, expect):
  r = run_main("--config", "configs/quickstart.py", "--workdir", str(tmp_path / "w"), *args, timeout=120)
  assert r.returncode != 0
  assert expect in r.stderr
  assert not (tmp_path / "w" / "checkpoints").exists()


@pytest.mark.tensorflow
def test_missing_dataset_is_reported_in_seconds(tmp_path):
  t = time.time()
  r = run_main("--config", "configs/arb_cifar100.py", "--workdir", str(tmp_path / "w"),
               f"--config.data.data_dir={tmp_path}", timeout=120)
  assert time.time() - t < 60  # process start and imports included; a download attempt would block ~200 s
  assert r.returncode == 2
  assert "cifar100" in r.stderr and "tfds build cifar100" in r.stderr and str(tmp_path) in r.stderr
