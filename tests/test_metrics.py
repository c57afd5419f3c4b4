"""ltjax.metrics against hand-computed cases and independent loop references (MiSLAS/ARB's evaluation)."""

import json

import numpy as np
import pytest

from ltjax import metrics
from ltjax.data.stats import ClassStats


def _cifar100_counts(rho=0.01):
  return np.array([int(500 * rho ** (c / 99)) for c in range(100)])


def _labels_from_counts(counts):
  return np.repeat(np.arange(len(counts)), counts)


# ------------------------------------------------------------------ top-k


def test_topk_hand_case_and_ties():
  logits = np.array([[0.1, 0.9, 0.5, 0.2],   # ranking 1, 2, 3, 0
                     [1.0, 1.0, 0.0, 1.0],   # tie: stable order 0, 1, 3, 2
                     [0.0, 0.0, 0.0, 0.0]])  # all tied: 0, 1, 2, 3
  labels = np.array([2, 3, 1])
  np.testing.assert_array_equal(metrics.topk_correct(logits, labels, 1), [False, False, False])
  np.testing.assert_array_equal(metrics.topk_correct(logits, labels, 2), [True, False, True])
  np.testing.assert_array_equal(metrics.topk_correct(logits, labels, 3), [True, True, True])
  with pytest.raises(ValueError):
    metrics.topk_correct(logits, labels, 5)
  # wide rows of ties (beyond insertion-sort sizes): the lowest indices rank first
  wide = np.zeros((3, 100))
  wide[2, 50] = 1.0
  np.testing.assert_array_equal(metrics.topk_correct(wide, np.array([0, 4, 50]), 1), [True, False, True])
  np.testing.assert_array_equal(metrics.topk_correct(wide, np.array([4, 5, 3]), 5), [True, False, True])


def test_topk_matches_loop_reference():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(200, 10)).astype(np.float32)
  labels = rng.integers(0, 10, 200)
  for k in (1, 3, 5):
    ref = [labels[i] in sorted(range(10), key=lambda c: -logits[i, c])[:k] for i in range(200)]
    np.testing.assert_array_equal(metrics.topk_correct(logits, labels, k), ref)


# ------------------------------------------------------------------ per-class, confusion, groups


def test_confusion_and_per_class_accuracy_against_loops():
  rng = np.random.default_rng(1)
  c = 7
  labels = rng.integers(0, c - 1, 300)  # class 6 never occurs in the labels
  preds = np.where(rng.random(300) < 0.6, labels, rng.integers(0, c, 300))
  cm = metrics.confusion_matrix(preds, labels, c)
  ref = np.zeros((c, c), int)
  for t, p in zip(labels, preds):
    ref[t, p] += 1
  np.testing.assert_array_equal(cm, ref)
  acc = metrics.per_class_accuracy(preds, labels, c)
  for k in range(c - 1):
    idx = [i for i in range(300) if labels[i] == k]
    assert acc[k] == pytest.approx(sum(preds[i] == k for i in idx) / len(idx), abs=1e-15)
  assert np.isnan(acc[c - 1])


def test_per_class_hand_case():
  preds = np.array([0, 0, 1, 2, 2, 2])
  labels = np.array([0, 1, 1, 2, 2, 0])
  np.testing.assert_allclose(metrics.per_class_accuracy(preds, labels, 4)[:3], [0.5, 0.5, 1.0])
  assert np.isnan(metrics.per_class_accuracy(preds, labels, 4)[3])
  np.testing.assert_array_equal(metrics.confusion_matrix(preds, labels, 3), [[1, 0, 1], [1, 1, 0], [0, 0, 2]])


def test_group_accuracies_nan_aware_and_empty_group_is_none():
  acc = np.array([1.0, 0.5, np.nan, 0.0, 0.25])
  groups = {"a": np.array([1, 1, 1, 0, 0], bool), "b": np.array([0, 0, 0, 1, 1], bool),
            "empty": np.zeros(5, bool), "only_absent": np.array([0, 0, 1, 0, 0], bool)}
  out = metrics.group_accuracies(acc, groups)
  assert out == {"a": 0.75, "b": 0.125, "empty": None, "only_absent": None}


def test_cifar100_group_sizes_match_spec():
  counts = _cifar100_counts()
  assert counts[0] == 500 and counts[-1] == 5
  stats = ClassStats.from_labels(_labels_from_counts(counts), 100, ranges=((0, 36), (36, 71), (71, 100)))
  g = stats.threshold_groups()
  assert g["many"].sum() == 35 and g["few"].sum() == 30 and g["medium"].sum() == 35
  r = stats.range_groups()
  assert (r["many"].sum(), r["medium"].sum(), r["few"].sum()) == (36, 35, 29)


def test_evaluate_cifar100_against_loop_reference():
  counts = _cifar100_counts()
  stats = ClassStats.from_labels(_labels_from_counts(counts), 100, ranges=((0, 36), (36, 71), (71, 100)))
  rng = np.random.default_rng(2)
  n = 2000
  labels = rng.integers(0, 100, n)
  labels[labels == 99] = 98  # class 99 (few, count 5) absent from the test set
  logits = rng.normal(size=(n, 100)).astype(np.float32)
  # Make accuracy depend on the class so the groups differ.
  logits[np.arange(n), labels] += 3.0 * (1 - labels / 100)
  out = metrics.evaluate(logits, labels, stats)
  json.dumps(out, allow_nan=False)  # strictly JSON-serialisable

  pred = [int(np.argmax(row)) for row in logits]
  per_class = []
  for c in range(100):
    idx = [i for i in range(n) if labels[i] == c]
    per_class.append(None if not idx else 100.0 * sum(pred[i] == c for i in idx) / len(idx))
  assert out["per_class"][99] is None
  np.testing.assert_allclose([p for p in out["per_class"] if p is not None],
                             [p for p in per_class if p is not None], atol=1e-12)
  assert out["top1"] == pytest.approx(100.0 * np.mean([pred[i] == labels[i] for i in range(n)]), abs=1e-12)

  def mean_over(classes):
    vals = [per_class[c] for c in classes if per_class[c] is not None]
    return sum(vals) / len(vals) if vals else None

  assert out["many_thr"] == pytest.approx(mean_over([c for c in range(100) if counts[c] > 100]), abs=1e-10)
  assert out["medium_thr"] == pytest.approx(mean_over([c for c in range(100) if 20 <= counts[c] <= 100]), abs=1e-10)
  assert out["few_thr"] == pytest.approx(mean_over([c for c in range(100) if counts[c] < 20]), abs=1e-10)
  assert out["many_idx"] == pytest.approx(mean_over(range(0, 36)), abs=1e-10)
  assert out["medium_idx"] == pytest.approx(mean_over(range(36, 71)), abs=1e-10)
  assert out["few_idx"] == pytest.approx(mean_over(range(71, 100)), abs=1e-10)
  # the two definitions really differ here (class 35 is 'many' by range, medium by threshold)
  assert out["many_idx"] != out["many_thr"]
  assert out["num_examples"] == n
  assert 0 <= out["ece"] <= 100 and 0 <= out["top5"] <= 100 and out["top5"] >= out["top1"]


def test_evaluate_small_classes_no_ranges_and_empty_group():
  # 3 classes, all counts in 20..100 → many and few are empty → None; no ranges → no *_idx keys; no top5.
  stats = ClassStats.from_labels(_labels_from_counts([50, 30, 20]), 3)
  logits = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
  labels = np.array([0, 1, 1, 2])
  out = metrics.evaluate(logits, labels, stats)
  assert "top5" not in out and "many_idx" not in out
  assert out["top1"] == 75.0
  assert out["per_class"] == [100.0, 50.0, 100.0]
  assert out["many_thr"] is None and out["few_thr"] is None
  assert out["medium_thr"] == pytest.approx(250.0 / 3)
  with pytest.raises(ValueError):
    metrics.evaluate(np.zeros((4, 5)), labels, stats)


# ------------------------------------------------------------------ calibration


def _ece_reference(probs, labels, num_bins=15):
  """Plain loop: bin b holds confidences in (b/B, (b+1)/B]; confidence 0 in bin 0."""
  n = len(labels)
  members = [[] for _ in range(num_bins)]
  for i in range(n):
    row = list(probs[i])
    conf = max(row)
    pred = row.index(conf)
    b = 0
    for cand in range(num_bins):
      if cand / num_bins < conf <= (cand + 1) / num_bins:
        b = cand
    members[b].append((conf, pred == labels[i]))
  ece, mce = 0.0, 0.0
  for m in members:
    if m:
      acc = sum(ok for _, ok in m) / len(m)
      conf = sum(c for c, _ in m) / len(m)
      ece += abs(acc - conf) * len(m) / n
      mce = max(mce, abs(acc - conf))
  return ece, mce, [len(m) for m in members]


def test_calibration_against_loop_reference():
  rng = np.random.default_rng(3)
  n, c = 500, 10
  logits = rng.normal(size=(n, c)) * rng.uniform(0.1, 4.0, size=(n, 1))
  labels = rng.integers(0, c, n)
  cal = metrics.calibration(logits, labels)
  probs = np.exp(logits - logits.max(1, keepdims=True))
  probs /= probs.sum(1, keepdims=True)
  ece, mce, counts = _ece_reference(probs, labels)
  assert cal["ece"] == pytest.approx(ece, abs=1e-12)
  assert cal["mce"] == pytest.approx(mce, abs=1e-12)
  np.testing.assert_array_equal(cal["bin_count"], counts)
  # same from probabilities
  cal_p = metrics.calibration(probs, labels, from_logits=False)
  assert cal_p["ece"] == pytest.approx(ece, abs=1e-12)


def test_calibration_bin_edges_are_right_closed():
  # confidences exactly on edges b/15 belong to bin b-1; confidence 0 goes into bin 0.
  confs = np.array([1 / 15, 2 / 15, 14 / 15, 1.0, 0.0, 0.5])
  probs = np.stack([confs, np.zeros_like(confs)], axis=1)  # class 0 has the max confidence (ties → class 0)
  labels = np.array([0, 1, 0, 0, 1, 0])
  cal = metrics.calibration(probs, labels, from_logits=False)
  expected_bins = [0, 1, 13, 14, 0, 7]
  np.testing.assert_array_equal(cal["bin_count"], np.bincount(expected_bins, minlength=15))
  ece, mce, counts = _ece_reference(probs, labels)
  np.testing.assert_array_equal(cal["bin_count"], counts)
  assert cal["ece"] == pytest.approx(ece, abs=1e-15)
  # hand computation: bin0 {1/15 correct, 0 wrong}: |0.5 - 1/30|·2; bin1 {2/15 wrong}: 2/15;
  # bin13 {14/15 correct}: 1/15; bin14 {1.0 correct}: 0; bin7 {0.5 correct}: 0.5
  hand = ((0.5 - 1 / 30) * 2 + 2 / 15 + 1 / 15 + 0.0 + 0.5) / 6
  assert cal["ece"] == pytest.approx(hand, abs=1e-15)
  assert cal["mce"] == pytest.approx(0.5, abs=1e-15)


def test_calibration_perfect_and_overconfident():
  # Every prediction correct with confidence 1 → ECE 0; all wrong with confidence ~1 → ECE ~1.
  logits = np.array([[100.0, 0.0], [0.0, 100.0]])
  assert metrics.calibration(logits, np.array([0, 1]))["ece"] == pytest.approx(0.0, abs=1e-12)
  assert metrics.calibration(logits, np.array([1, 0]))["ece"] == pytest.approx(1.0, abs=1e-12)


def test_softmax_is_float64_and_stable():
  p = metrics.softmax(np.array([[1000.0, 1000.0, -1000.0]], np.float32))
  assert p.dtype == np.float64
  np.testing.assert_allclose(p, [[0.5, 0.5, 0.0]])


# ------------------------------------------------------------------ macro F1


def test_macro_f1_hand_and_sklearn():
  preds = np.array([0, 0, 1, 2, 2, 2])
  labels = np.array([0, 1, 1, 2, 2, 0])
  # class0: tp1 fp1 fn1 → 0.5; class1: tp1 fp0 fn1 → 2/3; class2: tp2 fp1 fn0 → 0.8; class 3 absent → excluded
  assert metrics.macro_f1(preds, labels, 4) == pytest.approx((0.5 + 2 / 3 + 0.8) / 3)
  sk = pytest.importorskip("sklearn.metrics")
  rng = np.random.default_rng(4)
  labels = rng.integers(0, 12, 400)
  preds = np.where(rng.random(400) < 0.5, labels, rng.integers(0, 14, 400))  # some preds outside the labels
  assert metrics.macro_f1(preds, labels, 14) == pytest.approx(sk.f1_score(labels, preds, average="macro"), abs=1e-12)


def test_an_empty_group_prints_a_dash_and_stores_null():
  from ltjax.train import loop
  r = {"top1": 90.0, "many_thr": 95.0, "medium_thr": None, "few_thr": 80.0, "ece": 1.0}
  line = loop.summary_lines({"best": r, "final": r, "best_epoch": 0})[0]
  assert "medium –" in line and "medium 0.00" not in line
  labels = np.array([0, 1, 2, 3])  # every class has 1 training image: the many and medium groups are empty
  from ltjax.data.stats import ClassStats
  out = metrics.evaluate(np.eye(4, dtype=np.float32), labels, ClassStats(counts=np.ones(4, np.int64)))
  assert out["many_thr"] is None and out["medium_thr"] is None and out["few_thr"] == 100.0
  assert json.loads(json.dumps(out, allow_nan=False))["many_thr"] is None
