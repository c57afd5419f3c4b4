"""Partial-label generation and CORR / RECORDS / SoLar pieces vs float64 numpy references (RECORDS' candidate-set
generation, RECORDS `utils/utils_loss.py::CORR_loss`; RECORDS `train_solar.py`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ltjax.data.imbalance import select_long_tailed
from ltjax.losses import partial_label as rec
from ltjax.methods.records import candidates as pl

# The widely used CIFAR-100 fine→coarse table (independent of the name lists in ltjax.methods.records.candidates).
SPARSE2COARSE = np.array([
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11, 6, 11, 5, 10, 7, 6, 13, 15, 3, 15,
    0, 11, 1, 10, 12, 14, 16, 9, 11, 5, 5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13, 16, 19, 2, 4, 6, 19, 5, 5, 8, 19,
    18, 1, 2, 15, 6, 0, 17, 8, 14, 13])


# ------------------------------------------------------------------------------------------------- candidate sets
def test_fine_to_coarse_table():
  assert len(pl.CIFAR100_FINE_NAMES) == 100 and list(pl.CIFAR100_FINE_NAMES) == sorted(pl.CIFAR100_FINE_NAMES)
  names = [n for _, ns in pl.CIFAR100_SUPERCLASSES for n in ns]
  assert sorted(names) == sorted(pl.CIFAR100_FINE_NAMES)
  np.testing.assert_array_equal(pl.cifar100_fine_to_coarse(), SPARSE2COARSE)


def _upstream_uniform(labels, q, num_classes):
  """Upstream generate_uniform_cv_candidate_labels on the global numpy stream (loop per row)."""
  t = np.eye(num_classes)
  t[np.where(~np.eye(num_classes, dtype=bool))] = q
  u = np.random.uniform(0, 1, size=(len(labels), num_classes))
  out = np.zeros((len(labels), num_classes))
  for j in range(len(labels)):
    out[j] = (u[j] < t[labels[j]]) * 1
  return out


def test_uniform_matches_upstream_shared_stream():
  labels_full = np.random.RandomState(5).randint(0, 10, size=3000)
  counts = [200, 150, 100, 80, 60, 40, 30, 20, 15, 10]
  state = np.random.get_state()
  try:  # upstream: np.random.seed(0), per-class shuffles, then one uniform draw on the same global stream
    np.random.seed(0)
    parts = []
    for c, n in enumerate(counts):
      idx = np.where(labels_full == c)[0]
      np.random.shuffle(idx)
      parts.append(idx[:n])
    ref_sel = np.concatenate(parts)
    ref = _upstream_uniform(labels_full[ref_sel], 0.3, 10)
  finally:
    np.random.set_state(state)
  rng = np.random.RandomState(0)
  sel = select_long_tailed(labels_full, counts, rng=rng)
  np.testing.assert_array_equal(sel, ref_sel)
  got = pl.uniform_candidates(labels_full[sel], 10, 0.3, rng=rng)
  assert got.dtype == np.float32
  np.testing.assert_array_equal(got, ref)


def test_uniform_statistics_and_seeds():
  q, c = 0.3, 10
  labels = np.random.RandomState(1).randint(0, c, size=20000)
  s = pl.uniform_candidates(labels, c, q, rng=3)
  assert np.all(s[np.arange(len(labels)), labels] == 1)
  for j in range(c):
    other = labels != j
    assert abs(s[other, j].mean() - q) < 0.015, j
  assert abs(s.sum(1).mean() - (1 + q * (c - 1))) < 0.03
  np.testing.assert_array_equal(s, pl.uniform_candidates(labels, c, q, rng=3))
  assert not np.array_equal(s, pl.uniform_candidates(labels, c, q, rng=4))
  # q = 0 → singletons; q = 1 → full sets
  np.testing.assert_array_equal(pl.uniform_candidates(labels[:50], c, 0.0), np.eye(c)[labels[:50]])
  assert np.all(pl.uniform_candidates(labels[:50], c, 1.0) == 1)


def test_hierarchical_statistics():
  q = 0.03
  labels = np.random.RandomState(2).randint(0, 100, size=20000)
  s = pl.hierarchical_candidates(labels, q, rng=7)
  f2c = SPARSE2COARSE
  same = f2c[labels][:, None] == f2c[None, :]
  true = np.zeros_like(same)
  true[np.arange(len(labels)), labels] = True
  assert np.all(s[true] == 1)
  assert abs(s[same & ~true].mean() - 8 * q) < 0.01  # 80,000 draws
  assert abs(s[~same].mean() - q) < 0.002          # 1.9M draws
  assert abs(s.sum(1).mean() - (1 + 32 * q + 95 * q)) < 0.05
  np.testing.assert_array_equal(s, pl.hierarchical_candidates(labels, q, rng=7))


@pytest.mark.parametrize("q", [-0.1, 1.5, float("nan")])
def test_bad_q(q):
  with pytest.raises(ValueError, match="q="):
    pl.uniform_candidates(np.array([0, 1]), 3, q)
  with pytest.raises(ValueError, match="q="):
    pl.hierarchical_candidates(np.array([0, 1]), q)


def test_check_candidates():
  labels = np.array([0, 2, 1])
  s = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0]], np.float32)
  pl.check_candidates(s, labels)
  s_bad = s.copy()
  s_bad[2, 1] = 0
  with pytest.raises(ValueError, match="example 2"):
    pl.check_candidates(s_bad, labels)
  pl.check_candidates(s_bad, labels, require_true=False)
  with pytest.raises(ValueError, match="example 1"):
    pl.check_candidates(np.array([[1, 0, 0], [0, 0, 0], [1, 1, 1]]), labels, require_true=False)
  w = pl.initial_confidence(s)
  np.testing.assert_allclose(w, s / s.sum(1, keepdims=True))


# --------------------------------------------------------------------------------------------------- references
def _softmax(z):
  z = z - z.max(-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(-1, keepdims=True)


def _corr_ref(o, os_, w):
  b = w.shape[0]
  p, ps = _softmax(o), _softmax(os_)
  neg = (w == 0)
  l_neg = np.sum(neg * (-np.log(np.abs(1 - p) + 1e-9) - np.log(np.abs(1 - ps) + 1e-9))) / b
  kl = 0.0
  for pp in (p, ps):
    for i in range(b):
      for j in range(w.shape[1]):
        if w[i, j] > 0:
          kl += w[i, j] * (np.log(w[i, j]) - np.log(pp[i, j]))
  return l_neg + kl / b


def _corr_grad_ref(o, w):
  """d L / d o for one view: (1/B)[ Σ_j neg_j p_j(δ_jk − p_k)/(1 − p_j + 1e-9) + (Σ_j w_j) p_k − w_k ]."""
  b, c = w.shape
  p = _softmax(o)
  g = np.zeros_like(o)
  for i in range(b):
    for k in range(c):
      s = 0.0
      for j in range(c):
        if w[i, j] == 0:
          s += p[i, j] * ((j == k) - p[i, k]) / (1 - p[i, j] + 1e-9)
      g[i, k] = (s + w[i].sum() * p[i, k] - w[i, k]) / b
  return g


def _batch(seed, b=6, c=5):
  r = np.random.RandomState(seed)
  o = r.randn(b, c) * 2
  os_ = r.randn(b, c) * 2
  cand = (r.rand(b, c) < 0.5).astype(np.float64)
  cand[np.arange(b), r.randint(0, c, b)] = 1
  w = cand * r.rand(b, c)
  w[0, np.flatnonzero(cand[0])[0]] = 0.0  # a candidate whose confidence fell to 0
  w = w / w.sum(1, keepdims=True)
  return o, os_, cand, w


def test_corr_loss_and_grad():
  o, os_, _, w = _batch(0)
  f = jax.jit(rec.corr_loss)
  val = f(jnp.asarray(o, jnp.float32), jnp.asarray(os_, jnp.float32), jnp.asarray(w, jnp.float32))
  np.testing.assert_allclose(float(val), _corr_ref(o, os_, w), rtol=1e-5)
  gw, gs = jax.grad(rec.corr_loss, argnums=(0, 1))(jnp.asarray(o, jnp.float32), jnp.asarray(os_, jnp.float32),
                                                   jnp.asarray(w, jnp.float32))
  assert np.all(np.isfinite(gw)) and np.all(np.isfinite(gs))
  np.testing.assert_allclose(gw, _corr_grad_ref(o, w), atol=1e-6, rtol=1e-4)
  np.testing.assert_allclose(gs, _corr_grad_ref(os_, w), atol=1e-6, rtol=1e-4)
  # the analytic gradient agrees with finite differences of the float64 reference
  h, e = 1e-6, np.zeros_like(o)
  e[1, 2] = h
  fd = (_corr_ref(o + e, os_, w) - _corr_ref(o - e, os_, w)) / (2 * h)
  np.testing.assert_allclose(_corr_grad_ref(o, w)[1, 2], fd, rtol=1e-5)


def test_corr_update():
  o, os_, _, w = _batch(1)
  f = jax.jit(rec.corr_update)
  got = f(jnp.asarray(o, jnp.float32), jnp.asarray(os_, jnp.float32), jnp.asarray(w, jnp.float32), True)
  u = (w > 0) * np.sqrt(_softmax(o) * _softmax(os_))
  ref = u / (u.sum(1, keepdims=True) + 1e-9)
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7)
  assert np.all(np.asarray(got)[w == 0] == 0)  # support = current non-zeros: the zeroed candidate stays 0
  same = f(jnp.asarray(o, jnp.float32), jnp.asarray(os_, jnp.float32), jnp.asarray(w, jnp.float32), False)
  np.testing.assert_allclose(same, w.astype(np.float32))


def test_records_feature_mean_prior_update_and_adjust():
  r = np.random.RandomState(2)
  b, d, c, m = 6, 8, 5, 0.9
  fw1, fs1, fw2, fs2 = (np.abs(r.randn(b, d)) for _ in range(4))
  step = jax.jit(rec.records_feature_mean)
  f1 = step(jnp.zeros(d), jnp.asarray(fw1, jnp.float32), jnp.asarray(fs1, jnp.float32), m)
  f2 = step(f1, jnp.asarray(fw2, jnp.float32), jnp.asarray(fs2, jnp.float32), m)
  g1, g2 = ((fw1 + fs1) / 2).mean(0), ((fw2 + fs2) / 2).mean(0)
  np.testing.assert_allclose(f1, (1 - m) * g1, rtol=1e-5)  # EMA from zero, no bias correction
  np.testing.assert_allclose(f2, m * (1 - m) * g1 + (1 - m) * g2, rtol=1e-5)

  kernel, bias = r.randn(d, c), r.randn(c)
  prior = rec.records_prior(f2, jnp.asarray(kernel, jnp.float32), jnp.asarray(bias, jnp.float32))
  prior_ref = _softmax(np.asarray(f2, np.float64) @ kernel + bias)
  np.testing.assert_allclose(prior, prior_ref, rtol=1e-5)

  o, os_, cand, w = _batch(3, b, c)
  adj = rec.records_adjust_logits(jnp.asarray(o, jnp.float32), jnp.asarray(prior_ref, jnp.float32))
  np.testing.assert_allclose(adj, o - np.log(prior_ref + 1e-9), rtol=1e-5, atol=1e-5)

  upd = jax.jit(rec.records_update)
  got = upd(jnp.asarray(o, jnp.float32), jnp.asarray(os_, jnp.float32), jnp.asarray(cand, jnp.float32),
            jnp.asarray(prior_ref, jnp.float32), jnp.asarray(w, jnp.float32), True)
  q = _softmax(o - np.log(prior_ref + 1e-9))
  qs = _softmax(os_ - np.log(prior_ref + 1e-9))
  v = cand * q * qs
  v = v / (v.sum(1, keepdims=True) + 1e-9)
  v = np.sqrt(v)
  v = v / (v.sum(1, keepdims=True) + 1e-9)
  np.testing.assert_allclose(got, v, rtol=1e-4, atol=1e-7)
  j0 = np.flatnonzero(cand[0])[0]
  assert w[0, j0] == 0 and float(got[0, j0]) > 0  # support = initial candidate set: the label re-enters
  assert np.all(np.asarray(got)[cand == 0] == 0)
  kept = upd(jnp.asarray(o, jnp.float32), jnp.asarray(os_, jnp.float32), jnp.asarray(cand, jnp.float32),
             jnp.asarray(prior_ref, jnp.float32), jnp.asarray(w, jnp.float32), False)
  np.testing.assert_allclose(kept, w.astype(np.float32))


def test_records_mixup_loss():
  o, os_, _, w = _batch(4)
  om, osm, _, _ = _batch(5)
  perm = np.array([3, 0, 5, 1, 2, 4])
  lam = float(rec.mixup_lambda(0.3))
  assert lam == pytest.approx(0.7)
  wm = np.asarray(rec.mix(jnp.asarray(w, jnp.float32), perm, lam), np.float64)
  np.testing.assert_allclose(wm, lam * w + (1 - lam) * w[perm], rtol=1e-6)
  args = [jnp.asarray(x, jnp.float32) for x in (o, os_, w, om, osm, wm)]
  got = jax.jit(rec.records_mixup_loss)(*args, 0.5, True)
  np.testing.assert_allclose(float(got), _corr_ref(o, os_, w) + 0.5 * _corr_ref(om, osm, wm), rtol=1e-5)
  off = rec.records_mixup_loss(*args, 0.5, False)
  np.testing.assert_allclose(float(off), _corr_ref(o, os_, w), rtol=1e-5)


# --------------------------------------------------------------------------------------------------------- SoLar
def _sinkhorn_ref(pred, eta, r_in):
  """Upstream utils_solar sinkhorn, literally (float64): NaN check every 10 iterations, recursive relaxed retry."""
  ps = pred.T.copy()
  n = ps.shape[1]
  c = np.ones((n, 1)) / n
  r_init = r_in.reshape(-1, 1).copy()
  r = r_init
  ps = ps ** eta
  inv_n = 1.0 / n
  counter = 1
  with np.errstate(divide="ignore", invalid="ignore"):
    for _ in range(50):
      r = r_init * (1 / (ps @ c))
      c_new = inv_n / (r.T @ ps).T
      if counter % 10 == 0:
        err = np.sum(c_new) + np.sum(r)
        if np.isnan(err):
          relaxed, _ = _sinkhorn_ref(pred + 1e-5 * (pred == 0), eta, r_in)
          return relaxed * (pred != 0), True
      c = c_new
      counter += 1
  ps = ps * c[:, 0]
  return (ps.T * r[:, 0]) * n, False


def test_sinkhorn_matches_loop_and_marginals():
  rng = np.random.RandomState(6)
  n, c = 64, 5
  logits = rng.randn(n, c) * 2
  cand = (rng.rand(n, c) < 0.6).astype(np.float64)
  cand[np.arange(n), rng.randint(0, c, n)] = 1
  m, conf = rec.solar_scores(jnp.asarray(logits, jnp.float32), jnp.asarray(cand, jnp.float32))
  m_ref = _softmax(logits) * cand
  np.testing.assert_allclose(m, m_ref, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(conf, m_ref / m_ref.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
  prior = np.array([0.4, 0.25, 0.15, 0.12, 0.08])
  q, bad = jax.jit(rec.sinkhorn)(m, jnp.asarray(prior, jnp.float32))
  ref, ref_bad = _sinkhorn_ref(np.asarray(m, np.float64), 3, prior)
  assert not bool(bad) and not ref_bad
  np.testing.assert_allclose(q, ref, rtol=2e-3, atol=1e-6)
  np.testing.assert_allclose(np.asarray(q).sum(1), 1.0, rtol=1e-4)
  np.testing.assert_allclose(np.asarray(q).sum(0), n * prior, rtol=2e-2)
  assert np.all(np.asarray(q)[cand == 0] == 0)


def test_sinkhorn_nan_fallback():
  rng = np.random.RandomState(7)
  n, c = 32, 4
  scores = rng.rand(n, c)
  scores[:, 2] = 0.0  # no sample scores class 2 → r' = inf → NaN → relaxed retry
  prior = np.array([0.4, 0.3, 0.2, 0.1])
  ref, ref_bad = _sinkhorn_ref(scores, 3, prior)
  assert ref_bad
  q, bad = jax.jit(rec.sinkhorn)(jnp.asarray(scores, jnp.float32), jnp.asarray(prior, jnp.float32))
  assert bool(bad)
  q = np.asarray(q)
  assert np.all(np.isfinite(q)) and np.all(q[:, 2] == 0)
  np.testing.assert_allclose(q, ref, rtol=2e-3, atol=1e-6)


def test_solar_queue():
  queue = jnp.zeros((6, 3))
  rows = jnp.arange(6, dtype=jnp.float32).reshape(2, 3) + 1
  q1 = rec.solar_queue_push(queue, rows)
  np.testing.assert_array_equal(q1[:2], rows)
  assert not bool(rec.solar_queue_full(q1))
  q3 = rec.solar_queue_push(rec.solar_queue_push(q1, rows * 10), rows * 100)
  np.testing.assert_array_equal(q3, np.concatenate([rows * 100, rows * 10, rows]))
  assert bool(rec.solar_queue_full(q3))
