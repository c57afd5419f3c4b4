"""ltjax.data.imbalance against LDAM-DRW `imbalance_cifar.py` (counts table), imbalanced-semi-self's SVHN-LT (SVHN
order), imbalanced-semi-self `train_semi.py` (D_U@5x) and
against an independent re-implementation of the official selection with numpy's *global* legacy RNG."""

import numpy as np
import pytest

from ltjax.data import imbalance

SVHN_ORDER = (1, 2, 3, 4, 5, 6, 7, 8, 9, 0)


# ---------------------------------------------------------------------------------------------------------------
# Counts (LDAM-DRW `imbalance_cifar.py` table)


@pytest.mark.parametrize("rho,expect,total", [
    (0.01, [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50], 12406),
    (0.02, [5000, 3237, 2096, 1357, 878, 568, 368, 238, 154, 100], 13996),
    (0.1, [5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500], 20431),
])
def test_cifar10_exp_counts_equal_the_spec_table(rho, expect, total):
  got = imbalance.class_counts(5000, 10, "exp", rho)
  assert got.dtype == np.int64 and got.shape == (10,)
  assert got.tolist() == expect
  assert int(got.sum()) == total


def test_cifar100_exp_counts_equal_the_spec_table():
  c = imbalance.class_counts(500, 100, "exp", 0.01)
  assert int(c.sum()) == 10847
  assert c[:5].tolist() == [500, 477, 455, 434, 415] and c[-5:].tolist() == [6, 5, 5, 5, 5]
  c = imbalance.class_counts(500, 100, "exp", 0.02)
  assert int(c.sum()) == 12608
  assert c[:3].tolist() == [500, 480, 462] and c[-3:].tolist() == [10, 10, 10]
  c = imbalance.class_counts(500, 100, "exp", 0.1)
  assert int(c.sum()) == 19573
  assert c[:3].tolist() == [500, 488, 477] and c[-2:].tolist() == [51, 50]
  # N is len(train)/C, a float in the official code: same result.
  np.testing.assert_array_equal(imbalance.class_counts(50000 / 100, 100, "exp", 0.01),
                                imbalance.class_counts(500, 100, "exp", 0.01))


@pytest.mark.parametrize("n_full,num_classes", [(5000, 10), (500, 100)])
@pytest.mark.parametrize("rho,total", [(0.01, 25250), (0.02, 25500), (0.1, 27500)])
def test_step_counts_equal_the_spec_table(n_full, num_classes, rho, total):
  s = imbalance.class_counts(n_full, num_classes, "step", rho)
  half = num_classes // 2
  assert s.shape == (num_classes,) and int(s.sum()) == total
  assert s[:half].tolist() == [n_full] * half
  assert s[half:].tolist() == [int(n_full * rho)] * half


def test_step_with_odd_classes_leaves_the_last_class_empty_as_the_official_list_does():
  # The official list has 2·⌊C/2⌋ entries; its zip then gives the last class nothing.
  assert imbalance.class_counts(100, 5, "step", 0.1).tolist() == [100, 100, 10, 10, 0]


@pytest.mark.parametrize("imb_type", ["none", "balanced", "anything"])
def test_other_profiles_are_balanced(imb_type):
  assert imbalance.class_counts(500, 100, imb_type, 0.01).tolist() == [500] * 100
  assert imbalance.class_counts(5000.0, 10, imb_type, 1.0).tolist() == [5000] * 10


def test_svhn_label_indexed_counts_equal_the_spec():
  pos = imbalance.class_counts(1000, 10, "exp", 0.02)
  lab = imbalance.label_counts(pos, SVHN_ORDER)
  assert lab.tolist() == [20, 1000, 647, 419, 271, 175, 113, 73, 47, 30]
  assert int(lab.sum()) == 2795
  assert imbalance.label_counts(pos).tolist() == pos.tolist()


@pytest.mark.parametrize("rho", [0.0, 1.5, -0.1])
@pytest.mark.parametrize("imb_type", ["exp", "step", "none"])
def test_bad_imbalance_factor_is_an_error_naming_value_and_range(rho, imb_type):
  with pytest.raises(ValueError, match=r"imb_factor") as e:
    imbalance.class_counts(5000, 10, imb_type, rho)
  assert str(rho) in str(e.value) and "(0, 1]" in str(e.value)


def test_exp_needs_two_classes():
  with pytest.raises(ValueError, match="at least 2 classes"):
    imbalance.class_counts(5000, 1, "exp", 0.1)


# ---------------------------------------------------------------------------------------------------------------
# Selection


def official_selection(labels, counts, seed, classes=None):
  """`gen_imbalanced_data` of the official code, written independently: global legacy RNG seeded once,
  np.where / np.random.shuffle / slice per class, concatenated."""
  np.random.seed(seed)
  targets_np = np.array(labels, dtype=np.int64)
  if classes is None:
    classes = np.unique(targets_np)
  out = []
  for the_class, the_img_num in zip(classes, counts):
    idx = np.where(targets_np == the_class)[0]
    np.random.shuffle(idx)
    out.append(idx[:the_img_num])
  return np.concatenate(out)


@pytest.mark.parametrize("num_classes,n_full,rho", [(10, 5000, 0.01), (10, 5000, 0.1), (100, 500, 0.02)])
def test_selection_matches_the_official_global_rng_procedure(num_classes, n_full, rho):
  labels = (np.arange(num_classes * n_full) % num_classes)[np.random.RandomState(7).permutation(
      num_classes * n_full)].astype(np.int32)
  counts = imbalance.class_counts(n_full, num_classes, "exp", rho)
  state = np.random.get_state()
  sel = imbalance.select_long_tailed(labels, counts, seed=0)
  after = np.random.get_state()
  assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]  # global untouched
  assert sel.dtype == np.int64
  np.testing.assert_array_equal(sel, official_selection(labels, counts, 0))
  assert np.bincount(labels[sel], minlength=num_classes).tolist() == counts.tolist()
  assert len(np.unique(sel)) == len(sel)
  np.testing.assert_array_equal(sel, imbalance.select_long_tailed(labels, counts, seed=0))  # deterministic
  other = imbalance.select_long_tailed(labels, counts, seed=1)
  np.testing.assert_array_equal(other, official_selection(labels, counts, 1))
  assert not np.array_equal(np.sort(sel), np.sort(other))


def test_selection_with_svhn_class_order_matches_the_official_rotation():
  labels = (np.arange(30000) % 10)[np.random.RandomState(3).permutation(30000)]
  counts = imbalance.class_counts(1000, 10, "exp", 0.02)
  sel = imbalance.select_long_tailed(labels, counts, 0, SVHN_ORDER)
  classes = np.unique(labels)
  classes = np.concatenate([classes[1:], classes[:1]])  # the official SVHN rotation
  np.testing.assert_array_equal(sel, official_selection(labels, counts, 0, classes))
  assert np.bincount(labels[sel], minlength=10).tolist() == [20, 1000, 647, 419, 271, 175, 113, 73, 47, 30]
  # Not the same as visiting the classes in label order.
  assert not np.array_equal(np.sort(sel), np.sort(imbalance.select_long_tailed(labels, counts, 0)))


def test_selection_continues_one_stream_for_the_unlabeled_part():
  """Spec imbalanced-semi-self `train_semi.py`: the D_U selection draws from the same global stream right after the
  labeled selection."""
  labels = (np.arange(5000) % 10)[np.random.RandomState(1).permutation(5000)]
  truth = np.random.RandomState(2).randint(0, 10, size=20000)
  lab_counts = imbalance.class_counts(500, 10, "exp", 0.1)
  u_counts = imbalance.unlabeled_counts(lab_counts, 0.1)
  rng = np.random.RandomState(0)
  sel = imbalance.select_long_tailed(labels, lab_counts, rng=rng)
  usel = imbalance.select_long_tailed(truth, u_counts, rng=rng, allow_fewer=True)
  np.random.seed(0)
  want = []
  for counts, lab in ((lab_counts, labels), (u_counts, truth)):
    for c, n in zip(range(10), counts):
      idx = np.where(lab == c)[0]
      np.random.shuffle(idx)
      want.append(idx[:n])
  np.testing.assert_array_equal(np.concatenate([sel, usel]), np.concatenate(want))


def test_selection_refuses_classes_that_are_too_small_unless_allowed():
  labels = np.arange(30) % 3
  with pytest.raises(ValueError, match="class 0 has 10 examples but .* asks for 20"):
    imbalance.select_long_tailed(labels, [20, 5, 5])
  got = imbalance.select_long_tailed(labels, [20, 5, 5], allow_fewer=True)
  assert np.bincount(labels[got]).tolist() == [10, 5, 5]


def test_selection_checks_the_class_order():
  with pytest.raises(ValueError, match="class_order has 2 classes but counts has 3"):
    imbalance.select_long_tailed(np.arange(30) % 3, [1, 1, 1], class_order=[0, 1])
  with pytest.raises(ValueError, match="repeats"):
    imbalance.select_long_tailed(np.arange(30) % 3, [1, 1, 1], class_order=[0, 1, 1])


# ---------------------------------------------------------------------------------------------------------------
# Hold-out helpers


def test_remaining_indices():
  got = imbalance.remaining_indices(10, np.array([7, 2, 3]))
  assert got.dtype == np.int64 and got.tolist() == [0, 1, 4, 5, 6, 8, 9]
  assert imbalance.remaining_indices(3, np.zeros([0], np.int64)).tolist() == [0, 1, 2]


def test_balanced_holdout_is_balanced_deterministic_and_drawn_from_candidates():
  labels = (np.arange(600) % 6)[np.random.RandomState(0).permutation(600)]
  selected = imbalance.select_long_tailed(labels, imbalance.class_counts(70, 6, "exp", 0.1))  # 30+ left per class
  cand = imbalance.remaining_indices(600, selected)
  val = imbalance.balanced_holdout(labels, cand, 20, seed=1, num_classes=6)
  assert val.dtype == np.int64 and len(val) == 120 and len(np.unique(val)) == 120
  assert np.bincount(labels[val], minlength=6).tolist() == [20] * 6
  assert set(val.tolist()) <= set(cand.tolist()) and not set(val.tolist()) & set(selected.tolist())
  np.testing.assert_array_equal(val, imbalance.balanced_holdout(labels, cand, 20, seed=1))
  assert set(val.tolist()) != set(imbalance.balanced_holdout(labels, cand, 20, seed=2).tolist())


def test_balanced_holdout_refuses_too_few_candidates():
  labels = np.arange(600) % 6
  selected = imbalance.select_long_tailed(labels, imbalance.class_counts(100, 6, "exp", 0.1))
  cand = imbalance.remaining_indices(600, selected)  # class 0 keeps all 100: nothing left
  with pytest.raises(ValueError, match="class 0 has only 0 images .*val_per_class"):
    imbalance.balanced_holdout(labels, cand, 1, seed=1, num_classes=6)


# ---------------------------------------------------------------------------------------------------------------
# D_U@5x (imbalanced-semi-self `train_semi.py`)


def test_unlabeled_counts_equal_the_spec_examples():
  labeled = imbalance.class_counts(5000, 10, "exp", 0.02)
  assert int(labeled.sum()) == 13996
  balanced = imbalance.unlabeled_counts(labeled, 1.0)
  assert balanced.dtype == np.int64 and balanced.tolist() == [6998] * 10 and int(balanced.sum()) == 69980
  assert imbalance.unlabeled_counts(labeled, 0.02).tolist() == [24999, 16186, 10477, 6784, 4390, 2843, 1839, 1189,
                                                                771, 496]
  for rho_u in (0.01, 0.02, 0.04, 1.0):
    u = imbalance.unlabeled_counts(labeled, rho_u)
    assert 69980 - 10 <= int(u.sum()) <= 69980 and (np.diff(u) <= 0).all()
  assert imbalance.unlabeled_counts(labeled, 1.0, multiplier=2).tolist() == [2 * 13996 // 10] * 10


def test_unlabeled_counts_reject_a_bad_factor():
  with pytest.raises(ValueError, match="imb_factor_unlabel"):
    imbalance.unlabeled_counts([10, 5], 0.0)
