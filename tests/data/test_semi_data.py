"""Semi-supervised data (imbalanced-semi-self `train_semi.py`): pool formats, pseudo-label files and their pool checks,
the
D_U@5x selection against the official code's numbers and a replica of the official stream, and every bad input."""

import pickle
import time

import ml_collections
import numpy as np
import pytest

from ltjax import config as config_lib
from ltjax.data import imbalance, sources, unlabeled


def semi_cfg(**kw):
  c = config_lib.default().data
  c.name = "digits"
  c.imb_factor = 0.1
  c.unlabeled.update(kw)
  return c


def digits_pool(n_per_class=80, seed=0):
  """A labelled pool of 8×8×1 digit images: digits images with a little noise, truth labels kept."""
  from sklearn.datasets import load_digits
  d = load_digits()
  rng = np.random.RandomState(seed)
  idx = np.concatenate([rng.choice(np.where(d.target == c)[0], n_per_class) for c in range(10)])
  idx = idx[rng.permutation(len(idx))]
  x = d.images[idx] * (255.0 / 16.0) + rng.normal(0, 8, size=(len(idx), 8, 8))
  return np.clip(np.rint(x), 0, 255).astype(np.uint8)[..., None], d.target[idx].astype(np.int64)


def write_pool(tmp_path, images, labels=None, name="pool.npz"):
  path = str(tmp_path / name)
  if labels is None:
    np.savez(path, images=images)
  else:
    np.savez(path, images=images, labels=labels)
  return path


def write_pseudo(tmp_path, pool_path, pseudo, name="pl.npz", num_classes=10):
  pool = unlabeled.load_pool(pool_path)
  out = str(tmp_path / name)
  unlabeled.save_pseudo_labels(out, pool, pseudo, np.ones(len(pseudo), np.float32), num_classes, {"test": True})
  return out


# ---------------------------------------------------------------------------------------------------------------
# D_U counts (imbalanced-semi-self `train_semi.py` examples)


def test_d_u_counts_and_selection_equal_the_spec_examples():
  labeled = imbalance.class_counts(5000, 10, "exp", 0.02)  # CIFAR-10 ρ = 0.02: 13 996 labeled
  assert int(labeled.sum()) == 13996
  truth = np.repeat(np.arange(10), 25000)
  for rho_u, want in ((1.0, [6998] * 10),
                      (0.02, [24999, 16186, 10477, 6784, 4390, 2843, 1839, 1189, 771, 496])):
    idx, u = unlabeled.select(labeled, range(10), truth, rho_u, np.random.RandomState(0))
    assert u.tolist() == want
    assert np.bincount(truth[idx], minlength=10).tolist() == want
    assert len(np.unique(idx)) == len(idx) == sum(want)
  assert sum([6998] * 10) == 69980


def test_d_u_for_svhn_uses_the_1_to_9_then_0_class_order():
  counts = imbalance.class_counts(1000, 10, "exp", 0.02)  # position-indexed, total 2795
  assert int(counts.sum()) == 2795
  truth = np.repeat(np.arange(10), 6000)
  idx, u = unlabeled.select(counts, sources.SVHN_CLASS_ORDER, truth, 0.02, np.random.RandomState(0))
  # T = 13 975, base 1397: position k of [1..9, 0] gets u_k.
  want = imbalance.unlabeled_counts(counts, 0.02)
  assert u.tolist() == want.tolist() and 13975 - 10 <= int(u.sum()) <= 13975
  got = np.bincount(truth[idx], minlength=10)
  assert got[1] == want[0] and got[0] == want[9] and got[9] == want[8]
  assert got.tolist() == imbalance.label_counts(want, sources.SVHN_CLASS_ORDER).tolist()


def test_pool_with_too_few_images_is_an_error_naming_the_class_unless_allowed():
  labeled = np.asarray([50, 20, 10])
  truth = np.concatenate([np.zeros(200), np.ones(10), np.full(200, 2)]).astype(np.int64)
  with pytest.raises(unlabeled.PoolError, match=r"too few images .*class 1: 10 < \d+.*allow_fewer"):
    unlabeled.select(labeled, range(3), truth, 1.0, np.random.RandomState(0))
  idx, u = unlabeled.select(labeled, range(3), truth, 1.0, np.random.RandomState(0), allow_fewer=True)
  assert np.bincount(truth[idx], minlength=3).tolist() == [u[0], 10, u[2]]


# ---------------------------------------------------------------------------------------------------------------
# Merged training set through sources.load


def official_semi_selection(lab_labels, lab_counts, truth, u_counts, seed, classes):
  """The official gen_imbalanced_data: one np.random.seed, labeled classes, then unlabeled classes."""
  np.random.seed(seed)
  out = []
  for labels, counts in ((lab_labels, lab_counts), (truth, u_counts)):
    part = []
    for c, n in zip(classes, counts):
      idx = np.where(labels == c)[0]
      np.random.shuffle(idx)
      part.append(idx[:n])
    out.append(np.concatenate(part))
  return out


def test_load_appends_d_u_with_pseudo_labels_from_the_continued_stream(tmp_path):
  images, truth = digits_pool(160)
  pool_path = write_pool(tmp_path, images, truth)
  pseudo = (truth + 1) % 10  # distinguishable from the truth
  pl = write_pseudo(tmp_path, pool_path, pseudo)
  cfg = semi_cfg(pool=pool_path, pseudo_labels=pl, imb_factor=0.1, multiplier=1)
  d = sources.load(cfg)
  plain = sources.load(semi_cfg())
  raw = sources.REGISTRY["digits"](cfg)
  lab_counts = imbalance.class_counts(raw.n_full, 10, "exp", 0.1)
  u = imbalance.unlabeled_counts(lab_counts, 0.1, multiplier=1)
  want_lab, want_u = official_semi_selection(raw.train.labels, lab_counts, truth, u, 0, range(10))
  n_lab = int(lab_counts.sum())
  info = d.unlabeled
  assert info.num_labeled == n_lab == len(plain.train)
  np.testing.assert_array_equal(d.train.indices[:n_lab], plain.train.indices)
  np.testing.assert_array_equal(d.train.indices[:n_lab], raw.train.indices[want_lab])
  np.testing.assert_array_equal(info.pool_indices, want_u)
  np.testing.assert_array_equal(d.train.indices[n_lab:], want_u)
  np.testing.assert_array_equal(d.train.images[n_lab:], images[want_u])
  np.testing.assert_array_equal(d.train.labels[n_lab:], pseudo[want_u])  # targets: pseudo labels, not truth
  np.testing.assert_array_equal(d.train.labels[:n_lab], plain.train.labels)
  assert d.train.labels.dtype == np.int32 and d.train.images.dtype == np.uint8
  assert np.bincount(truth[info.pool_indices], minlength=10).tolist() == u.tolist()
  assert info.requested.tolist() == u.tolist() and info.pseudo_label_accuracy() == 0.0
  # The losses' class counts are labeled + pseudo-label counts (official cls_num_list).
  from ltjax.data.stats import ClassStats
  counts = ClassStats.from_labels(d.train.labels, 10).counts
  assert counts.tolist() == (np.bincount(plain.train.labels, minlength=10)
                             + np.bincount(pseudo[want_u], minlength=10)).tolist()
  np.testing.assert_array_equal(d.test.labels, plain.test.labels)


def test_select_by_pseudo_and_all_for_pools_without_labels(tmp_path):
  images, truth = digits_pool(80)
  pool_path = write_pool(tmp_path, images)  # no labels
  pl = write_pseudo(tmp_path, pool_path, truth)
  with pytest.raises(unlabeled.PoolError, match="no truth labels .*select_by='pseudo'"):
    sources.load(semi_cfg(pool=pool_path, pseudo_labels=pl, multiplier=1))
  d = sources.load(semi_cfg(pool=pool_path, pseudo_labels=pl, multiplier=1, imb_factor=1.0, select_by="pseudo"))
  n_lab = d.unlabeled.num_labeled
  u = imbalance.unlabeled_counts(np.bincount(d.train.labels[:n_lab], minlength=10), 1.0, 1)
  assert np.bincount(d.train.labels[n_lab:], minlength=10).tolist() == u.tolist()
  d = sources.load(semi_cfg(pool=pool_path, pseudo_labels=pl, select_by="all"))
  assert len(d.train) == d.unlabeled.num_labeled + len(images) and d.unlabeled.requested is None
  np.testing.assert_array_equal(d.train.labels[d.unlabeled.num_labeled:], truth)


# ---------------------------------------------------------------------------------------------------------------
# Pseudo-label file ↔ pool checks


def test_pseudo_label_file_records_the_pool_and_round_trips(tmp_path):
  images, truth = digits_pool(10)
  pool_path = write_pool(tmp_path, images, truth)
  pl_path = write_pseudo(tmp_path, pool_path, truth)
  pl = unlabeled.load_pseudo_labels(pl_path)
  pool = unlabeled.load_pool(pool_path)
  assert pl.pool_size == 100 and pl.pool_image_shape == (8, 8, 1) and pl.pool_sha256 == pool.fingerprint()
  assert pl.num_classes == 10 and pl.prediction_model == {"test": True}
  np.testing.assert_array_equal(pl.labels, truth)
  np.testing.assert_array_equal(pl.ground_truth, truth)
  unlabeled.check_match(pl, pool, 10)
  with pytest.raises(FileExistsError, match="--overwrite"):
    write_pseudo(tmp_path, pool_path, truth)


@pytest.mark.parametrize("change,match", [
    ("count", r"holds labels for 100 images but the pool .* has 99"),
    ("shape", r"made for \(8, 8, 1\) images but the pool .* holds \(4, 16, 1\)"),
    ("pixels", r"made for a different pool \(image sha256"),
    ("order", r"made for a different pool"),
])
def test_pseudo_label_file_for_another_pool_is_refused(tmp_path, change, match):
  images, truth = digits_pool(10)
  pl = unlabeled.load_pseudo_labels(write_pseudo(tmp_path, write_pool(tmp_path, images, truth), truth))
  other = {"count": images[:99], "shape": images.reshape(100, 4, 16, 1), "order": images[::-1].copy(),
           "pixels": images.copy()}[change]
  if change == "pixels":
    other[3, 2, 2, 0] ^= 1
  pool = unlabeled.load_pool(write_pool(tmp_path, other, name="other.npz"))
  with pytest.raises(unlabeled.PoolError, match=match):
    unlabeled.check_match(pl, pool, 10)


def test_pseudo_labels_of_another_class_count_are_refused(tmp_path):
  images, truth = digits_pool(10)
  pool_path = write_pool(tmp_path, images, truth)
  pool = unlabeled.load_pool(pool_path)
  pl = unlabeled.load_pseudo_labels(write_pseudo(tmp_path, pool_path, truth, num_classes=100))
  with pytest.raises(unlabeled.PoolError, match="labels of 100 classes but the dataset has 10"):
    unlabeled.check_match(pl, pool, 10)
  pl = unlabeled.load_pseudo_labels(write_pseudo(tmp_path, pool_path, truth + 5, name="b.npz", num_classes=100))
  pl.num_classes = None
  with pytest.raises(unlabeled.PoolError, match=r"labels outside \[0, 10\)"):
    unlabeled.check_match(pl, pool, 10)


def test_official_pseudo_label_pickle_is_read_and_length_checked(tmp_path):
  images, truth = digits_pool(10)
  pool = unlabeled.load_pool(write_pool(tmp_path, images, truth))
  path = str(tmp_path / "pseudo_labeled_cifar.pickle")
  with open(path, "wb") as f:
    pickle.dump({"extrapolated_targets": truth, "prediction_model": "x"}, f)
  pl = unlabeled.load_pseudo_labels(path)
  assert pl.pool_sha256 is None and pl.pool_size == 100
  unlabeled.check_match(pl, pool, 10)
  with open(path, "wb") as f:
    pickle.dump({"extrapolated_targets": truth[:50]}, f)
  with pytest.raises(unlabeled.PoolError, match="labels for 50 images but the pool .* has 100"):
    unlabeled.check_match(unlabeled.load_pseudo_labels(path), pool, 10)
  with open(path, "wb") as f:
    pickle.dump({"targets": truth}, f)
  with pytest.raises(unlabeled.PoolError, match="'extrapolated_targets'; found \\['targets'\\]"):
    unlabeled.load_pseudo_labels(path)


def test_merge_refuses_a_pool_of_another_image_size(tmp_path):
  images = np.zeros((50, 32, 32, 3), np.uint8)
  pool_path = write_pool(tmp_path, images, np.arange(50) % 10)
  pl = write_pseudo(tmp_path, pool_path, np.arange(50) % 10)
  with pytest.raises(unlabeled.PoolError, match=r"holds \(32, 32, 3\) images but the training images are \(8, 8, 1\)"):
    sources.load(semi_cfg(pool=pool_path, pseudo_labels=pl))


def test_missing_files_and_config_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="pseudo-label file .* does not exist.*ltjax.tools.pseudolabel"):
    unlabeled.load_pseudo_labels(str(tmp_path / "nope.npz"))
  with pytest.raises(FileNotFoundError, match="unlabeled pool .* does not exist"):
    unlabeled.load_pool(str(tmp_path / "nope.pickle"))
  # Checked before the labeled dataset is loaded (here CIFAR-10, not prepared in tmp_path).
  cfg = semi_cfg(pool=str(tmp_path / "ti.pickle"), pseudo_labels=str(tmp_path / "pl.npz"))
  cfg.name, cfg.data_dir = "cifar10", str(tmp_path)
  with pytest.raises(sources.DataNotFoundError, match="unlabeled pool .*ti.pickle' does not exist"):
    sources.load(cfg)
  cfg.unlabeled.pool = "svhn_extra"
  with pytest.raises(sources.DataNotFoundError, match="pseudo-label file .*pl.npz' does not exist"):
    sources.load(cfg)
  c = config_lib.default()
  c.data.unlabeled.pseudo_labels = "x.npz"
  with pytest.raises(config_lib.ConfigError, match="data.unlabeled.pool is empty"):
    config_lib.validate(c)
  c.data.unlabeled.pool = "svhn_extra"
  for field, value, match in (("imb_factor", 0.0, "unlabeled.imb_factor"), ("multiplier", 0, "multiplier"),
                              ("select_by", "nope", "select_by")):
    bad = ml_collections.ConfigDict(c.to_dict())
    bad.data.unlabeled[field] = value
    with pytest.raises(config_lib.ConfigError, match=match):
      config_lib.validate(bad)
  config_lib.validate(c)


# ---------------------------------------------------------------------------------------------------------------
# Pool formats


def test_tinyimages_selection_pickle(tmp_path):
  data = np.random.RandomState(0).randint(0, 256, size=(30, 32, 32, 3)).astype(np.uint8)
  targets = np.arange(30) % 10
  path = str(tmp_path / "ti_80M_selected.pickle")
  with open(path, "wb") as f:
    pickle.dump({"data": data, "extrapolated_targets": targets, "extrapolated_confidence": np.ones(30)}, f)
  pool = unlabeled.load_pool(path)
  np.testing.assert_array_equal(pool.images, data)
  np.testing.assert_array_equal(pool.truth, targets)
  with open(path, "wb") as f:
    pickle.dump({"images": data}, f)
  with pytest.raises(unlabeled.PoolError, match="dict with 'data'"):
    unlabeled.load_pool(path)


def test_array_pools_and_their_errors(tmp_path):
  images, truth = digits_pool(3)
  np.save(str(tmp_path / "a.npy"), images[..., 0])
  pool = unlabeled.load_pool(str(tmp_path / "a.npy"))
  assert pool.images.shape == (30, 8, 8, 1) and pool.truth is None
  np.savez(str(tmp_path / "b.npz"), x=images)
  with pytest.raises(unlabeled.PoolError, match=r"needs the key 'images'.*\['x'\]"):
    unlabeled.load_pool(str(tmp_path / "b.npz"))
  np.save(str(tmp_path / "c.npy"), images.astype(np.float32) / 255)
  with pytest.raises(unlabeled.PoolError, match="uint8"):
    unlabeled.load_pool(str(tmp_path / "c.npy"))
  np.savez(str(tmp_path / "d.npz"), images=images, labels=truth[:5])
  with pytest.raises(unlabeled.PoolError, match="5 labels for 30 images"):
    unlabeled.load_pool(str(tmp_path / "d.npz"))
  (tmp_path / "e.txt").write_text("x")
  with pytest.raises(unlabeled.PoolError, match="unknown format"):
    unlabeled.load_pool(str(tmp_path / "e.txt"))


def test_image_folder_pool(tmp_path):
  from PIL import Image
  rng = np.random.RandomState(0)
  want = {}
  for label in (0, 1, 10):
    (tmp_path / "f" / str(label)).mkdir(parents=True)
    for i in range(2):
      a = rng.randint(0, 256, size=(6, 6, 3)).astype(np.uint8)
      Image.fromarray(a).save(tmp_path / "f" / str(label) / f"im{i}.png")
      want[f"{label}/im{i}.png"] = (a, label)
  pool = unlabeled.load_pool(str(tmp_path / "f"))
  order = sorted(want)  # '0/…', '1/…', '10/…' by relative path
  np.testing.assert_array_equal(pool.images, np.stack([want[k][0] for k in order]))
  assert pool.truth.tolist() == [want[k][1] for k in order]
  Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(tmp_path / "f" / "odd.png")
  with pytest.raises(unlabeled.PoolError, match="images differ in size"):
    unlabeled.load_pool(str(tmp_path / "f"))
  (tmp_path / "f" / "odd.png").unlink()
  Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(tmp_path / "f" / "loose.png")
  assert unlabeled.load_pool(str(tmp_path / "f")).truth is None  # not every image is in a label folder
  (tmp_path / "empty").mkdir()
  with pytest.raises(unlabeled.PoolError, match="no images"):
    unlabeled.load_pool(str(tmp_path / "empty"))


@pytest.mark.tensorflow
def test_svhn_extra_pool_from_tfds_and_its_fast_not_found_path(tmp_path):
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
    pool = unlabeled.load_pool("svhn_extra")
  assert pool.images.shape == (40, 32, 32, 3) and pool.images.dtype == np.uint8
  assert pool.truth.shape == (40,) and pool.truth.min() >= 0 and pool.truth.max() <= 9
  t0 = time.perf_counter()
  with pytest.raises(sources.DataNotFoundError, match="svhn_cropped"):
    unlabeled.load_pool("svhn_extra", str(tmp_path))
  assert time.perf_counter() - t0 < 30  # no download attempt (which blocks for minutes)
