"""SBCL's queue losses (ltjax/losses/contrastive_queue.py) against float64 numpy loops written from SBCL
`moco/loss.py`."""

import pytest
import jax
import jax.numpy as jnp
import numpy as np

from ltjax.losses import contrastive_queue


def np_logsoftmax(z):
  z = z - z.max()
  return z - np.log(np.exp(z).sum())


def np_sbcl_queue(logits, y, k, qy, qk, T=0.07, Tr=0.12, gamma=0.2):
  """Loop over anchors, sets exactly as SBCL `moco/loss.py` writes them."""
  B, K1 = logits.shape
  l1, l2 = [], []
  for i in range(B):
    logp = np_logsoftmax(logits[i] / T)
    P1 = [0] + [1 + j for j in range(K1 - 1) if qk[j] == k[i]]
    l1.append(-np.mean([logp[j] for j in P1]))
    N2 = [0] + [1 + j for j in range(K1 - 1) if qk[j] != k[i]]
    P2 = [0] + [1 + j for j in range(K1 - 1) if qy[j] == y[i] and qk[j] != k[i]]
    z = logits[i] / Tr
    lse = np.log(np.sum(np.exp(z[N2])))
    l2.append(-np.mean([z[j] - lse for j in P2]))
  return np.mean(l1) + gamma * np.mean(l2)


def np_multi_pos(logits, pos, T):
  out = []
  for i in range(logits.shape[0]):
    logp = np_logsoftmax(logits[i] / T)
    out.append(-np.mean(logp[pos[i]]))
  return np.mean(out)


def numeric_grad(f, x, eps=1e-6):
  g = np.zeros_like(x)
  for idx in np.ndindex(x.shape):
    xp, xm = x.copy(), x.copy()
    xp[idx] += eps
    xm[idx] -= eps
    g[idx] = (f(xp) - f(xm)) / (2 * eps)
  return g


def _case(seed=0, B=6, K=20):
  rng = np.random.default_rng(seed)
  logits = rng.uniform(-1, 1, size=(B, 1 + K))
  y = rng.integers(0, 3, size=B)
  k = 10 * y + rng.integers(0, 2, size=B)  # subclass ids of class c are 10c, 10c+1
  qy = rng.integers(-1, 3, size=K)
  qk = np.where(qy >= 0, 10 * qy + rng.integers(0, 2, size=K), -1)
  qk[:3] = -1  # entries enqueued before the first clustering: real class, subclass −1
  return logits, y, k, qy, qk


@pytest.mark.slow
def test_sbcl_queue_loss_value_and_gradient_match_numpy():
  logits, y, k, qy, qk = _case()
  f = lambda z: contrastive_queue.sbcl_queue_loss(z, jnp.asarray(y), jnp.asarray(k), jnp.asarray(qy), jnp.asarray(qk))
  val, grad = jax.value_and_grad(f)(jnp.asarray(logits, jnp.float32))
  ref = np_sbcl_queue(logits, y, k, qy, qk)
  # the loss computes in float32 (like the official code); the reference is float64
  np.testing.assert_allclose(float(val), ref, rtol=2e-5)
  g_ref = numeric_grad(lambda z: np_sbcl_queue(z, y, k, qy, qk), logits)
  np.testing.assert_allclose(np.asarray(grad), g_ref, rtol=2e-3, atol=2e-5)
  # weights matter: gamma = 0 gives L1 only
  l1 = float(contrastive_queue.sbcl_queue_loss(jnp.asarray(logits), y, k, qy, qk, gamma=0.0))
  np.testing.assert_allclose(l1, np_sbcl_queue(logits, y, k, qy, qk, gamma=0.0), rtol=2e-5)
  assert abs(l1 - ref) > 1e-3


def test_kcl_loss_given_its_positives_matches_numpy():
  logits, y, _, qy, _ = _case(1)
  key = jax.random.PRNGKey(3)
  pos = np.asarray(contrastive_queue.kcl_positives(jnp.asarray(y), jnp.asarray(qy), key, k=6))
  val, grad = jax.value_and_grad(lambda z: contrastive_queue.kcl_loss(z, y, qy, key, k=6))(jnp.asarray(logits, jnp.float32))
  ref = np_multi_pos(logits, pos, 0.07)
  np.testing.assert_allclose(float(val), ref, rtol=1e-5)
  g_ref = numeric_grad(lambda z: np_multi_pos(z, pos, 0.07), logits)
  np.testing.assert_allclose(np.asarray(grad), g_ref, rtol=2e-3, atol=2e-5)


def test_kcl_positives_are_same_class_draws_with_replacement():
  K, B = 40, 5
  qy = np.array([0, 1, 2, -1] * 10)
  qy[::7] = 3
  y = np.array([0, 1, 2, 3, 4])  # class 4 is absent from the queue
  n_same = [(qy == c).sum() for c in y]
  counts = np.zeros((B, K))
  draws = 400
  positives = jax.jit(lambda s: contrastive_queue.kcl_positives(jnp.asarray(y), jnp.asarray(qy), jax.random.PRNGKey(s), k=6))
  for s in range(draws):
    pos = np.asarray(positives(s))
    assert pos[:, 0].all()
    q = pos[:, 1:]
    for i in range(B):
      assert np.all(qy[q[i]] == y[i])                 # only entries of the anchor's class
      assert 1 <= q[i].sum() <= 6 or n_same[i] == 0   # k = 6 draws, duplicates merged
    assert q[4].sum() == 0                            # no same-class entry: column 0 only
    counts += q
  # uniform among the same-class entries: hit frequency 1 − (1 − 1/n)^6 for every entry of the class
  for i in range(4):
    p = 1 - (1 - 1 / n_same[i]) ** 6
    freq = counts[i][qy == y[i]] / draws
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / draws) + 0.02), (i, freq, p)
