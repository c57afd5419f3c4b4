"""Pseudo-label semi-supervised learning end to end on the embedded digits (imbalanced-semi-self `train_semi.py`): train
a tiny
base model, pseudo-label a generated pool with `python -m ltjax.tools.pseudolabel`, train on labeled + D_U."""

import json

import jax
import numpy as np
import pytest

from tests.data.test_semi_data import digits_pool, write_pool
from tests.train.test_train import tiny

from ltjax.data import imbalance, unlabeled
from ltjax.tools import pseudolabel
from ltjax.tools.open_run import open_run
from ltjax.train import loop, run as run_lib


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
  root = tmp_path_factory.mktemp("semi")
  cfg = tiny(**{"loss.name": "ce", "train.epochs": 3, "optim.lr": 0.05})
  loop.train_and_evaluate(cfg, str(root / "base"))
  images, truth = digits_pool(100, seed=3)
  pool = write_pool(root, images, truth)
  return root, cfg, pool, images, truth


def reference_predictions(workdir, images):
  """Logits of the run's best checkpoint on raw pool images, normalised by hand (test-time preprocessing)."""
  view = open_run(workdir)
  d = view.run.data
  x = (images.astype(np.float32) / 255.0 - np.asarray(d.mean, np.float32)) / np.asarray(d.std, np.float32)
  out = view.run.model.apply({"params": view.state.params, "batch_stats": view.state.batch_stats}, x, train=False)
  return np.asarray(jax.device_get(out["logits"]), np.float64)


@pytest.mark.slow
def test_pseudo_labels_are_the_base_models_arg_max_over_the_whole_pool(base_run, capsys):
  root, cfg, pool, images, truth = base_run
  out = str(root / "pl.npz")
  assert pseudolabel.main(["--workdir", str(root / "base"), "--pool", pool, "--out", out, "--batch_size", "64"]) == 0
  printed = capsys.readouterr().out
  assert f"wrote {out}: 1000 pseudo labels" in printed and "agreement with the pool's own labels" in printed
  pl = unlabeled.load_pseudo_labels(out)
  z = reference_predictions(str(root / "base"), images)
  p = np.exp(z - z.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  top2 = np.sort(z, 1)[:, -2:]
  clear = top2[:, 1] - top2[:, 0] > 1e-3  # no near-ties, where batch-size rounding could flip the arg-max
  assert clear.mean() > 0.95
  np.testing.assert_array_equal(pl.labels[clear], z.argmax(1)[clear])
  np.testing.assert_allclose(pl.confidence, p.max(1), atol=1e-4)
  assert pl.pool_size == 1000 and pl.pool_image_shape == (8, 8, 1)
  assert pl.pool_sha256 == unlabeled.load_pool(pool).fingerprint()
  np.testing.assert_array_equal(pl.ground_truth, truth)
  assert pl.prediction_model["dataset"] == "digits" and pl.prediction_model["model"] == "resnet8"
  # Three short epochs on digits already label the pool far above the 10% of chance.
  assert np.mean(pl.labels == truth) > 0.3


@pytest.mark.slow
def test_training_on_labeled_plus_pseudo_labeled_data(base_run, tmp_path):
  root, cfg, pool, images, truth = base_run
  out = str(tmp_path / "pl.npz")
  assert pseudolabel.main(["--workdir", str(root / "base"), "--pool", pool, "--out", out]) == 0
  pl = unlabeled.load_pseudo_labels(out)
  semi = tiny(**{"loss.name": "ce", "train.epochs": 1, "data.unlabeled.pool": pool,
                 "data.unlabeled.pseudo_labels": out, "data.unlabeled.imb_factor": 0.5,
                 "data.unlabeled.multiplier": 1})
  run = run_lib.setup(semi)
  info = run.data.unlabeled
  lab_counts = imbalance.class_counts(144, 10, "exp", 0.1)
  u = imbalance.unlabeled_counts(lab_counts, 0.5, multiplier=1)
  assert info.num_labeled == lab_counts.sum() and len(info.pool_indices) == u.sum()
  assert np.bincount(truth[info.pool_indices], minlength=10).tolist() == u.tolist()
  np.testing.assert_array_equal(run.data.train.labels[info.num_labeled:], pl.labels[info.pool_indices])
  want_counts = np.bincount(run.data.train.labels[:info.num_labeled], minlength=10) + np.bincount(
      pl.labels[info.pool_indices], minlength=10)
  assert run.stats.counts.tolist() == want_counts.tolist()
  # One loader over the merged set: an epoch covers labeled and pseudo-labeled examples alike.
  assert run.train_input.steps_per_epoch == (lab_counts.sum() + u.sum()) // semi.train.batch_size
  res = loop.train_and_evaluate(semi, str(tmp_path / "semi"))
  assert res["train_counts"] == want_counts.tolist()
  assert np.isfinite(res["final"]["top1"])
  saved = json.loads((tmp_path / "semi" / "config.json").read_text())
  assert saved["data"]["unlabeled"]["pseudo_labels"] == out


@pytest.mark.slow
def test_pseudolabel_command_refuses_bad_input(base_run, tmp_path, capsys):
  root, cfg, pool, images, truth = base_run
  out = str(tmp_path / "pl.npz")
  assert pseudolabel.main(["--workdir", str(root / "base"), "--pool", pool, "--out", out]) == 0
  assert pseudolabel.main(["--workdir", str(root / "base"), "--pool", pool, "--out", out]) == 2
  assert "exists: choose another --out or pass --overwrite" in capsys.readouterr().err
  big = write_pool(tmp_path, np.zeros((5, 32, 32, 3), np.uint8), name="big.npz")
  assert pseudolabel.main(["--workdir", str(root / "base"), "--pool", big, "--out", str(tmp_path / "b.npz")]) == 2
  assert "holds (32, 32, 3) images but the run" in capsys.readouterr().err
  assert pseudolabel.main(["--workdir", str(tmp_path / "nothing"), "--pool", pool,
                           "--out", str(tmp_path / "c.npz")]) == 2
  assert "not an ltjax run directory" in capsys.readouterr().err
  assert pseudolabel.main(["--workdir", str(root / "base"), "--pool", pool, "--out", str(tmp_path / "d.pkl")]) == 2
  assert "must end in .npz" in capsys.readouterr().err


@pytest.mark.slow
def test_main_reports_a_pseudo_label_file_of_another_pool(tmp_path):
  """main.py as a user runs it: a mismatched pool is a one-line error (exit 2) before anything compiles."""
  from tests.e2e.test_main import run_main
  from tests.data.test_semi_data import write_pseudo
  images, truth = digits_pool(60)
  pool = write_pool(tmp_path, images, truth)
  other = write_pool(tmp_path, images[::-1].copy(), truth[::-1].copy(), name="other.npz")
  pl = write_pseudo(tmp_path, other, truth[::-1].copy())
  r = run_main("--config", "configs/quickstart.py", "--workdir", str(tmp_path / "run"),
               f"--config.data.unlabeled.pool={pool}", f"--config.data.unlabeled.pseudo_labels={pl}",
               "--config.data.unlabeled.multiplier=1", "--config.data.unlabeled.imb_factor=1.0")
  assert r.returncode == 2, r.stderr[-3000:]
  assert "error: pseudo-label file" in r.stderr and "made for a different pool" in r.stderr
  assert "Traceback" not in r.stderr
