"""End to end on generated JPEG trees: main.py through the split-file source (ImageNet-LT layout, resnet8 on 16²
crops), its early data errors, and the Places-LT recipe (frozen converted R-50 trunk + trainable block)."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from tests import jpeg_tree

pytestmark = pytest.mark.tensorflow  # JPEG trees and the host (tf.data) path

from tests.cfgutil import ROOT  # noqa: E402
SMALL = ["--config.data.image_size=16", "--config.data.eval_resize=18", "--config.model.name=resnet8",
         "--config.train.batch_size=8", "--config.train.eval_batch_size=8", "--config.train.epochs=2",
         "--config.train.progress_bar=False"]


def run_main(*args, timeout=400):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("XLA_FLAGS", None)
  return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=timeout)


@pytest.fixture(scope="module")
def inlt_tree(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("imagenet"))
  jpeg_tree.make_tree(root, [2, 7, 4, 1], 2, lists=("ImageNet_LT_train.txt", "ImageNet_LT_test.txt"))
  return root


def test_main_trains_imagenet_lt_from_split_files(inlt_tree, tmp_path):
  r = run_main("--config", "configs/imagenet_lt.py:row=arb_ugcc_mixup", "--workdir", str(tmp_path / "run"),
               f"--config.data.root={inlt_tree}", *SMALL)
  assert r.returncode == 0, r.stderr[-3000:]
  res = json.loads((tmp_path / "run" / "results.json").read_text())
  assert res["dataset"] == "imagenet_lt" and res["steps"] == 4 and res["epochs"] == 2  # 14 images: 8 + 6 per epoch
  assert res["train_counts"][:4] == [7, 4, 2, 1] and sum(res["train_counts"]) == 14  # frequency-sorted labels
  assert {"many_idx", "medium_idx", "few_idx", "top5", "ece"} <= set(res["final"])
  assert "top-1" in r.stdout and "index groups" in r.stdout


def test_main_data_errors_are_early_and_clear(inlt_tree, tmp_path):
  t = time.perf_counter()
  r = run_main("--config", "configs/imagenet_lt.py", "--workdir", str(tmp_path / "a"), *SMALL)
  assert r.returncode == 2 and "config.data.root" in r.stderr
  broken = tmp_path / "broken"
  broken.mkdir()
  (broken / "ImageNet_LT_train.txt").write_text("img/c0/train_0.jpg 0\nimg/c0/missing.jpg 0\n")
  (broken / "ImageNet_LT_test.txt").write_text("img/c0/test_0.jpg 0\n")
  r = run_main("--config", "configs/imagenet_lt.py", "--workdir", str(tmp_path / "b"),
               f"--config.data.root={inlt_tree}", f"--config.data.lists_dir={broken}", *SMALL)
  assert r.returncode == 2 and "1 of 2 images listed" in r.stderr and "img/c0/missing.jpg" in r.stderr
  assert time.perf_counter() - t < 120


@pytest.mark.multidevice
def test_places_recipe_keeps_the_converted_trunk_frozen(tmp_path):
  """configs/places_lt.py:depth=50 with a converted (fake) torchvision R-50: after training the trunk's parameters
  and BN statistics still equal the checkpoint, while the fresh block and the 365-way head moved."""
  from configs import places_lt
  from ltjax.data import large
  from ltjax.models.convert import torchvision_to_flax
  from ltjax.train import loop, pretrained
  from tests.models.test_convert import fake_torchvision_resnet

  root = str(tmp_path / "places")
  spec = large.SPECS["places_lt"]
  jpeg_tree.make_tree(root, [4, 3, 1], 1, lists=(spec.train_list, spec.test_list), size_range=(36, 48))
  sd = fake_torchvision_resnet()
  for k in sd:  # realistic scales so the frozen trunk's activations stay finite
    if k.endswith("weight") and sd[k].ndim == 4:
      sd[k] = sd[k] * np.sqrt(2.0 / (sd[k].shape[0] * sd[k].shape[2] * sd[k].shape[3]))
    if k.endswith("running_var"):
      sd[k] = np.ones_like(sd[k])
    if k.endswith("running_mean") or (k.endswith("bias") and not k.startswith("fc")):
      sd[k] = np.zeros_like(sd[k])
    if k.endswith(".weight") and sd[k].ndim == 1:
      sd[k] = np.abs(sd[k]) * 0.5 + 0.5
  npz = tmp_path / "r50.npz"
  flat = torchvision_to_flax(sd)
  np.savez(npz, **flat)
  cfg = places_lt.get_config("depth=50")
  cfg.init.workdir = str(npz)
  cfg.data.root, cfg.data.image_size, cfg.data.eval_resize = root, 32, 36
  cfg.train.batch_size, cfg.train.eval_batch_size, cfg.train.epochs, cfg.train.progress_bar = 4, 4, 1, False
  cfg.mesh.num_devices = 2
  res = loop.train_and_evaluate(cfg, str(tmp_path / "run"))
  assert res["steps"] == 2 and res["num_params"] == 25_557_032 - 2_049_000 + 2048 * 365 + 365
  after = pretrained.load_variables(str(tmp_path / "run"), "last")
  p, bs = pretrained._flatten(after["params"]), pretrained._flatten(after["batch_stats"])
  trunk = [k for k in p if not k.startswith(("block/", "fc/"))]
  assert len(trunk) == len([k for k in flat if k.startswith("params/") and not k.startswith(("params/fc/",
                                                                                            "params/layer4_2/"))])
  for k in trunk:
    np.testing.assert_array_equal(p[k], flat[f"params/{k}"], err_msg=k)
  for k in (k for k in bs if not k.startswith("block/")):
    np.testing.assert_array_equal(bs[k], flat[f"batch_stats/{k}"], err_msg=k)
  assert np.all(np.isfinite(p["block/conv1/kernel"]))
  assert any(np.abs(bs[k] - (0.0 if k.endswith("mean") else 1.0)).max() > 0 for k in bs if k.startswith("block/"))
