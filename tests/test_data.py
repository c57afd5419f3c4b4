"""Long-tailed subsets against spec ARB_AND_SEMISELF §1.1–1.2 and §3.3, and the dataset sources (embedded digits,
TFDS mock data, fast failure for unprepared data)."""

import time

import ml_collections
import numpy as np
import pytest

from ltjax.data import imbalance, sources


def test_cifar10_exp_counts_equal_the_spec_table():
  table = {
      0.01: [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50],
      0.02: [5000, 3237, 2096, 1357, 878, 568, 368, 238, 154, 100],
      0.1: [5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500],
  }
  totals = {0.01: 12406, 0.02: 13996, 0.1: 20431}
  for rho, expect in table.items():
    got = imbalance.class_counts(5000, 10, "exp", rho)
    assert got.tolist() == expect and got.sum() == totals[rho]


def test_cifar100_exp_and_step_counts_equal_the_spec_table():
  for rho, total in {0.01: 10847, 0.02: 12608, 0.1: 19573}.items():
    assert imbalance.class_counts(500, 100, "exp", rho).sum() == total
  c = imbalance.class_counts(500, 100, "exp", 0.01)
  assert c[:5].tolist() == [500, 477, 455, 434, 415] and c[-5:].tolist() == [6, 5, 5, 5, 5]
  assert imbalance.class_counts(500, 100, "exp", 0.02)[-3:].tolist() == [10, 10, 10]
  assert imbalance.class_counts(500, 100, "exp", 0.1)[[0, 1, 2, -2, -1]].tolist() == [500, 488, 477, 51, 50]
  for n_full, c_ in ((5000, 10), (500, 100)):
    for rho, total in {0.01: 25250, 0.02: 25500, 0.1: 27500}.items():
      s = imbalance.class_counts(n_full, c_, "step", rho)
      assert s.sum() == total and (s[:c_ // 2] == n_full).all() and (s[c_ // 2:] == int(n_full * rho)).all()
  assert imbalance.class_counts(500, 100, "none", 0.01).tolist() == [500] * 100


def test_svhn_label_indexed_counts_equal_the_spec():
  pos = imbalance.class_counts(1000, 10, "exp", 0.02)
  lab = imbalance.label_counts(pos, (1, 2, 3, 4, 5, 6, 7, 8, 9, 0))
  assert lab.tolist() == [20, 1000, 647, 419, 271, 175, 113, 73, 47, 30] and lab.sum() == 2795


@pytest.mark.parametrize("rho", [0.0, 1.5, -0.1])
def test_bad_imbalance_factor_is_an_error(rho):
  with pytest.raises(ValueError, match="imb_factor"):
    imbalance.class_counts(5000, 10, "exp", rho)


def official_selection(labels, counts, seed, order=None):
  """The official `gen_imbalanced_data`, verbatim in spirit: global legacy RNG, np.where, shuffle, slice."""
  np.random.seed(seed)
  order = range(len(counts)) if order is None else order
  out = []
  for c, n in zip(order, counts):
    idx = np.where(labels == c)[0]
    np.random.shuffle(idx)
    out.extend(idx[:n].tolist())
  return np.array(out)


@pytest.mark.parametrize("num_classes,n_full,rho", [(10, 5000, 0.01), (100, 500, 0.02)])
def test_selection_matches_the_legacy_global_rng_procedure(num_classes, n_full, rho):
  labels = np.random.RandomState(7).permutation(np.arange(num_classes * n_full) % num_classes)
  counts = imbalance.class_counts(n_full, num_classes, "exp", rho)
  sel = imbalance.select_long_tailed(labels, counts, seed=0)
  np.testing.assert_array_equal(sel, official_selection(labels, counts, 0))
  assert np.bincount(labels[sel], minlength=num_classes).tolist() == counts.tolist()
  other = imbalance.select_long_tailed(labels, counts, seed=1)
  assert not np.array_equal(np.sort(sel), np.sort(other))


def test_selection_with_svhn_class_order():
  order = (1, 2, 3, 4, 5, 6, 7, 8, 9, 0)
  labels = np.random.RandomState(3).permutation(np.arange(20000) % 10)
  counts = imbalance.class_counts(1000, 10, "exp", 0.02)
  sel = imbalance.select_long_tailed(labels, counts, 0, order)
  np.testing.assert_array_equal(sel, official_selection(labels, counts, 0, order))
  assert np.bincount(labels[sel], minlength=10).tolist() == [20, 1000, 647, 419, 271, 175, 113, 73, 47, 30]


def test_selection_refuses_classes_that_are_too_small():
  labels = np.arange(30) % 3
  with pytest.raises(ValueError, match="class 0 has 10 examples"):
    imbalance.select_long_tailed(labels, [20, 5, 5])
  assert len(imbalance.select_long_tailed(labels, [20, 5, 5], allow_fewer=True)) == 20


def test_unlabeled_counts_equal_the_spec_examples():
  labeled = imbalance.class_counts(5000, 10, "exp", 0.02)
  assert imbalance.unlabeled_counts(labeled, 1.0).tolist() == [6998] * 10
  assert imbalance.unlabeled_counts(labeled, 0.02).tolist() == [24999, 16186, 10477, 6784, 4390, 2843, 1839, 1189,
                                                                771, 496]


def data_cfg(**kw):
  c = ml_collections.ConfigDict(dict(name="digits", data_dir="", imb_type="exp", imb_factor=0.1, rand_number=0,
                                     val_per_class=0))
  c.update(kw)
  return c


def test_digits_source_is_long_tailed_with_a_disjoint_balanced_test_set():
  d = sources.load(data_cfg(val_per_class=3))
  counts = np.bincount(d.train.labels, minlength=10)
  assert counts.tolist() == imbalance.class_counts(counts[0], 10, "exp", 0.1).tolist()
  assert counts[0] == 144 and counts[-1] == 14
  assert np.bincount(d.test.labels).tolist() == [30] * 10 and np.bincount(d.val.labels).tolist() == [3] * 10
  sets = [set(s.indices.tolist()) for s in (d.train, d.test, d.val)]
  assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
  assert d.train.images.dtype == np.uint8 and d.train.images.shape[1:] == (8, 8, 1) and d.train.images.max() == 255
  assert d.flip is False and d.crop_padding == 1
  again = sources.load(data_cfg(val_per_class=3))
  np.testing.assert_array_equal(again.train.indices, d.train.indices)


def test_unknown_dataset_is_an_error():
  with pytest.raises(ValueError, match="known"):
    sources.load(data_cfg(name="mnist"))


def test_missing_tfds_data_fails_fast_with_instructions(tmp_path):
  t = time.time()
  with pytest.raises(sources.DataNotFoundError) as e:
    sources.load(data_cfg(name="cifar100", data_dir=str(tmp_path)))
  assert time.time() - t < 20
  msg = str(e.value)
  assert "cifar100" in msg and str(tmp_path) in msg and "tfds build cifar100" in msg


@pytest.mark.parametrize("name,classes,n,rho", [("cifar10", 10, 2000, 0.1), ("cifar100", 100, 5000, 0.5),
                                                ("svhn", 10, 12000, 0.1)])
def test_tfds_sources_on_mock_data(name, classes, n, rho):
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=n, policy=tfds.testing.MockPolicy.USE_CODE):
    raw = sources.REGISTRY[name](data_cfg(name=name))
    # Mock labels are uniform; keep the counts feasible by taking N from the smallest class for this check.
    if name != "svhn":
      assert raw.n_full == n / classes
    small = int(np.bincount(raw.train.labels, minlength=classes).min())
    counts = imbalance.class_counts(small, classes, "exp", rho)
    sel = imbalance.select_long_tailed(raw.train.labels, counts, 0, raw.class_order)
    got = np.bincount(raw.train.labels[sel], minlength=classes)
    assert got.tolist() == imbalance.label_counts(counts, raw.class_order).tolist()
    assert raw.train.images.shape[1:] == (32, 32, 3) and len(raw.test.labels) > 0


def test_original_cifar_order_is_recovered_from_tfds_ids():
  ids = [b"train_00003", b"train_00000", b"train_10002", b"train_00001", b"train_00002"]
  order = sources.original_order(ids)
  assert [ids[i] for i in order] == [b"train_00000", b"train_00001", b"train_00002", b"train_00003",
                                     b"train_10002"]
  assert sources.original_order([b"gebc ahg", b"train_00001"]) is None
