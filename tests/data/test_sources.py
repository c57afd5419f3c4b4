"""ltjax.data.sources: the embedded digits source, TFDS sources on mock data (original-order recovery from ids,
long-tailed counts, test split), and the fast, download-free failure when TFDS data is not prepared."""

import os
import subprocess
import sys
import time

import ml_collections
import numpy as np
import pytest

from ltjax.data import imbalance, sources, tfds_data

from tests.cfgutil import ROOT  # noqa: E402


def data_cfg(**kw):
  c = ml_collections.ConfigDict(dict(name="digits", data_dir="", imb_type="exp", imb_factor=0.1, rand_number=0,
                                     val_per_class=0))
  c.update(kw)
  return c


def official_selection(labels, counts, seed, classes):
  np.random.seed(seed)
  out = []
  for c, n in zip(classes, counts):
    idx = np.where(np.asarray(labels, np.int64) == c)[0]
    np.random.shuffle(idx)
    out.append(idx[:n])
  return np.concatenate(out)


# ---------------------------------------------------------------------------------------------------------------
# digits


@pytest.mark.parametrize("imb_type,rho", [("exp", 0.1), ("exp", 0.01), ("step", 0.1), ("none", 1.0)])
def test_digits_train_subset_follows_the_profile_over_the_pool(imb_type, rho):
  raw = sources.REGISTRY["digits"](data_cfg())
  pool_counts = np.bincount(raw.train.labels, minlength=10)
  assert pool_counts.tolist() == [148, 152, 147, 153, 151, 152, 151, 149, 144, 150]
  assert raw.n_full == 144 == pool_counts.min()
  d = sources.load(data_cfg(imb_type=imb_type, imb_factor=rho))
  want = imbalance.class_counts(144, 10, imb_type, rho)
  assert np.bincount(d.train.labels, minlength=10).tolist() == want.tolist()
  # The subset is the official selection over the pool (pool positions → original indices).
  sel = official_selection(raw.train.labels, want, 0, range(10))
  np.testing.assert_array_equal(d.train.indices, raw.train.indices[sel])


def test_digits_splits_shapes_and_disjointness():
  d = sources.load(data_cfg(val_per_class=3))
  assert d.name == "digits" and d.num_classes == 10
  assert np.bincount(d.train.labels, minlength=10).tolist() == [144, 111, 86, 66, 51, 40, 31, 24, 18, 14]
  assert np.bincount(d.test.labels, minlength=10).tolist() == [30] * 10
  assert np.bincount(d.val.labels, minlength=10).tolist() == [3] * 10
  for s in (d.train, d.test, d.val):
    assert s.images.dtype == np.uint8 and s.images.shape[1:] == (8, 8, 1) and len(s.images) == len(s.labels)
    assert s.labels.dtype == np.int32 and s.indices.dtype == np.int64 and len(s.indices) == len(s.labels)
  assert d.train.images.max() == 255 and d.train.images.min() == 0
  sets = [set(s.indices.tolist()) for s in (d.train, d.test, d.val)]
  assert all(len(s) == n for s, n in zip(sets, (len(d.train), 300, 30)))
  assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
  # indices point into load_digits' order: the images and labels there are the ones returned.
  from sklearn.datasets import load_digits
  ref = load_digits()
  for s in (d.train, d.test, d.val):
    np.testing.assert_array_equal(s.labels, ref.target[s.indices])
    np.testing.assert_array_equal(s.images[..., 0], np.rint(ref.images[s.indices] * 255 / 16).astype(np.uint8))
  assert d.flip is False and d.crop_padding == 0
  # Deterministic; the val split does not change the training subset; another seed changes it.
  again = sources.load(data_cfg())
  np.testing.assert_array_equal(again.train.indices, d.train.indices)
  assert again.val is None
  np.testing.assert_array_equal(sources.load(data_cfg(val_per_class=3)).val.indices, d.val.indices)
  other = sources.load(data_cfg(rand_number=1))
  assert set(other.train.indices.tolist()) != sets[0]
  np.testing.assert_array_equal(other.test.indices, d.test.indices)  # the test split is fixed


def test_digits_normalisation_constants_are_the_pool_statistics():
  d = sources.load(data_cfg())
  raw = sources.REGISTRY["digits"](data_cfg())
  x = raw.train.images.astype(np.float64) / 255.0
  assert abs(x.mean() - d.mean[0]) < 1e-4 and abs(x.std() - d.std[0]) < 1e-4
  assert len(d.mean) == len(d.std) == d.train.images.shape[-1] == 1


def test_digits_errors_too_large_val_split_and_empty_classes():
  with pytest.raises(ValueError, match="val_per_class"):
    sources.load(data_cfg(val_per_class=10))  # class 0 keeps 144 of its 148 pool images
  with pytest.raises(ValueError, match=r"class\(es\) \[7, 8, 9\] without training images"):
    sources.load(data_cfg(imb_factor=0.001))  # ⌊144·0.001^(7/9)⌋ = 0
  with pytest.raises(ValueError, match="imb_factor"):
    sources.load(data_cfg(imb_factor=1.5))


def test_digits_path_does_not_import_tensorflow():
  code = ("import sys, ml_collections; from ltjax.data import sources; "
          "d = sources.load(ml_collections.ConfigDict(dict(name='digits', data_dir='', imb_type='exp', "
          "imb_factor=0.01, rand_number=0, val_per_class=0))); "
          "assert len(d.train.labels) > 0; "
          "print('TF' if any(m == 'tensorflow' or m.startswith('tensorflow.') for m in sys.modules) else 'noTF')")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": ROOT})
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip().splitlines()[-1] == "noTF"


def test_unknown_dataset_lists_the_known_names():
  with pytest.raises(ValueError, match="unknown dataset 'mnist'") as e:
    sources.load(data_cfg(name="mnist"))
  for name in ("digits", "cifar10", "cifar100", "svhn"):
    assert name in str(e.value)


# ---------------------------------------------------------------------------------------------------------------
# TFDS: ids and mock data


def test_id_numbers_and_original_order():
  ids = [b"train_00003", b"train_00000", b"train_10002", b"train_00001", b"train_00002"]
  assert tfds_data.id_numbers(ids).tolist() == [3, 0, 10002, 1, 2]
  order = tfds_data.original_order(ids)
  assert [ids[i] for i in order] == [b"train_00000", b"train_00001", b"train_00002", b"train_00003",
                                     b"train_10002"]
  assert tfds_data.id_numbers(["test_000010", "extra_000002"]).tolist() == [10, 2]  # svhn: 6 digits
  assert tfds_data.original_order([b"gebc   ahgjefjhfef", b"train_00001"]) is None  # mock ids
  assert tfds_data.original_order([b"train_00001", b"test_00001"]) is None  # repeated number


def _mock(n):
  import tensorflow_datasets as tfds
  return tfds.testing.mock_data(num_examples=n, policy=tfds.testing.MockPolicy.USE_CODE)


def _capture_raw(monkeypatch, name):
  """Wraps the registry entry so a test sees the Raw that `load` selected from (mock data loads only once)."""
  got = {}
  fn = sources.REGISTRY[name]

  def wrapped(cfg):
    got["raw"] = fn(cfg)
    return got["raw"]

  monkeypatch.setitem(sources.REGISTRY, name, wrapped)
  return got


@pytest.mark.tensorflow
def test_cifar10_source_on_mock_data(monkeypatch, tmp_path):
  # Mock labels are uniform random (deterministic); with 1,000 examples the head class has its N/C = 100 images.
  got = _capture_raw(monkeypatch, "cifar10")
  with _mock(1000):
    d = sources.load(data_cfg(name="cifar10", data_dir=str(tmp_path), imb_factor=0.1, val_per_class=1))
  raw = got["raw"]
  assert raw.n_full == 100.0
  counts = imbalance.class_counts(100, 10, "exp", 0.1)
  assert counts.tolist() == [100, 77, 59, 46, 35, 27, 21, 16, 12, 10]
  assert np.bincount(d.train.labels, minlength=10).tolist() == counts.tolist()
  # Mock ids are random letters: the TFDS order is kept, and the subset is the official selection over it.
  np.testing.assert_array_equal(raw.train.indices, np.arange(1000))
  np.testing.assert_array_equal(d.train.indices, official_selection(raw.train.labels, counts, 0, range(10)))
  np.testing.assert_array_equal(d.train.labels, raw.train.labels[d.train.indices])
  assert len(d.test.labels) == 1000 and d.test.images.shape == (1000, 32, 32, 3)
  assert d.train.images.dtype == np.uint8 and d.train.images.shape[1:] == (32, 32, 3)
  assert d.train.labels.dtype == np.int32 and d.test.labels.dtype == np.int32 and d.train.indices.dtype == np.int64
  assert np.bincount(d.val.labels, minlength=10).tolist() == [1] * 10
  assert not set(d.val.indices.tolist()) & set(d.train.indices.tolist())
  assert d.mean == (0.4914, 0.4822, 0.4465) and d.std == (0.2023, 0.1994, 0.2010)
  assert d.crop_padding == 4 and d.flip is True and d.num_classes == 10 and d.name == "cifar10"
  assert len(list(tmp_path.iterdir())) == 0  # nothing was written to the data dir


@pytest.mark.tensorflow
def test_cifar100_source_on_mock_data_uses_fine_labels():
  # Uniform mock labels cannot feed CIFAR-100's head classes at small N; the selection is checked on the balanced
  # fake below. Here: the source itself (fine labels, N = len/C, test split).
  with _mock(1000):
    raw = sources.REGISTRY["cifar100"](data_cfg(name="cifar100"))
  assert raw.num_classes == 100 and raw.n_full == 10.0 and raw.class_order == tuple(range(100))
  assert raw.train.labels.max() >= 20  # the fine `label` (coarse_label has only 20 values)
  assert len(raw.train.labels) == len(raw.test.labels) == 1000 and raw.test.images.shape == (1000, 32, 32, 3)
  assert raw.mean == sources.CIFAR_MEAN and raw.std == sources.CIFAR_STD


@pytest.mark.tensorflow
def test_svhn_source_on_mock_data(monkeypatch):
  assert sources.SVHN_N_FULL == 1000 and sources.SVHN_CLASS_ORDER == (1, 2, 3, 4, 5, 6, 7, 8, 9, 0)
  monkeypatch.setattr(sources, "SVHN_N_FULL", 100)  # so that 1,200 mock images suffice for the head class
  got = _capture_raw(monkeypatch, "svhn")
  with _mock(1200):
    d = sources.load(data_cfg(name="svhn", imb_factor=0.02, val_per_class=2))
  raw = got["raw"]
  assert raw.n_full == 100
  counts = imbalance.class_counts(100, 10, "exp", 0.02)
  want = imbalance.label_counts(counts, sources.SVHN_CLASS_ORDER)
  assert want.tolist() == [2, 100, 64, 41, 27, 17, 11, 7, 4, 3]
  assert np.bincount(d.train.labels, minlength=10).tolist() == want.tolist()
  np.testing.assert_array_equal(d.train.indices,
                                official_selection(raw.train.labels, counts, 0, sources.SVHN_CLASS_ORDER))
  assert len(d.test.labels) == 1200 and d.mean == (0.5,) * 3 and d.std == (0.5,) * 3
  assert d.crop_padding == 4 and d.flip is True
  # SVHN's head label keeps 100 of its images, so a balanced hold-out from the rest exists.
  assert np.bincount(d.val.labels, minlength=10).tolist() == [2] * 10
  assert not set(d.val.indices.tolist()) & set(d.train.indices.tolist())
  np.testing.assert_array_equal(d.val.labels, raw.train.labels[d.val.indices])


def _fake_tfds(orig_labels, n_test):
  """`as_dataset_fn` for tfds.testing.mock_data: a dataset stored in a shuffled order with real-format ids
  ('<split>_%05d' = original position, as TFDS's CIFAR builder writes them); pixel (0,0) encodes the position."""
  import tensorflow as tf
  n = len(orig_labels)
  stored = {"train": np.random.RandomState(6).permutation(n), "test": np.random.RandomState(7).permutation(n_test)}

  def as_dataset_fn(self, split, decoders=None, read_config=None, **kwargs):
    del self, decoders, read_config, kwargs
    pos = stored[str(split)]
    images = np.zeros((len(pos), 32, 32, 3), np.uint8)
    images[:, 0, 0, 0] = pos % 256
    images[:, 0, 0, 1] = pos // 256
    return tf.data.Dataset.from_tensor_slices({
        "id": np.array([f"{split}_{p:05d}" for p in pos]),
        "image": images,
        "label": np.asarray(orig_labels)[pos % n].astype(np.int64),
    })

  return as_dataset_fn


def _positions(images):
  return images[:, 0, 0, 0] + 256 * images[:, 0, 0, 1].astype(np.int64)


@pytest.mark.tensorflow
@pytest.mark.parametrize("name,num_classes,n,rho", [("cifar10", 10, 600, 0.1), ("cifar100", 100, 2000, 0.1)])
def test_tfds_original_order_is_recovered_from_ids(name, num_classes, n, rho, monkeypatch):
  """Balanced fake data stored in shuffled order: the source returns it in original (id) order, and the subset is
  the official selection over that order."""
  import tensorflow_datasets as tfds
  orig_labels = (np.arange(n) % num_classes)[np.random.RandomState(5).permutation(n)]
  got = _capture_raw(monkeypatch, name)
  with tfds.testing.mock_data(as_dataset_fn=_fake_tfds(orig_labels, 200), policy=tfds.testing.MockPolicy.USE_CODE):
    d = sources.load(data_cfg(name=name, imb_factor=rho))
    # CIFAR's head class keeps all its N = len/C images: no balanced hold-out can leave the subset untouched.
    with pytest.raises(ValueError, match=f"{name}: class 0 has only 0 images .*val_per_class = 0"):
      sources.load(data_cfg(name=name, imb_factor=rho, val_per_class=1))
  raw = got["raw"]
  np.testing.assert_array_equal(raw.train.indices, np.arange(n))
  np.testing.assert_array_equal(raw.train.labels, orig_labels)
  np.testing.assert_array_equal(_positions(raw.train.images), np.arange(n))
  np.testing.assert_array_equal(raw.test.indices, np.arange(200))
  np.testing.assert_array_equal(_positions(raw.test.images), np.arange(200))
  counts = imbalance.class_counts(n // num_classes, num_classes, "exp", rho)
  want = official_selection(orig_labels, counts, 0, range(num_classes))
  np.testing.assert_array_equal(d.train.indices, want)
  np.testing.assert_array_equal(d.train.labels, orig_labels[want])
  np.testing.assert_array_equal(_positions(d.train.images), want)
  assert np.bincount(d.train.labels, minlength=num_classes).tolist() == counts.tolist()
  assert d.val is None


def _prepare_fake_tfds(name, data_dir, src_dir):
  """Runs the real TFDS builder of `name` (download_and_prepare) on tiny original-format files written here, with
  the download step patched to return them: the result is a genuinely prepared TFDS dataset on disk, stored in
  TFDS's hashed order. Returns (train labels, test labels) in original file order."""
  from unittest import mock

  import tensorflow_datasets as tfds
  rng = np.random.RandomState(0)
  os.makedirs(src_dir, exist_ok=True)

  def image(i):  # [32, 32, 3] with the position encoded in pixel (0, 0)
    img = np.zeros((32, 32, 3), np.uint8)
    img[0, 0, 0], img[0, 0, 1] = i % 256, i // 256
    return img

  if name == "cifar10":  # binary version: records of 1 label byte + 3072 bytes (channel-major)
    d = os.path.join(src_dir, "cifar-10-batches-bin")
    os.makedirs(d)
    train = rng.permutation(np.arange(500) % 10)  # balanced: N = len/C = 50 for every class
    test = rng.randint(0, 10, size=60)
    files = [(f"data_batch_{k + 1}.bin", train, range(100 * k, 100 * (k + 1))) for k in range(5)]
    files.append(("test_batch.bin", test, range(60)))
    for fname, labels, rows in files:
      with open(os.path.join(d, fname), "wb") as f:
        for i in rows:
          f.write(bytes([labels[i]]) + image(i).transpose(2, 0, 1).tobytes())
    with open(os.path.join(d, "batches.meta.txt"), "w") as f:
      f.write("\n".join("airplane automobile bird cat deer dog frog horse ship truck".split()) + "\n")
    patch = mock.patch.object(tfds.download.DownloadManager, "download_and_extract", lambda self, url: src_dir)
  else:  # svhn_cropped: .mat files, X [32, 32, 3, N], y [N, 1] in 1..10 (10 = digit 0)
    import scipy.io
    train = rng.randint(0, 10, size=600)
    test = rng.randint(0, 10, size=60)
    paths = {}
    for split, labels in (("train", train), ("test", test), ("extra", test)):
      paths[split] = os.path.join(src_dir, f"{split}_32x32.mat")
      x = np.stack([image(i) for i in range(len(labels))], axis=-1)
      y = np.where(labels == 0, 10, labels).astype(np.uint8)[:, None]
      scipy.io.savemat(paths[split], {"X": x, "y": y})
    patch = mock.patch.object(tfds.download.DownloadManager, "download", lambda self, urls: paths)
  with patch:
    tfds.builder(sources.TFDS_NAMES[name], data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return train, test


@pytest.mark.tensorflow
@pytest.mark.parametrize("name", ["cifar10", "svhn"])
def test_really_prepared_tfds_data_comes_back_in_original_order(name, tmp_path, monkeypatch):
  """On a real TFDS-prepared dataset (TFDS stores it shuffled), the source restores the original file order from
  the ids, maps SVHN's label 10 to 0, and the subset is the official selection over the original order."""
  import tensorflow_datasets as tfds
  data_dir = str(tmp_path / "tfds")
  train, test = _prepare_fake_tfds(name, data_dir, str(tmp_path / "src"))
  b = tfds.builder(sources.TFDS_NAMES[name], data_dir=data_dir)
  assert b.is_prepared()
  stored = [ex["id"].numpy() for ex in b.as_dataset(split="train", shuffle_files=False).take(50)]
  assert tfds_data.id_numbers(stored).tolist() != list(range(50))  # TFDS's own order is not the original one
  monkeypatch.setattr(sources, "SVHN_N_FULL", 30)  # 600 fake SVHN images: ~60 per digit
  got = _capture_raw(monkeypatch, name)
  d = sources.load(data_cfg(name=name, data_dir=data_dir, imb_factor=0.1))
  raw = got["raw"]
  np.testing.assert_array_equal(raw.train.indices, np.arange(len(train)))
  np.testing.assert_array_equal(_positions(raw.train.images), np.arange(len(train)))
  np.testing.assert_array_equal(raw.train.labels, train)  # SVHN: the .mat's 10 is label 0
  np.testing.assert_array_equal(raw.test.labels, test)
  np.testing.assert_array_equal(_positions(raw.test.images), np.arange(len(test)))
  n_full = 50 if name == "cifar10" else 30
  counts = imbalance.class_counts(n_full, 10, "exp", 0.1)
  want = official_selection(train, counts, 0, raw.class_order)
  np.testing.assert_array_equal(d.train.indices, want)
  np.testing.assert_array_equal(_positions(d.train.images), want)
  assert np.bincount(d.train.labels, minlength=10).tolist() == imbalance.label_counts(counts, raw.class_order).tolist()


# ---------------------------------------------------------------------------------------------------------------
# Unprepared TFDS data


@pytest.mark.tensorflow
@pytest.mark.parametrize("name,tfds_name", [("cifar100", "cifar100"), ("svhn", "svhn_cropped")])
def test_missing_tfds_data_fails_fast_with_instructions(name, tfds_name, tmp_path):
  t = time.time()
  with pytest.raises(sources.DataNotFoundError) as e:
    sources.load(data_cfg(name=name, data_dir=str(tmp_path)))
  assert time.time() - t < 10
  assert isinstance(e.value, FileNotFoundError)
  msg = str(e.value)
  assert f"'{tfds_name}'" in msg and str(tmp_path) in msg
  assert f"tfds build {tfds_name} --data_dir {tmp_path}" in msg and "download_and_prepare" in msg
  assert f"~/tensorflow_datasets/{tfds_name}" in msg
  assert len(list(tmp_path.iterdir())) == 0  # nothing downloaded or created


def test_bad_imbalance_factor_fails_before_any_loading(tmp_path):
  with pytest.raises(ValueError, match=r"imb_factor = 0.0 must lie in \(0, 1\]"):
    sources.load(data_cfg(name="cifar100", data_dir=str(tmp_path), imb_factor=0))


@pytest.mark.tensorflow
def test_other_tfds_version_is_named(tmp_path):
  (tmp_path / "cifar10" / "1.0.0").mkdir(parents=True)
  with pytest.raises(sources.DataNotFoundError, match=r"Found only version\(s\) \['1.0.0'\]"):
    sources.load(data_cfg(name="cifar10", data_dir=str(tmp_path)))
