"""User data reaches every method family: each family's digits recipe, pointed at a user's .npz of 16×16 RGB images
(so random crops and flips are active), trains end to end on the device data path. The image-tree and tfds:NAME
sources build the same in-memory arrays (`sources._raw_from_arrays`), so they share this path."""

import json
import os

import numpy as np
import pytest

from tests.cfgutil import override

from ltjax import config as config_lib


def _unequal_npz(path):
  """5 classes of 16×16 RGB images, brightness encodes the class; class 4 has fewer training images than the rest,
  so N = 30 and the head classes keep unused images (a hold-out is possible, as CDB-CE needs)."""
  rng = np.random.RandomState(0)
  counts, test = [40, 40, 40, 40, 30], 6
  y = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
  yt = np.repeat(np.arange(5), test)
  img = lambda labels: (rng.randint(0, 96, (len(labels), 16, 16, 3)) + 32 * labels[:, None, None, None]).astype(np.uint8)  # noqa: E731
  np.savez(path, x_train=img(y), y_train=y, x_test=img(yt), y_test=yt)
  return str(path)


CASES = [  # (config module, argument, extra overrides that fit a 2-epoch run)
    ("sbcl_digits", "stage=1", {}),
    ("moco_digits", "stage=moco", {}),
    ("moco_digits", "stage=sbcl", {"sbcl_moco.phase2_epoch": 1}),
    ("records_digits", "row=corr_records_mixup", {}),
    ("records_digits", "row=solar", {"solar.est_epochs": 1, "optim.restart_epoch": 1}),
    ("ss_digits", "stage=rotation", {}),
    ("cdb_digits", "", {"data.val_per_class": 2}),
]


@pytest.mark.slow
def test_every_family_trains_on_user_arrays(tmp_path):
  import importlib

  from ltjax.train import loop
  path = _unequal_npz(tmp_path / "mine.npz")
  for mod, arg, extra in CASES:
    cfg = importlib.import_module(f"configs.{mod}").get_config(arg)
    cfg = override(cfg, **{"data.name": "npz", "data.path": path, "data.group_bounds": (), "data.pipeline": "device",
                           "train.epochs": 2, "train.batch_size": 32, "model.name": "resnet8", "train.progress_bar": False,
                           **extra})
    config_lib.validate(cfg)
    w = str(tmp_path / f"{mod}_{arg}")
    loop.train_and_evaluate(cfg, w)
    res = json.load(open(os.path.join(w, "results.json")))
    assert res["train_counts"][0] == 30 and len(res["train_counts"]) == 5, (mod, arg)
    steps = [json.loads(l) for l in open(os.path.join(w, "metrics.jsonl"))]
    assert all(np.isfinite(s["loss"]) for s in steps if s["split"] == "train" and "loss" in s), (mod, arg)


@pytest.mark.slow
def test_npz_end_to_end_through_main_with_natural_imbalance(tmp_path):
  import subprocess
  import sys

  from tests.cfgutil import ROOT
  path = _unequal_npz(tmp_path / "mine.npz")
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  r = subprocess.run([sys.executable, "main.py", "--config", "configs/quickstart.py", "--workdir", str(tmp_path / "w"),
                      "--config.data.name=npz", f"--config.data.path={path}", "--config.data.imb_type=none",
                      "--config.data.group_bounds=()", "--config.model.name=resnet8", "--config.train.epochs=2",
                      "--config.train.progress_bar=False"], cwd=ROOT, env=env, capture_output=True, text=True,
                     timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  res = json.load(open(tmp_path / "w" / "results.json"))
  assert res["train_counts"] == [40, 40, 40, 40, 30]  # imb_type none: every training image, its own imbalance
  assert res["best"]["num_examples"] == 30 and "few" in r.stdout
