"""SBCL subclasses, clustering, class temperatures and contrastive losses (SBCL's subclasses, SBCL `SupConLoss`, SBCL
`SupConLoss_rank`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ltjax.losses import contrastive
from ltjax.methods.sbcl import clustering


def _lt_counts(n_max, C, r):
  return np.floor(n_max * r ** (np.arange(C) / (C - 1))).astype(np.int64)


def _ari(a, b):
  """Adjusted Rand index of two labelings (numpy)."""
  _, ai = np.unique(a, return_inverse=True)
  _, bi = np.unique(b, return_inverse=True)
  cont = np.zeros((ai.max() + 1, bi.max() + 1))
  np.add.at(cont, (ai, bi), 1)
  comb = lambda v: (v * (v - 1) / 2).sum()
  sij, sa, sb, n = comb(cont), comb(cont.sum(1)), comb(cont.sum(0)), comb(np.array([len(a)]))
  exp = sa * sb / n
  return (sij - exp) / (0.5 * (sa + sb) - exp)


def _mesh(n):
  return jax.sharding.Mesh(np.array(jax.devices()[:n]), ("data",))


def _unit(x):
  return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


# ------------------------------------------------------------------ SBCL `SimCLR/main.py`


def test_subclass_counts_cifar():
  m10 = clustering.subclass_counts(_lt_counts(5000, 10, 0.01))
  assert m10.tolist() == [100, 59, 35, 21, 12, 7, 4, 2, 1, 1] and m10.sum() == 242
  m100 = clustering.subclass_counts(_lt_counts(500, 100, 0.01))
  assert m100[:10].tolist() == [50, 47, 45, 43, 41, 39, 37, 36, 34, 32]
  assert (m100[-30:] == 1).all() and m100[-31] > 1 and m100.sum() == 1051
  assert clustering.subclass_counts(_lt_counts(500, 100, 0.02)).sum() == 1219
  assert clustering.subclass_counts(_lt_counts(500, 100, 0.1)).sum() == 346
  assert clustering.subclass_counts([1280, 5], cluster=20).tolist() == [64, 1]   # ImageNet-LT example


def test_subclass_count_errors():
  with pytest.raises(ValueError, match="at least one sample"):
    clustering.subclass_counts([10, 0])
  with pytest.raises(ValueError, match="class 1 asks for 5 subclasses but has only 3"):
    clustering.check_subclass_counts([10, 3], [2, 5])
  x = _unit(np.random.default_rng(0).normal(size=(13, 4)))
  with pytest.raises(ValueError, match="class 0 asks for 4"):
    clustering.cluster(x, np.array([0] * 3 + [1] * 10), (4, 2), jax.random.key(0))


# ------------------------------------------------------------------ SBCL `SimCLR/main.py::cluster`


def _numpy_kmeans(x, labels, m, init_idx, tol=1e-3, iter_limit=35):
  """Official per-class loop (kmeans_gpu.kmeans, cosine) in float32 numpy, asserting no empty cluster occurs."""
  out = np.full(len(labels), -1)
  sub_class, offsets = clustering.subclass_layout(m)
  for c, mc in enumerate(m):
    idx = np.nonzero(labels == c)[0]
    if mc == 1:
      out[idx] = offsets[c]
      continue
    X = x[idx]
    mu = x[init_idx[offsets[c]:offsets[c] + mc]].copy()
    it = 0
    while True:
      cos = X @ (mu / np.linalg.norm(mu, axis=1, keepdims=True)).T
      a = np.argmin(1 - cos, axis=1)
      pre = mu.copy()
      for k in range(mc):
        assert (a == k).any(), "empty cluster in reference"
        mu[k] = X[a == k].mean(0)
      shift = np.sqrt(((mu - pre) ** 2).sum(1)).sum()
      it += 1
      if shift ** 2 < tol or it >= iter_limit:
        break
    out[idx] = offsets[c] + a
  return out


def _separable(rng, n_per_sub, m, D=16, noise=0.05):
  xs, ys, truth = [], [], []
  g = 0
  for c, mc in enumerate(m):
    for _ in range(mc):
      centre = rng.normal(size=D)
      xs.append(centre + noise * np.linalg.norm(centre) * rng.normal(size=(n_per_sub, D)))
      ys += [c] * n_per_sub
      truth += [g] * n_per_sub
      g += 1
  perm = rng.permutation(len(ys))
  return _unit(np.concatenate(xs))[perm], np.array(ys)[perm], np.array(truth)[perm]


def test_kmeans_recovers_separable_clusters():
  m = (4, 3, 2, 1)
  x, y, truth = _separable(np.random.default_rng(1), 25, m)
  # Init one point per true cluster (the random init can legitimately land in a local optimum).
  _, offs = clustering.subclass_layout(m)
  init = np.array([np.nonzero(truth == s)[0][0] for s in range(sum(m))])
  out = clustering.cluster(x, y, m, jax.random.key(0), init_indices=init)
  assert _ari(out, truth) == 1.0
  # Random init: ids stay inside their class's range, and all 10 true clusters are found within ARI>0.
  out2 = clustering.cluster(x, y, m, jax.random.key(3))
  assert ((out2 >= offs[y]) & (out2 < offs[y] + np.array(m)[y])).all()
  assert _ari(out2, truth) > 0.6


def test_kmeans_matches_official_loop():
  rng = np.random.default_rng(2)
  n = [60, 41, 17, 9]
  m = (5, 3, 2, 1)
  y = rng.permutation(np.repeat(np.arange(4), n))
  x = _unit(rng.normal(size=(y.size, 8)))
  init = clustering.reference_init_indices(y, m, seed=0)
  ref = _numpy_kmeans(x, y, m, init)
  out = clustering.cluster(x, y, m, jax.random.key(0), init_indices=init)
  np.testing.assert_array_equal(out, ref)


@pytest.mark.multidevice
def test_kmeans_one_vs_eight_devices_with_padding():
  rng = np.random.default_rng(3)
  n = [151, 70, 33, 10, 3]                      # N = 267: not a multiple of 8 → 5 padding rows
  m = tuple(clustering.subclass_counts(n, cluster=10))
  y = rng.permutation(np.repeat(np.arange(5), n))
  x = _unit(rng.normal(size=(y.size, 12)))
  a1 = clustering.cluster(x, y, m, jax.random.key(7), mesh=_mesh(1))
  a8 = clustering.cluster(x, y, m, jax.random.key(7), mesh=_mesh(8))
  np.testing.assert_array_equal(a1, a8)
  a0 = clustering.cluster(x, y, m, jax.random.key(7))
  np.testing.assert_array_equal(a0, a1)
  # Explicit padding rows (label −1) are ignored and labelled −1.
  xp = np.concatenate([x, _unit(rng.normal(size=(3, 12)))])
  yp = np.concatenate([y, [-1, -1, -1]])
  ap = np.asarray(clustering.kmeans_subclasses(jnp.asarray(xp), jnp.asarray(yp), jax.random.key(7), m))
  np.testing.assert_array_equal(ap[:-3], a1)
  assert (ap[-3:] == -1).all()
  _, offs = clustering.subclass_layout(m)
  assert ((a1 >= offs[y]) & (a1 < offs[y] + np.array(m)[y])).all()
  assert (a1[y == 4] == offs[4]).all()          # M_c = 1 → local id 0


# ------------------------------------------------------------------ SBCL `SimCLR/main.py`


def test_class_temperatures_vs_numpy():
  rng = np.random.default_rng(4)
  n = [50, 30, 20, 12, 8, 5]
  m = np.array([5, 3, 2, 1, 1, 1])
  y = np.repeat(np.arange(6), n)
  x = _unit(rng.normal(size=(y.size, 6)) + rng.normal(size=(6, 6))[y] * np.linspace(0.2, 3, 6)[y, None])
  d = np.array([np.linalg.norm(x[y == c].astype(np.float64) - x[y == c].mean(0) + 1e-6, axis=1).mean()
                / np.log(n[c] + 10) for c in range(6)])
  d = np.clip(d, np.percentile(d, 20), np.percentile(d, 80))
  tau = 0.1 * d / d.mean()
  tau[m == 1] = 0.1
  got = clustering.class_temperatures(jnp.asarray(x), jnp.asarray(y), m, 6)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got), tau, rtol=1e-5)


# ------------------------------------------------------------------ SBCL's losses


def _np_supcon(z, y, T=0.1, Tb=0.1):
  n2 = len(z)
  s = z @ z.T
  tot = 0.0
  for a in range(n2):
    P = [b for b in range(n2) if b != a and y[b] == y[a]]
    lse = np.log(sum(np.exp(s[a, b] / T) for b in range(n2) if b != a))
    tot += -np.mean([s[a, p] / T - lse for p in P])
  return T / Tb * tot / n2


def _np_sbcl(z, y, k, taus, tau=0.1, tau_b=0.07, gamma=0.25):
  n2 = len(z)
  B = n2 // 2
  s = z @ z.T
  tot = 0.0
  for a in range(n2):
    ap = (a + B) % n2
    P1 = [b for b in range(n2) if b != a and k[b] == k[a]]
    lse1 = np.log(sum(np.exp(s[a, b] / tau) for b in range(n2) if b != a))
    l1 = -np.mean([s[a, p] / tau - lse1 for p in P1])
    t = taus[y[a]]
    N2 = [ap] + [b for b in range(n2) if k[b] != k[a]]
    P2 = [ap] + [b for b in range(n2) if y[b] == y[a] and k[b] != k[a]]
    lse2 = np.log(sum(np.exp(s[a, b] / t) for b in N2))
    l2 = -np.mean([s[a, p] / t - lse2 for p in P2])
    tot += tau / tau_b * l1 + gamma * l2
  return tot / n2


def _fd_grad(f, z, h=1e-6):
  g = np.zeros_like(z)
  for i in np.ndindex(z.shape):
    zp, zm = z.copy(), z.copy()
    zp[i] += h
    zm[i] -= h
    g[i] = (f(zp) - f(zm)) / (2 * h)
  return g


def _views(rng, B=6, d=5):
  return _unit(rng.normal(size=(2 * B, d))).astype(np.float64)


@pytest.mark.slow
def test_supcon_value_and_grad():
  rng = np.random.default_rng(5)
  z = _views(rng)
  y = np.array([0, 1, 0, 2, 1, 0])
  yy = np.concatenate([y, y])
  ref = _np_supcon(z, yy)
  fn = lambda zz: contrastive.supcon_loss(zz, jnp.asarray(y))
  val, grad = jax.value_and_grad(fn)(jnp.asarray(z, jnp.float32))
  np.testing.assert_allclose(float(val), ref, rtol=1e-5)
  np.testing.assert_allclose(float(contrastive.supcon_loss(jnp.asarray(z, jnp.float32), jnp.asarray(yy))), ref, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(grad), _fd_grad(lambda q: _np_supcon(q, yy), z), rtol=2e-3, atol=2e-4)


@pytest.mark.multidevice
@pytest.mark.slow
def test_sbcl_value_and_grad():
  rng = np.random.default_rng(6)
  z = _views(rng, B=8)
  y = np.array([0, 0, 0, 1, 1, 2, 0, 1])
  k = np.array([0, 1, 1, 2, 3, 4, 0, 2])        # global subclasses: class 0 → {0,1}, class 1 → {2,3}, class 2 → {4}
  taus = np.array([0.13, 0.08, 0.1])
  yy, kk = np.concatenate([y, y]), np.concatenate([k, k])
  ref = _np_sbcl(z, yy, kk, taus)
  fn = lambda zz: contrastive.sbcl_loss(zz, jnp.asarray(y), jnp.asarray(k), jnp.asarray(taus, jnp.float32))
  val, grad = jax.value_and_grad(fn)(jnp.asarray(z, jnp.float32))
  np.testing.assert_allclose(float(val), ref, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(grad), _fd_grad(lambda q: _np_sbcl(q, yy, kk, taus), z),
                             rtol=2e-3, atol=2e-4)
  # Under jit with the batch sharded over 8 devices: same value.
  shard = jax.sharding.NamedSharding(_mesh(8), jax.sharding.PartitionSpec("data"))
  zs = jax.device_put(jnp.asarray(z, jnp.float32), shard)
  v8 = jax.jit(fn)(zs)
  np.testing.assert_allclose(float(v8), ref, rtol=1e-5)


def _np_ccl(z, y, k, tau=0.1, tau_b=0.07, gamma=0.25, T=0.1):
  """SupConLoss_ccl (SBCL `SupConLoss_ccl`) written from the formula: mean_a [(τ/τ_b)·ℓ1(a) + γ·ℓ^SC(a)]."""
  n2 = len(z)
  s = z @ z.T
  tot = 0.0
  for a in range(n2):
    lse1 = np.log(sum(np.exp(s[a, b] / tau) for b in range(n2) if b != a))
    l1 = -np.mean([s[a, p] / tau - lse1 for p in range(n2) if p != a and k[p] == k[a]])
    lse = np.log(sum(np.exp(s[a, b] / T) for b in range(n2) if b != a))
    lsc = -np.mean([s[a, p] / T - lse for p in range(n2) if p != a and y[p] == y[a]])
    tot += tau / tau_b * l1 + gamma * lsc
  return tot / n2


@pytest.mark.slow
def test_sbcl_ccl_value_and_grad():
  rng = np.random.default_rng(7)
  z = _views(rng, B=7)
  y = np.array([0, 0, 1, 1, 2, 0, 1])
  k = np.array([0, 1, 2, 3, 4, 1, 2])
  yy, kk = np.concatenate([y, y]), np.concatenate([k, k])
  ref = _np_ccl(z, yy, kk)
  fn = lambda zz: contrastive.sbcl_ccl_loss(zz, jnp.asarray(y), jnp.asarray(k))
  val, grad = jax.value_and_grad(fn)(jnp.asarray(z, jnp.float32))
  np.testing.assert_allclose(float(val), ref, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(grad), _fd_grad(lambda q: _np_ccl(q, yy, kk), z), rtol=2e-3, atol=2e-4)
  # It is not the Rank loss (different class term): a wrong dispatch would be caught.
  rank = contrastive.sbcl_loss(jnp.asarray(z, jnp.float32), jnp.asarray(y), jnp.asarray(k), jnp.full((3,), 0.1))
  assert abs(float(rank) - ref) > 1e-3
