"""A user's image-folder tree: read into the same arrays as its pixels, made long-tailed or kept as it is, trained
end to end through main.py; malformed trees are one-line errors naming the path."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ltjax.data import image_folder, sources
from ltjax.errors import ConfigError, DataNotFoundError
from tests.cfgutil import ROOT


def make_tree(root, counts, size=20, test_per_class=3, val_per_class=0, gray=False, seed=0):
  """Class c's images are filled with value 40·c + noise (so classes are separable); returns {split: (x, y)}."""
  rng = np.random.default_rng(seed)
  out = {}
  for split, per in (("train", None), ("test", test_per_class), ("val", val_per_class)):
    if split == "val" and not val_per_class:
      continue
    xs, ys = [], []
    for c, n in enumerate(counts):
      d = os.path.join(root, split, f"class_{c:02d}")
      os.makedirs(d, exist_ok=True)
      for i in range(per or n):
        shape = (size, size) if gray else (size, size, 3)
        a = np.clip(40 * c + rng.integers(0, 30, shape), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(os.path.join(d, f"{i:04d}.png"))
        xs.append(a[..., None] if gray else a)
        ys.append(c)
    out[split] = (np.stack(xs), np.asarray(ys))
  return out


def test_tree_is_read_pixel_exact_in_sorted_class_order(tmp_path):
  want = make_tree(str(tmp_path), [5, 3, 2], val_per_class=1)
  a = image_folder.load_tree(str(tmp_path))
  assert list(a["classes"]) == ["class_00", "class_01", "class_02"]
  for split in ("train", "test", "val"):
    np.testing.assert_array_equal(a[f"x_{split}"], want[split][0])
    np.testing.assert_array_equal(a[f"y_{split}"], want[split][1])
  g = tmp_path / "gray"
  make_tree(str(g), [2, 2], size=9, gray=True)
  assert image_folder.load_tree(str(g))["x_train"].shape == (4, 9, 9, 1)
  assert image_folder.load_tree(str(g), resize=4)["x_train"].shape == (4, 4, 4, 1)


def _cfg(root, **kw):
  from configs import quickstart
  from tests.cfgutil import override
  return override(quickstart.get_config(), **{"data.name": "image_folder", "data.root": str(root), **kw})


def test_long_tailed_selection_statistics_and_augmentation_by_size(tmp_path):
  make_tree(str(tmp_path), [30] * 4, size=20)
  d = sources.load(_cfg(tmp_path, **{"data.imb_factor": 0.1}).data)
  # The official exp profile n_i = int(N·ρ^(i/(C−1))), N = 30 (the smallest class of the balanced tree).
  np.testing.assert_array_equal(np.bincount(d.train.labels), [int(30 * 0.1 ** (i / 3)) for i in range(4)])
  assert d.crop_padding == 2 and d.flip  # 20 px: padding ⌊20/8⌋, flipped
  x = d.train.images.astype(np.float64) / 255
  np.testing.assert_allclose(d.mean, x.reshape(-1, 3).mean(0), rtol=1e-6)
  natural = sources.load(_cfg(tmp_path, **{"data.imb_type": "none"}).data)
  assert len(natural.train.labels) == 120


def test_a_malformed_tree_names_the_path(tmp_path):
  with pytest.raises(DataNotFoundError, match="no such directory"):
    image_folder.scan(str(tmp_path / "nope"))
  (tmp_path / "train" / "a").mkdir(parents=True)
  with pytest.raises(DataNotFoundError, match=r"test is missing"):
    image_folder.scan(str(tmp_path))
  (tmp_path / "test" / "a").mkdir(parents=True)
  with pytest.raises(DataNotFoundError, match=r"train/a holds no images"):
    image_folder.scan(str(tmp_path))
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "train" / "a" / "0.png")
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "test" / "a" / "0.png")
  (tmp_path / "test" / "b").mkdir()
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "test" / "b" / "0.png")
  with pytest.raises(DataNotFoundError, match=r"test/b: class 'b' has no folder"):
    image_folder.scan(str(tmp_path))
  os.remove(tmp_path / "test" / "b" / "0.png")
  os.rmdir(tmp_path / "test" / "b")
  Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(tmp_path / "train" / "a" / "1.png")
  with pytest.raises(DataNotFoundError, match=r"1.png is 8×9 but .*0.png is 8×8.*--config.data.resize"):
    image_folder.load_tree(str(tmp_path))
  (tmp_path / "train" / "a" / "1.png").write_bytes(b"not a png")
  with pytest.raises(DataNotFoundError, match=r"cannot decode image .*1.png"):
    image_folder.load_tree(str(tmp_path))
  from ltjax import config as config_lib
  with pytest.raises(ConfigError, match="--config.data.root=DIR"):
    config_lib.validate(_cfg(""))


@pytest.mark.slow
def test_main_trains_on_a_tree_with_its_val_split(tmp_path):
  make_tree(str(tmp_path / "data"), [40, 20, 10, 5], size=16, test_per_class=5, val_per_class=2)
  w = tmp_path / "run"
  r = subprocess.run([sys.executable, "main.py", "--config", "configs/quickstart.py", "--workdir", str(w),
                      "--config.data.name=image_folder", f"--config.data.root={tmp_path / 'data'}",
                      "--config.data.imb_type=none", "--config.train.epochs=3", "--config.model.name=resnet8",
                      "--config.train.select_on=val", "--config.train.eval_every=1", "--config.data.group_bounds=()",
                      "--config.train.progress_bar=False"], cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-2000:]
  res = json.loads((w / "results.json").read_text())
  assert res["selected_on"] == "val" and res["best"]["num_examples"] == 20
  bad = subprocess.run([sys.executable, "main.py", "--config", "configs/quickstart.py", "--workdir",
                        str(tmp_path / "bad"), "--config.data.name=image_folder",
                        f"--config.data.root={tmp_path / 'missing'}"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
  assert bad.returncode == 2 and "no such directory" in bad.stderr and "Traceback" not in bad.stderr
  assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()
