"""ltjax.losses against independent float64 numpy references written from the papers' formulas
(ARB `methods.py`; ARB/MiSLAS mixup (`train_stage1.py`), MiSLAS, imbalanced-semi-self `losses.py`): values and gradients
w.r.t. the logits, per-class vectors, registry, errors."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ltjax import losses

CIFAR10_001 = np.array([5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50])
CIFAR100_001 = np.array([int(500 * 0.01 ** (c / 99)) for c in range(100)])
RTOL = 1e-5


# ---------------------------------------------------------------- float64 numpy references (naive textbook forms)

def np_logsoftmax(z):
  m = z.max(1, keepdims=True)
  return z - m - np.log(np.exp(z - m).sum(1, keepdims=True))


def ref_ce(z, y, w=None):
  ce = -np_logsoftmax(z)[np.arange(len(y)), y]
  return ce.mean() if w is None else (w[y] * ce).sum() / w[y].sum()


def ref_focal(z, y, gamma, w=None):
  ell = -np_logsoftmax(z)[np.arange(len(y)), y]
  if w is not None:
    ell = w[y] * ell
  return np.mean((1 - np.exp(-ell)) ** gamma * ell)


def ref_ldam(z, y, m, s, w=None):
  zz = z.copy()
  zz[np.arange(len(y)), y] -= m[y]
  return ref_ce(s * zz, y, w)


def ref_arb_terms(z, y, n):
  """Direct form: ẑ = clip, w_ic = n_c/n_y, S_i = Σ_c w_ic e^{ẑ_ic}, p_i = e^{ẑ_iy}/S_i."""
  zh = np.minimum(np.maximum(z, -30.0), 30.0)
  w = n[None, :] / n[y][:, None]
  S = (w * np.exp(zh)).sum(1)
  p = np.exp(zh[np.arange(len(y)), y]) / S
  return zh, w, S, p


def ref_arb(z, y, n, reduction="mean"):
  l = -np.log(ref_arb_terms(z, y, n)[3])
  return l.mean() if reduction == "mean" else l.sum()


def ref_arb_grad(z, y, n, reduction="mean"):
  zh, w, S, _ = ref_arb_terms(z, y, n)
  g = w * np.exp(zh) / S[:, None]
  g[np.arange(len(y)), y] -= 1.0
  g *= (np.abs(z) <= 30.0)
  return g / len(y) if reduction == "mean" else g


def ref_arb_focal(z, y, n, alpha, gamma, reduction="mean"):
  p = ref_arb_terms(z, y, n)[3]
  l = -alpha * (1 - p) ** gamma * np.log(p)
  return l.mean() if reduction == "mean" else l.sum()


def ref_warb(z, y, n, mode, reduction="mean"):
  p = ref_arb_terms(z, y, n)[3]
  mbar = len(y) / np.count_nonzero(n) if mode == "batch" else n.sum() / len(n)
  l = -(mbar / n[y]) * np.log(p)
  return l.mean() if reduction == "mean" else l.sum()


def ref_las(z, y, eps):
  lp = np_logsoftmax(z)
  e = eps[y]
  return np.mean((1 - e) * (-lp[np.arange(len(y)), y]) + e * (-lp).mean(1))


def ref_counts(y, c):
  return np.bincount(y, minlength=c).astype(np.float64)


def fd_grad(f, z, h=1e-6):
  g = np.zeros_like(z)
  for idx in np.ndindex(*z.shape):
    zp, zm = z.copy(), z.copy()
    zp[idx] += h
    zm[idx] -= h
    g[idx] = (f(zp) - f(zm)) / (2 * h)
  return g


def data(b=16, c=10, scale=3.0, seed=0):
  rng = np.random.RandomState(seed)
  return rng.randn(b, c) * scale, rng.randint(0, c, size=b)


def jval_grad(fn, z, *args, **kw):
  v, g = jax.value_and_grad(lambda zz: fn(zz, *args, **kw))(jnp.asarray(z, jnp.float32))
  return float(v), np.asarray(g, np.float64)


def assert_close(a, b, rtol=RTOL, atol=1e-7):
  np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- CE

@pytest.mark.parametrize("c", [10, 100])
@pytest.mark.parametrize("weighted", [False, True])
def test_ce_value_and_grad(c, weighted):
  z, y = data(c=c)
  w = losses.effective_number_weights(CIFAR10_001 if c == 10 else CIFAR100_001).astype(np.float64) if weighted \
      else None
  v, g = jval_grad(losses.softmax_cross_entropy, z, jnp.asarray(y), None if w is None else jnp.asarray(w))
  assert_close(v, ref_ce(z, y, w))
  # analytic: (softmax − onehot) · weight_i / normaliser
  p = np.exp(np_logsoftmax(z))
  p[np.arange(len(y)), y] -= 1
  scale = np.full(len(y), 1 / len(y)) if w is None else w[y] / w[y].sum()
  assert_close(g, p * scale[:, None], atol=1e-7)


def test_weighted_ce_is_weight_normalised_not_plain_mean():
  z, y = data()
  w = np.arange(1.0, 11.0)
  v = float(losses.softmax_cross_entropy(jnp.asarray(z, jnp.float32), jnp.asarray(y), jnp.asarray(w)))
  ce = -np_logsoftmax(z)[np.arange(len(y)), y]
  assert_close(v, (w[y] * ce).sum() / w[y].sum())
  assert abs(v - (w[y] * ce).mean()) > 1e-2
  # scaling all weights leaves a weight-normalised mean unchanged
  v2 = float(losses.softmax_cross_entropy(jnp.asarray(z, jnp.float32), jnp.asarray(y), jnp.asarray(7 * w)))
  assert_close(v2, v)


def test_ce_bf16_is_upcast():
  z, y = data()
  zb = jnp.asarray(z, jnp.bfloat16)
  v = losses.softmax_cross_entropy(zb, jnp.asarray(y))
  assert v.dtype == jnp.float32
  assert_close(float(v), ref_ce(np.asarray(zb.astype(jnp.float32), np.float64), y))


# ---------------------------------------------------------------- focal (SS quirk)

def counts_for(c):
  return CIFAR10_001 if c == 10 else CIFAR100_001


@pytest.mark.parametrize("c", [10, 100])
@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_focal_value_and_grad(c, gamma, weighted):
  z, y = data(c=c, b=8 if c == 100 else 16)
  w = losses.effective_number_weights(counts_for(c)).astype(np.float64) if weighted else None
  jw = None if w is None else jnp.asarray(w)
  v, g = jval_grad(losses.focal_loss, z, jnp.asarray(y), gamma, jw)
  assert_close(v, ref_focal(z, y, gamma, w))
  assert_close(g, fd_grad(lambda zz: ref_focal(zz, y, gamma, w), z), rtol=1e-4, atol=1e-6)


def test_focal_quirk_weights_inside_exponent():
  z, y = data()
  w = np.linspace(0.2, 3.0, 10)
  v = float(losses.focal_loss(jnp.asarray(z, jnp.float32), jnp.asarray(y), 1.0, jnp.asarray(w)))
  ce = -np_logsoftmax(z)[np.arange(len(y)), y]
  true_p = np.exp(-ce)
  naive = np.mean(w[y] * (1 - true_p) * ce)  # weights outside, true probability: NOT what SS does
  assert_close(v, np.mean((1 - np.exp(-w[y] * ce)) * w[y] * ce))
  assert abs(v - naive) > 1e-3
  # γ = 0: plain (not weight-normalised) mean of w_y·CE
  v0 = float(losses.focal_loss(jnp.asarray(z, jnp.float32), jnp.asarray(y), 0.0, jnp.asarray(w)))
  assert_close(v0, np.mean(w[y] * ce))


# ---------------------------------------------------------------- LDAM

def test_ldam_margins_spec_vector():
  m = losses.ldam_margins(CIFAR10_001, 0.5)
  assert m.dtype == np.float32
  np.testing.assert_allclose(m, [0.158, 0.180, 0.204, 0.232, 0.264, 0.300, 0.341, 0.387, 0.440, 0.500], atol=6e-4)
  assert m.max() == np.float32(0.5)
  ratio = (CIFAR10_001 / CIFAR10_001[0]) ** -0.25
  np.testing.assert_allclose(m / m[0], ratio, rtol=1e-6)


@pytest.mark.parametrize("c", [10, 100])
@pytest.mark.parametrize("weighted", [False, True])
def test_ldam_value_and_grad(c, weighted):
  rng = np.random.RandomState(3)
  z = np.tanh(rng.randn(16, c))  # cosines
  y = rng.randint(0, c, 16)
  m = losses.ldam_margins(counts_for(c)).astype(np.float64)
  w = losses.effective_number_weights(counts_for(c)).astype(np.float64) if weighted else None
  v, g = jval_grad(losses.ldam_loss, z, jnp.asarray(y), jnp.asarray(m, jnp.float32), 30.0,
                   None if w is None else jnp.asarray(w))
  assert_close(v, ref_ldam(z, y, m, 30.0, w))
  assert_close(g, fd_grad(lambda zz: ref_ldam(zz, y, m, 30.0, w), z), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- balanced softmax, LAS

@pytest.mark.parametrize("c", [10, 100])
def test_balanced_softmax_matches_ce_on_shifted_logits_and_global_arb(c):
  z, y = data(c=c, b=8)
  n = counts_for(c).astype(np.float64)
  v, g = jval_grad(losses.balanced_softmax_loss, z, jnp.asarray(y), jnp.asarray(n))
  assert_close(v, ref_ce(z + np.log(n), y))
  assert_close(v, ref_arb(z, y, n))  # no logit clamped at scale 3
  assert_close(g, fd_grad(lambda zz: ref_ce(zz + np.log(n), y), z), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("shape", ["concave", "linear", "convex", "exp"])
def test_las_epsilons_formulas(shape):
  n = CIFAR10_001.astype(np.float64)
  h, t, p = 0.3, 0.05, 3.0
  r = (n - n.min()) / (n.max() - n.min())
  want = {"concave": t + (h - t) * np.sin(np.pi * r / 2), "linear": t + (h - t) * r,
          "convex": h + (h - t) * np.sin(1.5 * np.pi + np.pi * r / 2), "exp": t + (h - t) * r ** p}[shape]
  e = losses.las_epsilons(CIFAR10_001, h, t, shape, p)
  assert e.dtype == np.float32
  np.testing.assert_allclose(e, want, rtol=1e-6, atol=1e-7)
  # head class gets h, tail class gets t for all shapes
  np.testing.assert_allclose([e[0], e[-1]], [h, t], atol=1e-6)


def test_las_epsilons_bad_shape_and_degenerate_counts():
  with pytest.raises(ValueError, match="shape"):
    losses.las_epsilons(CIFAR10_001, 0.3, 0.0, "wiggly")
  with pytest.raises(ValueError, match="power"):  # MiSLAS leaves ε undefined for 'exp' without a power
    losses.las_epsilons(CIFAR10_001, 0.3, 0.0, "exp")
  np.testing.assert_allclose(losses.las_epsilons([5, 5, 5], 0.3, 0.1, "convex"), 0.1, atol=1e-7)


@pytest.mark.parametrize("c", [10, 100])
def test_las_loss_value_and_grad(c):
  z, y = data(c=c, b=8)
  counts = CIFAR10_001 if c == 10 else CIFAR100_001
  eps = losses.las_epsilons(counts, 0.4, 0.1, "concave").astype(np.float64)
  v, g = jval_grad(losses.label_aware_smoothing_loss, z, jnp.asarray(y), jnp.asarray(eps, jnp.float32))
  assert_close(v, ref_las(z, y, eps))
  assert_close(g, fd_grad(lambda zz: ref_las(zz, y, eps), z), rtol=1e-4, atol=1e-6)
  # ε = 0 reduces to CE
  v0 = float(losses.label_aware_smoothing_loss(jnp.asarray(z, jnp.float32), jnp.asarray(y), jnp.zeros(c)))
  assert_close(v0, ref_ce(z, y))


# ---------------------------------------------------------------- ARB

def test_batch_class_counts():
  y = np.array([0, 3, 3, 7, 0, 0])
  n = losses.batch_class_counts(jnp.asarray(y), 10)
  assert n.dtype == jnp.float32 and n.shape == (10,)
  np.testing.assert_array_equal(np.asarray(n), ref_counts(y, 10))


@pytest.mark.slow
@pytest.mark.parametrize("c", [10, 100])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("counts", ["batch", "global"])
def test_arb_value_and_analytic_grad(c, reduction, counts):
  z, y = data(b=24, c=c, scale=4.0, seed=c)
  if counts == "batch":
    n = ref_counts(y, c)
    assert (n == 0).any()  # absent classes covered
  else:
    n = (CIFAR10_001 if c == 10 else CIFAR100_001).astype(np.float64)
  v, g = jval_grad(losses.arb_loss, z, jnp.asarray(y), jnp.asarray(n, jnp.float32), 30.0, reduction)
  want = ref_arb(z, y, n, reduction)
  assert_close(v, want)
  assert_close(g, ref_arb_grad(z, y, n, reduction), atol=1e-6)
  assert np.isfinite(g).all()


def test_arb_clamp_beyond_30_and_inclusive_boundary_gradient():
  rng = np.random.RandomState(5)
  z = rng.randn(8, 10) * 20.0
  z[0, :4] = [45.0, -45.0, 30.0, -30.0]  # beyond, and exactly on, the clamp bounds
  z[1, :2] = [100.0, -100.0]
  z[2] = [-30.0, -30.5, -29.5, -31.0, -30.0, -29.0, -32.0, -30.2, -30.0, -29.9]  # −30 entries that matter
  y = rng.randint(0, 10, 8)
  y[0], y[1] = 2, 0  # label on the +30 boundary; a clamped label logit
  assert (np.abs(z) > 30).sum() >= 4
  for n in (ref_counts(y, 10), CIFAR10_001.astype(np.float64)):
    v, g = jval_grad(losses.arb_loss, z, jnp.asarray(y), jnp.asarray(n, jnp.float32))
    assert_close(v, ref_arb(z, y, n))
    ga = ref_arb_grad(z, y, n)
    assert_close(g, ga, atol=1e-6)
    assert np.all(g[np.abs(z) > 30] == 0.0)
    # full (not halved, not zeroed) gradient exactly at ±30 (global counts: every class present)
    for i, j in ((0, 2), (2, 0), (2, 4), (2, 8)) if (n > 0).all() else ():
      assert abs(ga[i, j]) > 1e-4 and abs(g[i, j] - ga[i, j]) < 1e-4 * abs(ga[i, j])
    # clamping changes the value vs. an unclamped balanced softmax
    assert abs(v - ref_ce(z + np.log(np.where(n > 0, n, 1e-300)), y)) > 1e-3


def test_arb_absent_classes_contribute_nothing_and_no_nan():
  z, y = data(b=6, c=10)
  y = np.array([0, 0, 1, 1, 1, 4])
  n = ref_counts(y, 10)
  z_big = z.copy()
  z_big[:, [2, 3, 5, 6, 7, 8, 9]] = 1e4  # huge logits on absent classes change nothing
  v1, g1 = jval_grad(losses.arb_loss, z, jnp.asarray(y), jnp.asarray(n, jnp.float32))
  v2, g2 = jval_grad(losses.arb_loss, z_big, jnp.asarray(y), jnp.asarray(n, jnp.float32))
  assert_close(v1, v2)
  assert np.isfinite(g1).all() and np.isfinite(g2).all()
  assert np.all(g1[:, n == 0] == 0.0)
  # equals CE restricted to the present classes, with logits shifted by log n
  present = n > 0
  remap = np.cumsum(present) - 1
  assert_close(v1, ref_ce(z[:, present] + np.log(n[present]), remap[y]))


def test_arb_jit_and_reduction_errors():
  z, y = data()
  n = ref_counts(y, 10)
  f = jax.jit(lambda zz, yy: losses.arb_loss(zz, yy, losses.batch_class_counts(yy, 10)))
  assert_close(float(f(jnp.asarray(z, jnp.float32), jnp.asarray(y))), ref_arb(z, y, n))
  for fn in (losses.arb_loss, losses.arb_focal_loss):
    with pytest.raises(ValueError, match="reduction"):
      fn(jnp.asarray(z), jnp.asarray(y), jnp.asarray(n), reduction="none")
  with pytest.raises(ValueError, match="reduction"):
    losses.weighted_arb_loss(jnp.asarray(z), jnp.asarray(y), jnp.asarray(n), "batch", reduction="avg")
  with pytest.raises(ValueError, match="mode"):
    losses.weighted_arb_loss(jnp.asarray(z), jnp.asarray(y), jnp.asarray(n), "local")


@pytest.mark.parametrize("c", [10, 100])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_arb_focal_value_and_grad(c, reduction):
  z, y = data(b=8, c=c, scale=35.0 if c == 10 else 3.0, seed=7)
  n = ref_counts(y, c)
  a, gm = 0.7, 2.0
  v, g = jval_grad(losses.arb_focal_loss, z, jnp.asarray(y), jnp.asarray(n, jnp.float32), a, gm, 30.0, reduction)
  assert_close(v, ref_arb_focal(z, y, n, a, gm, reduction))
  assert_close(g, fd_grad(lambda zz: ref_arb_focal(zz, y, n, a, gm, reduction), z), rtol=1e-4, atol=1e-6)
  # γ = 0, α = 1 is plain ARB
  v0 = float(losses.arb_focal_loss(jnp.asarray(z, jnp.float32), jnp.asarray(y), jnp.asarray(n), 1.0, 0.0,
                                   reduction=reduction))
  assert_close(v0, ref_arb(z, y, n, reduction))


@pytest.mark.slow
@pytest.mark.parametrize("c", [10, 100])
@pytest.mark.parametrize("mode", ["batch", "global"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_weighted_arb_value_and_grad(c, mode, reduction):
  z, y = data(b=12, c=c, seed=11)
  n = ref_counts(y, c) if mode == "batch" else counts_for(c).astype(np.float64)
  v, g = jval_grad(losses.weighted_arb_loss, z, jnp.asarray(y), jnp.asarray(n, jnp.float32), mode, 30.0, reduction)
  assert_close(v, ref_warb(z, y, n, mode, reduction))
  assert_close(g, fd_grad(lambda zz: ref_warb(zz, y, n, mode, reduction), z), rtol=1e-4, atol=1e-6)


def test_weighted_arb_batch_mbar():
  z = np.zeros((4, 5))
  y = np.array([0, 0, 0, 3])  # B=4, 2 present classes → m̄ = 2; ω = [2/3, 2/3, 2/3, 2]
  n = ref_counts(y, 5)
  p = ref_arb_terms(z, y, n)[3]  # all logits equal → p_i = n_y / B
  np.testing.assert_allclose(p, [0.75, 0.75, 0.75, 0.25])
  v = float(losses.weighted_arb_loss(jnp.asarray(z), jnp.asarray(y), jnp.asarray(n), "batch"))
  assert_close(v, np.mean(np.array([2 / 3] * 3 + [2.0]) * -np.log(p)))


# ---------------------------------------------------------------- mixup

def test_mixup_composition_ce_and_arb():
  z, y = data(b=10)
  perm = np.random.RandomState(1).permutation(10)
  lam = 0.3
  v = float(losses.mixup_loss(losses.softmax_cross_entropy, jnp.asarray(z, jnp.float32), jnp.asarray(y),
                              jnp.asarray(y[perm]), lam))
  assert_close(v, lam * ref_ce(z, y) + (1 - lam) * ref_ce(z, y[perm]))
  n = ref_counts(y, 10)
  fn = losses.make("arb", ml_collections.ConfigDict({"arb_counts": "batch"}), CIFAR10_001)
  v = float(losses.mixup_loss(fn, jnp.asarray(z, jnp.float32), jnp.asarray(y), jnp.asarray(y[perm]), lam,
                              count_labels=jnp.asarray(y)))
  assert_close(v, lam * ref_arb(z, y, n) + (1 - lam) * ref_arb(z, y[perm], n))


# ---------------------------------------------------------------- weights

def test_effective_number_weights_spec_vector():
  w = losses.effective_number_weights(CIFAR10_001, 0.9999)
  np.testing.assert_allclose(w, [0.0506, 0.0769, 0.1211, 0.1950, 0.3188, 0.5246, 0.8683, 1.4426, 2.4092, 3.9927],
                             atol=6e-5)
  assert abs(w.sum() - 10) < 1e-5
  b = 0.9999
  r = (1 - b) / (1 - b ** CIFAR10_001.astype(np.float64))
  np.testing.assert_allclose(w, 10 * r / r.sum(), rtol=1e-6)


@pytest.mark.parametrize("c", [3, 7, 10, 49, 100])
def test_effective_number_weights_beta0_exact_ones(c):
  counts = np.arange(1, c + 1) * 13
  assert np.array_equal(losses.effective_number_weights(counts, 0.0), np.ones(c, np.float32))


def test_drw_switches_at_160_and_errors():
  for e in (0, 1, 100, 159):
    assert np.array_equal(losses.drw_weights(CIFAR10_001, e), np.ones(10, np.float32))
  cb = losses.effective_number_weights(CIFAR10_001, 0.9999)
  for e in (160, 199, 319):
    np.testing.assert_array_equal(losses.drw_weights(CIFAR10_001, e), cb)
  np.testing.assert_array_equal(losses.drw_weights(CIFAR10_001, 20, drw_epoch=20, beta=0.999),
                                losses.effective_number_weights(CIFAR10_001, 0.999))
  for e in (320, 400, -1):
    with pytest.raises(ValueError, match="DRW"):
      losses.drw_weights(CIFAR10_001, e)


def test_resample_probabilities():
  labels = np.repeat(np.arange(10), CIFAR10_001)
  p = losses.resample_probabilities(labels, CIFAR10_001)
  assert p.dtype == np.float64 and p.shape == (CIFAR10_001.sum(),)
  assert abs(p.sum() - 1.0) < 1e-12
  b = 0.9999
  r = (1 - b) / (1 - b ** CIFAR10_001.astype(np.float64))
  np.testing.assert_allclose(p, r[labels] / r[labels].sum(), rtol=1e-12)
  # ∝ r, not ∝ 1/n: class masses are n_c r_c / Σ n r, which are not uniform
  mass = np.bincount(labels, weights=p)
  np.testing.assert_allclose(mass, CIFAR10_001 * r / (CIFAR10_001 * r).sum(), rtol=1e-10)
  assert mass.max() / mass.min() > 1.2  # 1/n would give exactly uniform masses


# ---------------------------------------------------------------- registry

def _cfg(**kw):
  base = dict(reduction="mean", focal_gamma=1.0, ldam_max_m=0.5, ldam_s=30.0, arb_counts="batch", arb_clamp=30.0,
              arb_focal_alpha=1.0, arb_focal_gamma=2.0, las_head=0.3, las_tail=0.05, las_shape="linear",
              las_power=3.0)
  base.update(kw)
  return ml_collections.ConfigDict(base)


def test_registry_names_and_flags():
  assert isinstance(losses.REGISTRY, dict)
  published = {"ce", "focal", "ldam", "balanced_softmax", "arb", "arb_focal", "warb", "las"}
  assert published <= set(losses.REGISTRY)  # and whatever other loss modules register (e.g. logit_adjust)
  for name in published:
    assert getattr(losses.REGISTRY[name], "accepts_class_weights") is (name in ("ce", "focal", "ldam"))
  with pytest.raises(ValueError, match="known"):
    losses.make("nope", _cfg(), CIFAR10_001)
  with pytest.raises(ValueError, match="reduction"):
    losses.make("arb", _cfg(reduction="none"), CIFAR10_001)
  with pytest.raises(ValueError, match="arb_counts"):
    losses.make("warb", _cfg(arb_counts="local"), CIFAR10_001)


def test_registry_defaults_without_fields():
  z, y = data()
  fn = losses.make("ldam", ml_collections.ConfigDict(), CIFAR10_001)
  zc = np.tanh(z)
  m = losses.ldam_margins(CIFAR10_001, 0.5).astype(np.float64)
  assert_close(float(fn(jnp.asarray(zc, jnp.float32), jnp.asarray(y))), ref_ldam(zc, y, m, 30.0))
  fn = losses.make("focal", ml_collections.ConfigDict(), CIFAR10_001)
  assert_close(float(fn(jnp.asarray(z, jnp.float32), jnp.asarray(y))), ref_focal(z, y, 1.0))


@pytest.mark.parametrize("arb_counts", ["batch", "global"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_registry_factories_equal_direct_functions(arb_counts, reduction):
  z, y = data(b=16, c=10, scale=2.0, seed=21)
  cfg = _cfg(arb_counts=arb_counts, reduction=reduction, focal_gamma=2.0, ldam_max_m=0.4, ldam_s=16.0,
             arb_focal_alpha=0.5, arb_focal_gamma=1.5)
  jz, jy = jnp.asarray(z, jnp.float32), jnp.asarray(y)
  cw = jnp.asarray(losses.effective_number_weights(CIFAR10_001))
  # count labels differ from labels (as under mixup): every label stays present, but with other counts
  u = np.unique(y)
  y_other = np.concatenate([u, np.full(len(y) - len(u), u[0])])
  assert not np.array_equal(ref_counts(y_other, 10), ref_counts(y, 10))
  n_batch = losses.batch_class_counts(jnp.asarray(y_other), 10)
  n = n_batch if arb_counts == "batch" else jnp.asarray(CIFAR10_001, jnp.float32)
  margins = jnp.asarray(losses.ldam_margins(CIFAR10_001, 0.4))
  eps = jnp.asarray(losses.las_epsilons(CIFAR10_001, 0.3, 0.05, "linear"))
  cases = {
      "ce": (dict(class_weights=cw), losses.softmax_cross_entropy(jz, jy, cw)),
      "focal": (dict(class_weights=cw), losses.focal_loss(jz, jy, 2.0, cw)),
      "ldam": (dict(class_weights=cw), losses.ldam_loss(jz / 10, jy, margins, 16.0, cw)),
      "balanced_softmax": ({}, losses.balanced_softmax_loss(jz, jy, jnp.asarray(CIFAR10_001, jnp.float32))),
      "arb": (dict(count_labels=jnp.asarray(y_other)), losses.arb_loss(jz, jy, n, 30.0, reduction)),
      "arb_focal": (dict(count_labels=jnp.asarray(y_other)),
                    losses.arb_focal_loss(jz, jy, n, 0.5, 1.5, 30.0, reduction)),
      "warb": (dict(count_labels=jnp.asarray(y_other)),
               losses.weighted_arb_loss(jz, jy, n, arb_counts, 30.0, reduction)),
      "las": ({}, losses.label_aware_smoothing_loss(jz, jy, eps)),
  }
  for name, (kw, want) in cases.items():
    fn = losses.make(name, cfg, CIFAR10_001)
    got = jax.jit(lambda a, b, fn=fn, kw=kw: fn(a / 10 if name == "ldam" else a, b, **kw))(jz, jy)
    assert_close(float(got), float(want))
  # and against the float64 references, with the counts of count_labels (not of labels) in batch mode
  n_ref = ref_counts(y_other, 10) if arb_counts == "batch" else CIFAR10_001.astype(np.float64)
  kw = dict(count_labels=jnp.asarray(y_other))
  assert_close(float(losses.make("arb", cfg, CIFAR10_001)(jz, jy, **kw)), ref_arb(z, y, n_ref, reduction))
  assert_close(float(losses.make("warb", cfg, CIFAR10_001)(jz, jy, **kw)), ref_warb(z, y, n_ref, arb_counts, reduction))
  assert_close(float(losses.make("arb_focal", cfg, CIFAR10_001)(jz, jy, **kw)),
               ref_arb_focal(z, y, n_ref, 0.5, 1.5, reduction))
  # count_labels defaults to labels
  fn = losses.make("arb", cfg, CIFAR10_001)
  n_self = losses.batch_class_counts(jy, 10) if arb_counts == "batch" else jnp.asarray(CIFAR10_001, jnp.float32)
  assert_close(float(fn(jz, jy)), float(losses.arb_loss(jz, jy, n_self, 30.0, reduction)))


# ---------------------------------------------------------------- edge cases, dtypes, guards

def test_clamp_logits_gradient_is_torch_clamp_inclusive():
  z = jnp.asarray([-45.0, -30.0, -29.999, 0.0, 29.999, 30.0, 45.0], jnp.float32)
  v, g = jax.value_and_grad(lambda t: jnp.sum(losses.clamp_logits(t) * jnp.arange(1.0, 8.0)))(z)
  np.testing.assert_array_equal(np.asarray(g), [0, 2, 3, 4, 5, 6, 0])  # 1 on [−30, 30] inclusive, 0 outside
  np.testing.assert_array_equal(np.asarray(losses.clamp_logits(z)), np.clip(np.asarray(z), -30, 30))


def test_arb_bf16_is_upcast():
  z, y = data(scale=4.0)
  zb = jnp.asarray(z, jnp.bfloat16)
  n = ref_counts(y, 10)
  v = losses.arb_loss(zb, jnp.asarray(y), jnp.asarray(n))
  assert v.dtype == jnp.float32
  assert_close(float(v), ref_arb(np.asarray(zb.astype(jnp.float32), np.float64), y, n))


@pytest.mark.slow
def test_arb_only_absent_class_logits_extreme_gives_finite_gradient():
  # absent classes at ±inf-like values and at exactly the clamp: no NaN anywhere
  y = np.array([1, 1, 2])
  z = np.zeros((3, 5))
  z[:, 0], z[:, 3], z[:, 4] = 1e30, -1e30, 30.0
  v, g = jval_grad(losses.arb_loss, z, jnp.asarray(y), losses.batch_class_counts(jnp.asarray(y), 5), 30.0, "sum")
  assert np.isfinite(v) and np.isfinite(g).all()
  assert_close(v, ref_arb(z, y, ref_counts(y, 5), "sum"))
  assert np.all(g[:, [0, 3, 4]] == 0)


def test_balanced_softmax_zero_count_class_drops_out():
  z, y = data(b=6, c=5)
  y = np.array([0, 1, 1, 2, 4, 4])
  n = np.array([10.0, 5.0, 2.0, 0.0, 1.0])
  v, g = jval_grad(losses.balanced_softmax_loss, z, jnp.asarray(y), jnp.asarray(n, jnp.float32))
  keep = n > 0
  assert_close(v, ref_ce(z[:, keep] + np.log(n[keep]), np.cumsum(keep)[y] - 1))
  assert np.isfinite(g).all() and np.all(g[:, 3] == 0)


def test_weights_reject_zero_or_malformed_counts():
  for fn in (losses.effective_number_weights, losses.ldam_margins):
    with pytest.raises(ValueError, match="positive count"):
      fn(np.array([10, 0, 3]))
    with pytest.raises(ValueError, match="1-D"):
      fn(np.ones((2, 3)))
  with pytest.raises(ValueError, match="positive count"):
    losses.resample_probabilities(np.array([0, 1]), np.array([4, 0]))


def test_las_lives_in_smoothing_module():
  from ltjax.losses import smoothing
  assert losses.label_aware_smoothing_loss is smoothing.label_aware_smoothing_loss


def test_non_weight_losses_refuse_class_weights():
  z, y = data()
  w = jnp.ones(10)
  for name, f in losses.REGISTRY.items():
    fn = losses.make(name, ml_collections.ConfigDict({"las_power": 3.0}), CIFAR10_001)
    assert fn.accepts_class_weights is f.accepts_class_weights
    zz = jnp.asarray(np.tanh(z) if name == "ldam" else z, jnp.float32)
    base = float(fn(zz, jnp.asarray(y)))
    if f.accepts_class_weights:
      assert_close(float(fn(zz, jnp.asarray(y), class_weights=w)), base)  # unit weights change nothing
    else:
      with pytest.raises(ValueError, match="no class weights"):
        fn(zz, jnp.asarray(y), class_weights=w)


def test_registry_las_power_and_exp_shape():
  z, y = data()
  eps = losses.las_epsilons(CIFAR10_001, 0.3, 0.0, "exp", 2.0).astype(np.float64)
  fn = losses.make("las", ml_collections.ConfigDict(dict(las_head=0.3, las_tail=0.0, las_shape="exp",
                                                         las_power=2.0)), CIFAR10_001)
  assert_close(float(fn(jnp.asarray(z, jnp.float32), jnp.asarray(y))), ref_las(z, y, eps))
  with pytest.raises(ValueError, match="power"):
    losses.make("las", ml_collections.ConfigDict(dict(las_shape="exp", las_power=None)), CIFAR10_001)
  # defaults: head 0.4, tail 0.1, concave
  fn = losses.make("las", ml_collections.ConfigDict(), CIFAR10_001)
  eps = losses.las_epsilons(CIFAR10_001, 0.4, 0.1, "concave").astype(np.float64)
  assert_close(float(fn(jnp.asarray(z, jnp.float32), jnp.asarray(y))), ref_las(z, y, eps))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ce", "focal", "ldam", "balanced_softmax", "arb", "arb_focal", "warb", "las",
                                  "logit_adjust"])
def test_registered_losses_pass_jax_check_grads(name):
  """Every registered loss's gradient against finite differences (jax.test_util.check_grads, as optax's loss tests),
  first and second order, forward and reverse mode, in float32 with matching tolerances."""
  from jax.test_util import check_grads
  z, y = data(b=6, c=10, scale=1.0, seed=3)
  z = np.tanh(z) if name == "ldam" else z  # cosines
  fn = losses.make(name, ml_collections.ConfigDict({"las_power": 3.0, "arb_clamp": 30.0}), CIFAR10_001)
  yy = jnp.asarray(y)
  check_grads(lambda x: fn(x, yy), (jnp.asarray(z, jnp.float32),), order=2, modes=("fwd", "rev"), atol=5e-2,
              rtol=5e-2, eps=1e-2)
