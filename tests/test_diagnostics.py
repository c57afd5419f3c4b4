"""Diagnostics against direct numpy references (loops over classes and pairs, float64)."""

import numpy as np
import pytest

from ltjax import diagnostics


def make(n=60, d=6, c=5, seed=0, absent=None):
  rng = np.random.RandomState(seed)
  labels = np.arange(n) % c
  if absent is not None:
    labels[labels == absent] = 0
  feats = rng.randn(n, d) + 3 * rng.randn(c, d)[labels]
  logits = rng.randn(n, c) * 2
  w = rng.randn(d, c)
  return feats, logits, labels, w


def nc_reference(f, y, w, c):
  present = [k for k in range(c) if (y == k).any()]
  mu_g = f.mean(0)
  mus = {k: f[y == k].mean(0) for k in present}
  m = np.stack([mus[k] - mu_g for k in present])
  sw = sum(np.outer(f[i] - mus[y[i]], f[i] - mus[y[i]]) for i in range(len(y))) / len(y)
  sb = m.T @ m / len(present)
  nc1 = np.trace(sw @ np.linalg.pinv(sb)) / len(present)
  cos = [m[a] @ m[b] / np.linalg.norm(m[a]) / np.linalg.norm(m[b]) for a in range(len(present))
         for b in range(len(present)) if a != b]
  wv = w.T[present]
  wcos = [wv[a] @ wv[b] / np.linalg.norm(wv[a]) / np.linalg.norm(wv[b]) for a in range(len(present))
          for b in range(len(present)) if a != b]
  norms = np.linalg.norm(m, axis=1)
  nc3 = np.sum((wv / np.linalg.norm(wv) - m / np.linalg.norm(m)) ** 2)
  return dict(nc1=nc1, mean_cos_avg=np.mean(cos), mean_cos_std=np.std(cos), classifier_cos_avg=np.mean(wcos),
              classifier_cos_std=np.std(wcos), mean_norm_cv=norms.std() / norms.mean(), nc3=nc3,
              etf_cos=-1 / (len(present) - 1))


@pytest.mark.slow
@pytest.mark.parametrize("absent", [None, 3])
def test_neural_collapse_matches_reference(absent):
  f, z, y, w = make(absent=absent)
  got = diagnostics.neural_collapse(f, y, w, 5)
  ref = nc_reference(f, y, w, 5)
  for k, v in ref.items():
    np.testing.assert_allclose(float(got[k]), v, rtol=2e-3, atol=1e-5, err_msg=k)


@pytest.mark.slow
def test_simplex_etf_features_have_collapsed_geometry():
  c = 4
  etf = np.eye(c) - 1.0 / c  # rows: centred one-hot vectors, a simplex ETF
  y = np.repeat(np.arange(c), 5)
  got = diagnostics.neural_collapse(etf[y], y, etf.T, c)
  assert float(got["nc1"]) < 1e-6 and float(got["nc3"]) < 1e-6 and float(got["mean_norm_cv"]) < 1e-6
  np.testing.assert_allclose(float(got["mean_cos_avg"]), -1 / (c - 1), atol=1e-6)
  assert float(got["mean_cos_std"]) < 1e-3


def grad_reference(f, z, y, counts=None):
  n, c = z.shape
  g = np.zeros([c, c])
  for cc in range(c):
    for j in range(c):
      acc = np.zeros(f.shape[1])
      for i in np.where(y == j)[0]:
        w = np.ones(c) if counts is None else counts / counts[y[i]]
        e = w * np.exp(z[i])
        q = e[cc] / e.sum()
        acc += (1 - q if cc == y[i] else q) * f[i]
      g[cc, j] = np.linalg.norm(acc)
  return g


@pytest.mark.parametrize("use_counts", [False, True])
def test_gradient_components_match_the_loop_of_the_official_diagnostic(use_counts):
  f, z, y, _ = make(n=37, c=5)
  counts = np.bincount(y, minlength=5).astype(float) if use_counts else None
  got = diagnostics.gradient_components(f, z, y, counts, chunk=2)
  np.testing.assert_allclose(np.asarray(got), grad_reference(f, z, y, counts), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_gradient_coefficients_are_the_logit_gradient_of_the_loss():
  import jax
  import jax.numpy as jnp
  from ltjax import losses
  f, z, y, _ = make(n=20, c=5)
  counts = np.bincount(y, minlength=5).astype(np.float32)
  g = jax.grad(lambda zz: losses.arb_loss(zz, jnp.asarray(y), counts, reduction="sum"))(jnp.asarray(z, jnp.float32))
  np.testing.assert_allclose(np.asarray(diagnostics.gradient_coefficients(z, y, counts)), np.asarray(g), atol=1e-5)


def test_attraction_repulsion_ratio_is_row_wise():
  """Hand-made G: row c's own entry over the rest of row c (not of column c)."""
  from ltjax.diagnostics import attraction_repulsion_ratio
  g = np.array([[4.0, 1.0, 1.0],
                [3.0, 2.0, 5.0],
                [0.0, 0.0, 0.5]])
  np.testing.assert_allclose(attraction_repulsion_ratio(g)[:2], [4.0 / 2.0, 2.0 / 8.0])
  assert attraction_repulsion_ratio(g)[2] == np.inf
  # Any G: against a loop over the row.
  G = np.random.default_rng(0).uniform(0.1, 2.0, size=(5, 5))
  want = [G[c, c] / sum(G[c, j] for j in range(5) if j != c) for c in range(5)]
  np.testing.assert_allclose(attraction_repulsion_ratio(G), want, rtol=1e-12)
