"""Large-scale data (the official split files; the official CIFAR/SVHN transforms): split files, early errors, frequency
remapping, torchvision-faithful
RandomResizedCrop / ColorJitter / Resize+CenterCrop against numpy references, the file-backed pipeline (resume,
per-process slices, decode errors), and TFDS sources under mock data."""

import math
import os

import numpy as np
import pytest

from tests import jpeg_tree

from ltjax import config as config_lib
from ltjax.data import augment, filelist, large, pipeline, sources

pytestmark = pytest.mark.tensorflow
tf = pytest.importorskip("tensorflow")

PLACES = large.SPECS["places_lt"]


def _cfg(root, name="places_lt", **kw):
  c = config_lib.default().data
  c.name, c.root, c.image_size, c.eval_resize = name, root, 16, 18
  for k, v in kw.items():
    c[k] = v
  return c


@pytest.fixture(scope="module")
def places_tree(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("places"))
  jpeg_tree.make_tree(root, [3, 9, 5, 1], 2, lists=(PLACES.train_list, PLACES.test_list))
  return root


# ----------------------------------------------------------------------------------------------------------------
# split files


def test_read_split_file_and_errors(tmp_path):
  p = tmp_path / "l.txt"
  p.write_text("a/b c.jpg 3\n\nx/y.jpg 0\n")
  rel, y = filelist.read_split_file(str(p), 5)
  assert rel == ["a/b c.jpg", "x/y.jpg"] and y.tolist() == [3, 0]
  for text, msg in [("a.jpg\n", ":1: expected"), ("a.jpg 1\nb.jpg x\n", ":2: label 'x' is not an integer"),
                    ("a.jpg 7\n", ":1: label 7 outside"), ("/abs/a.jpg 1\n", "is absolute"), ("\n", "lists no")]:
    p.write_text(text)
    with pytest.raises(filelist.SplitFileError, match=msg):
      filelist.read_split_file(str(p), 5)


def test_frequency_remap_matches_spec():
  labels = np.array([2, 2, 2, 0, 1, 1, 3, 3])  # counts 1, 2, 3, 2 → order by −count: 2, 1, 3, 0
  table = filelist.frequency_remap(labels, 5)  # class 4 never occurs: last
  assert table.tolist() == [3, 1, 0, 2, 4]
  new = table[labels]
  assert np.all(np.diff(np.bincount(new, minlength=5)) <= 0)  # label 0 most frequent, counts non-increasing


def test_load_split_files_remaps_and_checks(places_tree):
  ds = sources.load(_cfg(places_tree))
  assert ds.num_classes == 365 and ds.train.file_backed and ds.train.images is None
  counts = np.bincount(ds.train.labels, minlength=365)
  assert counts[:4].tolist() == [9, 5, 3, 1] and counts[4:].sum() == 0  # frequency-sorted
  # The test list goes through the same table: original class 1 (9 images) is label 0.
  orig_test = np.array([0, 0, 1, 1, 2, 2, 3, 3])
  assert ds.test.labels.tolist() == [2, 2, 0, 0, 1, 1, 3, 3] and len(orig_test) == len(ds.test)
  assert ds.train.files[0].endswith("img/c0/train_0.jpg") and os.path.isabs(ds.train.files[0])
  assert ds.mean == large.IMAGENET_MEAN and ds.recipe.image_size == 16 and ds.recipe.color_jitter == (0.4,) * 3
  same = sources.load(_cfg(places_tree, label_remap="none"))
  assert same.test.labels.tolist() == orig_test.tolist()
  assert ds.example_input().shape == (1, 16, 16, 3)


def test_missing_root_list_and_images_fail_fast(places_tree, tmp_path):
  with pytest.raises(sources.DataNotFoundError, match="config.data.root"):
    sources.load(_cfg(""))
  with pytest.raises(sources.DataNotFoundError, match="does not exist"):
    sources.load(_cfg(str(tmp_path / "nope")))
  with pytest.raises(sources.DataNotFoundError, match="Places_LT_train.txt not found"):
    sources.load(_cfg(str(tmp_path)))
  # A listed image that is missing: counted and named, before any decoding.
  root = tmp_path / "r"
  root.mkdir()
  (root / PLACES.train_list).write_text("a/1.jpg 0\na/2.jpg 1\nb/3.jpg 1\n")
  (root / PLACES.test_list).write_text("a/1.jpg 0\n")
  os.makedirs(root / "a")
  jpeg_tree.write_jpeg(str(root / "a" / "1.jpg"), np.zeros((8, 8, 3), np.uint8))
  with pytest.raises(filelist.SplitFileError, match=r"2 of 3 images listed in .*Places_LT_train.txt are missing.*"
                                                    r"first: a/2.jpg, b/3.jpg"):
    sources.load(_cfg(str(root)))
  (root / PLACES.train_list).write_text("a/1.jpg 0\na/1.jpg 400\n")
  with pytest.raises(filelist.SplitFileError, match=r"Places_LT_train.txt:2: label 400 outside \[0, 365\)"):
    sources.load(_cfg(str(root)))


def test_missing_file_check_is_one_listdir_per_directory(tmp_path, monkeypatch):
  for d in ("x", "y"):
    os.makedirs(tmp_path / d)
    for i in range(50):
      (tmp_path / d / f"{i}.jpg").write_bytes(b"")
  calls = []
  real = os.listdir
  monkeypatch.setattr(os, "listdir", lambda p: calls.append(p) or real(p))
  rel = [f"{d}/{i}.jpg" for d in "xy" for i in range(50)] + ["z/0.jpg"]
  assert filelist.missing_files(str(tmp_path), rel) == ["z/0.jpg"]
  assert len(calls) == 3  # one listing per directory (x, y, and the missing z), not one stat per file


# ----------------------------------------------------------------------------------------------------------------
# augmentation against numpy references (torchvision's algorithms)


def _rrc_reference(H, W, ua, ur, ut, ul, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
  """torchvision RandomResizedCrop.get_params with its random draws given (float32 arithmetic, as the TF op)."""
  f32 = np.float32
  area = f32(H) * f32(W)
  lr0, lr1 = f32(math.log(ratio[0])), f32(math.log(ratio[1]))
  for t in range(10):
    target = area * (f32(scale[0]) + f32(scale[1] - scale[0]) * f32(ua[t]))
    ar = np.exp(lr0 + (lr1 - lr0) * f32(ur[t]))
    w = int(np.round(np.sqrt(target * ar)))
    h = int(np.round(np.sqrt(target / ar)))
    if 0 < w <= W and 0 < h <= H:
      return int(f32(ut) * f32(H - h + 1)), int(f32(ul) * f32(W - w + 1)), h, w
  in_ratio = W / H
  if in_ratio < min(ratio):
    w, h = W, int(round(W / min(ratio)))
  elif in_ratio > max(ratio):
    h, w = H, int(round(H * max(ratio)))
  else:
    w, h = W, H
  return (H - h) // 2, (W - w) // 2, h, w


def test_random_resized_crop_window_matches_torchvision_reference():
  rng = np.random.default_rng(0)
  fallback = 0
  for trial in range(300):
    H, W = (int(v) for v in rng.integers(5, 400, size=2))
    if trial % 10 == 0:
      H, W = 8, 300  # extreme aspect: forces the fallback
    u = rng.random(22).astype(np.float32)
    sc = (0.08, 1.0) if trial % 3 else (0.6, 1.0)
    got = [int(v) for v in augment.rrc_window_from_uniforms(tf.constant(H), tf.constant(W), tf.constant(u[:10]),
                                                            tf.constant(u[10:20]), tf.constant(u[20]),
                                                            tf.constant(u[21]), sc, (3 / 4, 4 / 3))]
    ref = _rrc_reference(H, W, u[:10], u[10:20], u[20], u[21], sc)
    assert got == list(ref), (H, W, sc)
    top, left, h, w = got
    assert 0 <= top <= H - h and 0 <= left <= W - w
    fallback += (H, W) == (8, 300)
  assert fallback == 30
  assert [int(v) for v in augment.rrc_window_from_uniforms(8, 300, tf.ones([10]) * 0.5, tf.ones([10]) * 0.5, 0.5,
                                                           0.5, (0.9, 1.0), (3 / 4, 4 / 3))] == [0, 144, 8, 11]


def test_rrc_window_statistics_follow_the_scale_range():
  window = tf.function(lambda s: tf.stack(augment.rrc_window(300, 400, s)))
  areas = []
  for i in range(300):
    top, left, h, w = window(tf.constant([7, i], tf.int64)).numpy()
    areas.append(int(h) * int(w) / 120000)
  areas = np.array(areas)
  assert areas.min() >= 0.07 and areas.max() <= 1.0
  # The mean crop area of the reference sampler with numpy draws (≈ 0.435: rejected tries skew it below the
  # 0.54 of U(0.08, 1)); the seeded TF draws must follow the same distribution (σ of the mean ≈ 0.0126).
  rng = np.random.default_rng(0)
  draws = rng.random((4000, 22))
  ref = np.mean([np.prod(_rrc_reference(300, 400, u[:10], u[10:20], u[20], u[21])[2:]) / 120000 for u in draws])
  assert abs(areas.mean() - ref) < 0.04, (areas.mean(), ref)


def _png(img):
  return tf.io.encode_png(img)


def test_jpeg_window_decode_equals_decode_then_crop():
  rng = np.random.default_rng(1)
  img = rng.integers(0, 256, size=(60, 90, 3), dtype=np.uint8)
  jpeg = tf.io.encode_jpeg(img, quality=95)
  full = augment.decode_rgb(jpeg).numpy()
  for i in range(5):
    seed = tf.constant([3, i], tf.int64)
    top, left, h, w = (int(v) for v in augment.rrc_window(60, 90, seed))
    ref = full[top:top + h, left:left + w]
    np.testing.assert_array_equal(augment.decode_random_resized_crop(jpeg, seed, window_decode=False).numpy(), ref)
    got = augment.decode_random_resized_crop(jpeg, seed).numpy()  # window decode: all but the last column exact
    assert got.shape == ref.shape
    np.testing.assert_array_equal(got[:, :-1], ref[:, :-1])
    if (left + w) % 2 == 1 or left + w == 90:  # the last column's chroma neighbour is inside the window
      np.testing.assert_array_equal(got, ref)
    got_png = augment.decode_random_resized_crop(_png(img), seed).numpy()  # the non-JPEG branch, same window
    np.testing.assert_array_equal(got_png, img[top:top + h, left:left + w])
  gray = augment.decode_rgb(tf.io.encode_jpeg(img[..., :1])).numpy()
  assert gray.shape == (60, 90, 3) and np.all(gray[..., 0] == gray[..., 2])


def test_color_jitter_matches_numpy_reference():
  rng = np.random.default_rng(2)
  x = rng.random((5, 6, 3)).astype(np.float32)
  f = np.array([1.3, 0.7, 1.2], np.float32)

  def ref(x, order):
    for k in order:
      g = x @ np.array([0.299, 0.587, 0.114], np.float32)
      if k == 0:
        x = x * f[0]
      elif k == 1:
        x = f[1] * x + (1 - f[1]) * g.mean()
      else:
        x = f[2] * x + (1 - f[2]) * g[..., None]
      x = np.clip(x, 0, 1)
    return x

  for order in ([0, 1, 2], [2, 0, 1], [1, 2, 0]):
    got = augment.apply_color_jitter(tf.constant(x), tf.constant(f), tf.constant(order), [0, 1, 2]).numpy()
    np.testing.assert_allclose(got, ref(x, order), rtol=1e-6, atol=1e-6)
  factors, order, active = augment.jitter_params(tf.constant([1, 2], tf.int64), (0.4, 0.4, 0.4))
  assert np.all((factors.numpy() >= 0.6) & (factors.numpy() <= 1.4)) and sorted(order.numpy()) == [0, 1, 2]
  assert augment.color_jitter(tf.constant(x), tf.constant([1, 2], tf.int64), 0, 0, 0) is not None


def test_resize_shorter_and_center_crop_offsets():
  img = np.arange(300 * 400 * 3, dtype=np.float32).reshape(300, 400, 3) % 251
  img = img.astype(np.uint8)
  got = augment.resize_shorter_center_crop(tf.constant(img), 256, 224).numpy()
  # torchvision: Resize(256) → 256 × int(256·400/300) = 256 × 341; CenterCrop: top round(16) = 16, left round(58.5) = 58
  full = tf.image.resize(img, [256, 341], "bilinear", antialias=True).numpy()
  np.testing.assert_array_equal(got, full[16:240, 58:282])
  portrait = augment.resize_shorter_center_crop(tf.zeros([500, 200, 3], tf.uint8), 256, 224)
  assert portrait.shape == (224, 224, 3)


# ----------------------------------------------------------------------------------------------------------------
# file-backed pipeline


def _train_input(ds, batch, pidx=0, pcount=1, devices=1, seed=0):
  b = pipeline.Batches(len(ds.train), batch, devices, pidx, pcount)
  return pipeline.TrainInput(ds.train, b, seed=seed, mean=ds.mean, std=ds.std, crop_padding=0, flip=True,
                             recipe=ds.recipe)


@pytest.mark.slow
def test_file_backed_epochs_are_deterministic_resumable_and_sliced(places_tree):
  ds = sources.load(_cfg(places_tree))
  full = list(_train_input(ds, 4).epoch(1))
  assert [len(b["label"]) for b in full] == [4, 4, 4, 4, 2]  # 18 images, the last partial batch kept
  again = list(_train_input(ds, 4).epoch(1))
  for a, b in zip(full, again):
    np.testing.assert_array_equal(a["image"], b["image"])
  resumed = list(_train_input(ds, 4).epoch(1, start_step=2))
  for a, b in zip(full[2:], resumed):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["index"], b["index"])
  # Two processes × 1 device each: every process reads its contiguous half of every global batch.
  halves = [list(_train_input(ds, 4, p, 2, devices=2).epoch(1)) for p in (0, 1)]
  assert [len(b["label"]) for b in halves[1]] == [2, 2, 2, 2, 1]
  for s, b in enumerate(full):
    joined = np.concatenate([halves[0][s]["image"], halves[1][s]["image"]])
    np.testing.assert_array_equal(joined, b["image"])
  assert full[0]["image"].shape == (4, 16, 16, 3) and full[0]["image"].dtype == np.float32
  # Different epochs → different crops of the same example.
  e0 = {int(i): im for b in _train_input(ds, 4).epoch(0) for i, im in zip(b["index"], b["image"])}
  e1 = {int(i): im for b in full for i, im in zip(b["index"], b["image"])}
  assert any(not np.array_equal(e0[k], e1[k]) for k in e0)


def test_eval_input_is_center_crop_of_resized_image(places_tree):
  ds = sources.load(_cfg(places_tree))
  ev = pipeline.EvalInput(ds.test, pipeline.Batches(len(ds.test), 3, 1), mean=ds.mean, std=ds.std, recipe=ds.recipe)
  batches = list(ev)
  assert sum(int(b["mask"].sum()) for b in batches) == len(ds.test)
  img = augment.decode_rgb(tf.io.read_file(ds.test.files[0]))
  ref = (augment.resize_shorter_center_crop(img, 18, 16).numpy() / 255.0 - np.array(ds.mean)) / np.array(ds.std)
  np.testing.assert_allclose(batches[0]["image"][0], ref, rtol=1e-5, atol=1e-5)


def test_undecodable_image_names_the_file(places_tree, tmp_path):
  import shutil
  root = tmp_path / "bad"
  shutil.copytree(places_tree, root)
  bad = root / "img" / "c1" / "train_4.jpg"
  bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
  ds = sources.load(_cfg(str(root)))
  with pytest.raises(pipeline.ImageDecodeError, match=r"cannot read or decode image .*c1/train_4.jpg"):
    for _ in _train_input(ds, 4).epoch(0):
      pass
  (root / "img" / "c1" / "train_4.jpg").write_bytes(b"plain garbage")
  with pytest.raises(pipeline.ImageDecodeError, match="train_4.jpg"):
    for _ in pipeline.EvalInput(ds.train, pipeline.Batches(len(ds.train), 4, 1), mean=ds.mean, std=ds.std,
                                recipe=ds.recipe):
      pass


def test_method_augment_fn_gets_decoded_images(places_tree):
  ds = sources.load(_cfg(places_tree))
  b = pipeline.Batches(len(ds.train), 6, 1)

  def two_views(image, seed):
    a = tf.image.resize(image, [8, 8])
    return {"image": a, "image2": tf.image.flip_left_right(a), "h": tf.shape(image)[0]}

  ti = pipeline.TrainInput(ds.train, b, seed=0, mean=ds.mean, std=ds.std, crop_padding=0, flip=True,
                           augment_fn=two_views, recipe=ds.recipe)
  batch = next(iter(ti.epoch(0)))
  assert batch["image"].shape == (6, 8, 8, 3) and batch["image2"].shape == (6, 8, 8, 3)
  assert np.all((batch["h"] >= 12) & (batch["h"] <= 28))  # the whole decoded image, not a crop


# ----------------------------------------------------------------------------------------------------------------
# TFDS sources (mock data)


@pytest.mark.parametrize("name,tfds_name", [("imagenet_lt_tfds", "imagenet_lt"), ("inat2018_tfds", "i_naturalist2018")])
def test_tfds_sources_under_mock_data(name, tfds_name):
  import tensorflow_datasets as tfds
  c = _cfg("", name=name)
  with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
    ds = sources.load(c)
  spec = large.SPECS[large.TFDS_SOURCES[name]]
  assert ds.num_classes == spec.num_classes and ds.train.encoded is not None and len(ds.train) == 12
  counts = np.bincount(ds.train.labels, minlength=ds.num_classes)
  assert np.all(np.diff(counts) <= 0)  # frequency-remapped
  batch = next(iter(_train_input(ds, 4).epoch(0)))
  assert batch["image"].shape == (4, 16, 16, 3) and np.isfinite(batch["image"]).all()
  ev = pipeline.EvalInput(ds.test, pipeline.Batches(len(ds.test), 4, 1), mean=ds.mean, std=ds.std, recipe=ds.recipe)
  assert next(iter(ev))["image"].shape == (4, 16, 16, 3)


def test_tfds_source_missing_is_fast(tmp_path):
  import time
  t = time.perf_counter()
  with pytest.raises(sources.DataNotFoundError, match="imagenet_lt"):
    sources.load(_cfg("", name="imagenet_lt_tfds", data_dir=str(tmp_path)))
  assert time.perf_counter() - t < 30  # no download attempt (which blocks for minutes offline)


def test_config_validation_of_large_fields():
  c = config_lib.default()
  c.data.name, c.data.val_list = "inat2018", True
  with pytest.raises(config_lib.ConfigError, match="val_list"):
    config_lib.validate(c)
  c.data.val_list, c.data.eval_resize = False, 100
  with pytest.raises(config_lib.ConfigError, match="eval_resize"):
    config_lib.validate(c)
  c.data.eval_resize, c.data.label_remap = 256, "sorted"
  with pytest.raises(config_lib.ConfigError, match="label_remap"):
    config_lib.validate(c)
