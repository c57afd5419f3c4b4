"""Losses and class weights against independent float64 numpy references written from the spec's formulas
(ARB_AND_SEMISELF §2.1–2.2, §2.7, §3.1): values, and gradients w.r.t. the logits."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ltjax import losses

CIFAR10_001 = np.array([5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50])


def data(b=32, c=10, scale=3.0, seed=0):
  rng = np.random.RandomState(seed)
  return rng.randn(b, c) * scale, rng.randint(0, c, size=b)


def softmax(z):
  e = np.exp(z - z.max(1, keepdims=True))
  return e / e.sum(1, keepdims=True)


def ce_ref(z, y, w=None):
  ce = -np.log(softmax(z)[np.arange(len(y)), y])
  if w is None:
    return ce.mean()
  return (w[y] * ce).sum() / w[y].sum()


def arb_ref(z, y, n, red="mean"):
  """Naive form: clamp, w_ic = n_c/n_y, S_i = Σ_c w_ic e^{ẑ_ic}, ℓ_i = −log(e^{ẑ_iy}/S_i)."""
  zc = np.clip(z, -30, 30)
  out = []
  for i in range(len(y)):
    w = n / n[y[i]]
    s = np.sum(w * np.exp(zc[i]))
    out.append(-np.log(np.exp(zc[i, y[i]]) / s))
  out = np.array(out)
  return out.mean() if red == "mean" else out.sum()


def arb_grad_ref(z, y, n):
  """Spec §2.1: ∂ℓ_i/∂z_ic = [w_ic e^{ẑ_ic}/S_i − 1{c=y_i}]·1{|z_ic| ≤ 30}, mean over B."""
  zc = np.clip(z, -30, 30)
  g = np.zeros_like(z)
  for i in range(len(y)):
    w = n / n[y[i]]
    e = w * np.exp(zc[i])
    g[i] = e / e.sum()
    g[i, y[i]] -= 1
  return g * (np.abs(z) <= 30) / len(y)


def num_grad(f, z, eps=1e-6):
  g = np.zeros_like(z)
  for idx in np.ndindex(z.shape):
    zp, zm = z.copy(), z.copy()
    zp[idx] += eps
    zm[idx] -= eps
    g[idx] = (f(zp) - f(zm)) / (2 * eps)
  return g


def jgrad(fn, z):
  return np.asarray(jax.grad(lambda t: fn(t))(jnp.asarray(z, jnp.float32)))


@pytest.mark.parametrize("c", [10, 100])
def test_cross_entropy_plain_and_weighted(c):
  z, y = data(c=c)
  w = np.random.RandomState(1).rand(c) + 0.1
  np.testing.assert_allclose(float(losses.softmax_cross_entropy(z, y)), ce_ref(z, y), rtol=1e-5)
  np.testing.assert_allclose(float(losses.softmax_cross_entropy(z, y, w)), ce_ref(z, y, w), rtol=1e-5)
  g = (softmax(z) - np.eye(c)[y]) / len(y)
  np.testing.assert_allclose(jgrad(lambda t: losses.softmax_cross_entropy(t, y), z), g, atol=1e-6)
  np.testing.assert_allclose(jgrad(lambda t: losses.softmax_cross_entropy(t, y, w), z),
                             num_grad(lambda t: ce_ref(t, y, w), z), atol=1e-5)


@pytest.mark.parametrize("c", [10, 100])
def test_arb_loss_batch_counts_with_absent_classes_and_clamp(c):
  z, y = data(b=24, c=c, scale=15.0)  # many logits beyond ±30
  y[y == 3] = 0  # class 3 absent from the batch
  n = np.bincount(y, minlength=c).astype(float)
  assert (np.abs(z) > 30).any() and n[3] == 0
  for red in ("mean", "sum"):
    got = float(losses.arb_loss(z, y, n, reduction=red))
    np.testing.assert_allclose(got, arb_ref(z, y, n, red), rtol=1e-5)
  g = jgrad(lambda t: losses.arb_loss(t, y, n), z)
  assert np.all(np.isfinite(g))
  np.testing.assert_allclose(g, arb_grad_ref(z, y, n), atol=1e-6)
  # batch_class_counts is the count vector the trainer uses.
  np.testing.assert_array_equal(np.asarray(losses.batch_class_counts(jnp.asarray(y), c)), n)


def test_arb_with_global_counts_equals_balanced_softmax_without_clamping():
  z, y = data(scale=2.0)
  np.testing.assert_allclose(float(losses.arb_loss(z, y, CIFAR10_001)), arb_ref(z, y, CIFAR10_001), rtol=1e-5)
  np.testing.assert_allclose(float(losses.balanced_softmax_loss(z, y, CIFAR10_001)),
                             ce_ref(z + np.log(CIFAR10_001), y), rtol=1e-5)
  np.testing.assert_allclose(float(losses.arb_loss(z, y, CIFAR10_001)),
                             float(losses.balanced_softmax_loss(z, y, CIFAR10_001)), rtol=1e-5)


def test_arb_rejects_other_reductions():
  z, y = data()
  with pytest.raises(ValueError, match="reduction"):
    losses.arb_loss(z, y, CIFAR10_001, reduction="none")


def test_arb_focal_and_weighted_variants():
  z, y = data(scale=2.0)
  n = np.bincount(y, minlength=10).astype(float)
  present = n > 0

  def logp(i):
    w = np.where(present, n / n[y[i]], 0)
    return np.log(np.exp(z[i, y[i]]) / np.sum(w * np.exp(z[i])))

  lp = np.array([logp(i) for i in range(len(y))])
  focal = np.mean(-1.0 * (1 - np.exp(lp)) ** 2 * lp)
  np.testing.assert_allclose(float(losses.arb_focal_loss(z, y, n)), focal, rtol=1e-5)
  m_batch = len(y) / present.sum()
  np.testing.assert_allclose(float(losses.weighted_arb_loss(z, y, n, "batch")), np.mean(-m_batch / n[y] * lp),
                             rtol=1e-5)
  g = CIFAR10_001.astype(float)
  lpg = np.array([np.log(np.exp(z[i, y[i]]) / np.sum(g / g[y[i]] * np.exp(z[i]))) for i in range(len(y))])
  np.testing.assert_allclose(float(losses.weighted_arb_loss(z, y, g, "global")),
                             np.mean(-(g.sum() / 10) / g[y] * lpg), rtol=1e-5)


def test_focal_loss_keeps_the_official_weight_quirk():
  z, y = data()
  w = np.random.RandomState(2).rand(10) + 0.5
  ce = -np.log(softmax(z)[np.arange(len(y)), y])
  for weights, gamma in ((None, 1.0), (w, 1.0), (w, 2.0)):
    ell = ce if weights is None else weights[y] * ce
    ref = np.mean((1 - np.exp(-ell)) ** gamma * ell)
    np.testing.assert_allclose(float(losses.focal_loss(z, y, gamma, weights)), ref, rtol=1e-5)
  np.testing.assert_allclose(jgrad(lambda t: losses.focal_loss(t, y, 1.0, w), z),
                             num_grad(lambda t: np.mean((1 - np.exp(-w[y] * -np.log(softmax(t)[np.arange(len(y)), y])))
                                                        * w[y] * -np.log(softmax(t)[np.arange(len(y)), y])), z),
                             atol=1e-5)


def test_ldam_margins_and_loss():
  m = losses.ldam_margins(CIFAR10_001, 0.5)
  np.testing.assert_allclose(m, [0.158, 0.180, 0.204, 0.232, 0.264, 0.300, 0.341, 0.387, 0.440, 0.500], atol=6e-4)
  rng = np.random.RandomState(3)
  cos = np.tanh(rng.randn(16, 10))
  y = rng.randint(0, 10, 16)
  w = losses.effective_number_weights(CIFAR10_001)
  for weights in (None, w):
    ref = ce_ref(30 * (cos - np.eye(10)[y] * m[y][:, None]), y, weights)
    np.testing.assert_allclose(float(losses.ldam_loss(cos, y, m, 30.0, weights)), ref, rtol=1e-5)
  np.testing.assert_allclose(jgrad(lambda t: losses.ldam_loss(t, y, m, 30.0, w), cos),
                             num_grad(lambda t: ce_ref(30 * (t - np.eye(10)[y] * m[y][:, None]), y, w), cos),
                             atol=2e-4)


def test_class_balanced_weights_drw_and_resampling():
  w = losses.effective_number_weights(CIFAR10_001, 0.9999)
  np.testing.assert_allclose(w, [0.0506, 0.0769, 0.1211, 0.1950, 0.3188, 0.5246, 0.8683, 1.4426, 2.4092, 3.9927],
                             atol=6e-5)
  assert w.sum() == pytest.approx(10, rel=1e-5)
  np.testing.assert_array_equal(losses.drw_weights(CIFAR10_001, 159), np.ones(10, np.float32))
  np.testing.assert_allclose(losses.drw_weights(CIFAR10_001, 160), w)
  with pytest.raises(ValueError, match="DRW"):
    losses.drw_weights(CIFAR10_001, 320)
  labels = np.repeat(np.arange(10), CIFAR10_001)
  p = losses.resample_probabilities(labels, CIFAR10_001)
  r = (1 - 0.9999) / (1 - 0.9999 ** CIFAR10_001)
  np.testing.assert_allclose(p, r[labels] / r[labels].sum())


def test_label_aware_smoothing():
  counts = np.array([500, 200, 50, 10, 5])
  r = (counts - 5) / 495
  for shape, ref in [("concave", 0.1 + 0.3 * np.sin(np.pi * r / 2)), ("linear", 0.1 + 0.3 * r),
                     ("convex", 0.4 + 0.3 * np.sin(1.5 * np.pi + np.pi * r / 2)), ("exp", 0.1 + 0.3 * r ** 3)]:
    np.testing.assert_allclose(losses.las_epsilons(counts, 0.4, 0.1, shape, 3.0), ref, rtol=1e-5)
  z, y = data(c=5)
  eps = losses.las_epsilons(counts, 0.4, 0.1)
  logp = np.log(softmax(z))
  ref = np.mean((1 - eps[y]) * -logp[np.arange(len(y)), y] + eps[y] * -logp.mean(1))
  np.testing.assert_allclose(float(losses.label_aware_smoothing_loss(z, y, eps)), ref, rtol=1e-5)


def test_registry_binds_the_configured_constants():
  z, y = data(scale=2.0)
  cfg = ml_collections.ConfigDict(dict(reduction="mean", focal_gamma=2.0, ldam_max_m=0.5, ldam_s=30.0,
                                       arb_counts="global", arb_clamp=30.0))
  n = CIFAR10_001.astype(float)
  np.testing.assert_allclose(float(losses.make("arb", cfg, n)(z, y)), arb_ref(z, y, n), rtol=1e-5)
  cfg.arb_counts = "batch"
  y_other = (y + 1) % 10
  nb = np.bincount(y_other, minlength=10).astype(float)
  # ARB counts come from count_labels (the un-mixed labels), not from the labels scored.
  np.testing.assert_allclose(float(losses.make("arb", cfg, n)(z, y, count_labels=y_other)), arb_ref(z, y, nb),
                             rtol=1e-5)
  w = losses.effective_number_weights(n)
  np.testing.assert_allclose(float(losses.make("ce", cfg, n)(z, y, class_weights=w)), ce_ref(z, y, w), rtol=1e-5)
  np.testing.assert_allclose(float(losses.make("focal", cfg, n)(z, y)), float(losses.focal_loss(z, y, 2.0)))
  assert losses.REGISTRY["ce"].accepts_class_weights and not losses.REGISTRY["arb"].accepts_class_weights
  with pytest.raises(ValueError, match="known"):
    losses.make("nope", cfg, n)
