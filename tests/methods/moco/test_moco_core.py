"""Pure MoCo pieces (ltjax/methods/moco/core.py) against float64 numpy references written from imbalanced-semi-self
`pretrain_moco.py`: FIFO enqueue with the
pointer wrap, momentum update, InfoNCE value and gradient, per-group BatchNorm and the shuffle-BN forward."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ltjax.losses import contrastive
from ltjax.methods.moco import core as moco_core
from ltjax.models import create_model


def np_normalize(x):
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def test_enqueue_overwrites_exact_rows_and_wraps():
  K, B, d = 12, 4, 3
  queue = np.arange(K * d, dtype=np.float32).reshape(K, d)
  ptr = jnp.int32(0)
  q = jnp.asarray(queue)
  ref = queue.copy()
  ref_ptr = 0
  for step in range(5):  # 5 writes of 4 into 12 rows: pointer 0, 4, 8, 0 (wrap), 4
    vals = np.full((B, d), 100.0 + step, np.float32)
    q, ptr = moco_core.enqueue(q, ptr, jnp.asarray(vals))
    ref[ref_ptr:ref_ptr + B] = vals
    ref_ptr = (ref_ptr + B) % K
    np.testing.assert_array_equal(np.asarray(q), ref)
    assert int(ptr) == ref_ptr
  # after the wrap, rows 0..3 hold step 3 and rows 4..7 step 4, rows 8..11 still step 2
  np.testing.assert_array_equal(np.asarray(q)[:, 0], [103] * 4 + [104] * 4 + [102] * 4)
  labels, p = moco_core.enqueue(-jnp.ones((K,), jnp.int32), jnp.int32(8), jnp.arange(4, dtype=jnp.int32))
  np.testing.assert_array_equal(np.asarray(labels), [-1] * 8 + [0, 1, 2, 3])
  assert int(p) == 0
  with pytest.raises(ValueError, match="multiple of the global batch"):
    moco_core.enqueue(q, ptr, jnp.zeros((5, d)))


def test_momentum_update_is_ema_without_gradient():
  k = {"a": jnp.array([1.0, 2.0]), "b": {"c": jnp.array(3.0)}}
  q = {"a": jnp.array([3.0, -2.0]), "b": {"c": jnp.array(5.0)}}
  out = moco_core.momentum_update(k, q, 0.999)
  np.testing.assert_allclose(np.asarray(out["a"]), 0.999 * np.array([1.0, 2.0]) + 0.001 * np.array([3.0, -2.0]),
                             rtol=1e-6)
  np.testing.assert_allclose(float(out["b"]["c"]), 0.999 * 3 + 0.001 * 5, rtol=1e-6)
  g = jax.grad(lambda p: jnp.sum(moco_core.momentum_update(k, p, 0.9)["a"]))(q)
  np.testing.assert_array_equal(np.asarray(g["a"]), 0.0)


def np_infonce(q, k, queue, T):
  l_pos = np.sum(q * k, axis=1, keepdims=True)
  l_neg = q @ queue.T
  z = np.concatenate([l_pos, l_neg], 1) / T
  z = z - z.max(1, keepdims=True)
  logp = z - np.log(np.exp(z).sum(1, keepdims=True))
  return -logp[:, 0].mean()


def np_infonce_grad_q(q, k, queue, T):
  """dL/dq from the formula: L = mean_i −log softmax(z_i)_0, z_i = [q_i·k_i, q_i·u_j]/T →
  dL/dq_i = (1/B)·(1/T)·(Σ_j p_ij c_j − k_i), c = [k_i, u_1 … u_K]."""
  B = q.shape[0]
  z = np.concatenate([np.sum(q * k, 1, keepdims=True), q @ queue.T], 1) / T
  p = np.exp(z - z.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  expected = p[:, :1] * k + p[:, 1:] @ queue
  return (expected - k) / (T * B)


def test_infonce_value_and_gradient_match_numpy():
  rng = np.random.default_rng(0)
  B, K, d, T = 6, 16, 5, 0.2
  q = np_normalize(rng.normal(size=(B, d)))
  k = np_normalize(rng.normal(size=(B, d)))
  queue = np_normalize(rng.normal(size=(K, d)))
  args = [jnp.asarray(a, jnp.float32) for a in (q, k, queue)]
  val, grads = jax.value_and_grad(lambda *a: contrastive.infonce_loss(*a, temperature=T), argnums=(0, 1, 2))(*args)
  np.testing.assert_allclose(float(val), np_infonce(q, k, queue, T), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(grads[0]), np_infonce_grad_q(q, k, queue, T), rtol=1e-4, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(grads[1]), 0.0)  # keys and queue are constants
  np.testing.assert_array_equal(np.asarray(grads[2]), 0.0)
  logits = contrastive.infonce_logits(*args, temperature=1.0)
  assert logits.shape == (B, 1 + K)
  np.testing.assert_allclose(np.asarray(logits[:, 1:]), q @ queue.T, rtol=1e-5, atol=1e-6)


def test_init_queue_rows_are_unit_norm():
  qu = moco_core.init_queue(jax.random.PRNGKey(0), 32, 8)
  np.testing.assert_allclose(np.linalg.norm(np.asarray(qu), axis=1), 1.0, rtol=1e-5)


class _Jitted:
  """The model with a jitted apply (the tests call it on several shapes; eager op-by-op dispatch is slow)."""

  def __init__(self, model):
    self._apply = jax.jit(model.apply, static_argnames=("train", "mutable"))

  def apply(self, variables, x, train=False, mutable=False):
    return self._apply(variables, x, train=train, mutable=tuple(mutable) if isinstance(mutable, list) else mutable)


def _model_vars(x):
  model = create_model("resnet8", 3)
  v = model.init(jax.random.PRNGKey(0), x[:1], train=False)
  return _Jitted(model), v


@pytest.mark.slow
def test_grouped_apply_normalises_each_group_with_its_own_statistics():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(8, 8, 8, 3)), jnp.float32)
  model, v = _model_vars(x)
  out, stats = moco_core.grouped_apply(model.apply, v, x, groups=4)
  for g in range(4):
    ref, _ = model.apply(v, x[2 * g:2 * g + 2], train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(out["features"][2 * g:2 * g + 2]), np.asarray(ref["features"]),
                               rtol=1e-5, atol=1e-6)
  # running statistics: mean over groups of the per-group updates
  per = [model.apply(v, x[2 * g:2 * g + 2], train=True, mutable=["batch_stats"])[1]["batch_stats"] for g in range(4)]
  ref_stats = jax.tree.map(lambda *s: np.mean(np.stack(s), 0), *per)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), b, rtol=1e-5, atol=1e-6), stats, ref_stats)
  # one group = ordinary global BatchNorm
  full, _ = model.apply(v, x, train=True, mutable=["batch_stats"])
  one, _ = moco_core.grouped_apply(model.apply, v, x, groups=1)
  np.testing.assert_allclose(np.asarray(one["features"]), np.asarray(full["features"]), rtol=1e-5, atol=1e-6)
  # groups differ from the global batch (otherwise the test above could not tell them apart)
  assert not np.allclose(np.asarray(out["features"]), np.asarray(full["features"]), atol=1e-3)
  with pytest.raises(ValueError, match="BatchNorm groups"):
    moco_core.grouped_apply(model.apply, v, x, groups=3)


@pytest.mark.slow
def test_shuffled_apply_uses_the_permuted_groups_and_restores_order():
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(size=(8, 8, 8, 3)), jnp.float32)
  model, v = _model_vars(x)
  key = jax.random.PRNGKey(7)
  out, _ = moco_core.shuffled_apply(model.apply, v, x, 4, key)
  perm = np.asarray(jax.random.permutation(key, 8))
  ref, _ = moco_core.grouped_apply(model.apply, v, x[perm], 4)
  inv = np.argsort(perm)
  np.testing.assert_allclose(np.asarray(out["features"]), np.asarray(ref["features"])[inv], rtol=1e-5, atol=1e-6)
  # row i is example i's output, normalised inside the group π put it in: example perm[0]'s group is perm[0:2]
  solo, _ = model.apply(v, x[perm[:2]], train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(np.asarray(out["features"][perm[0]]), np.asarray(solo["features"][0]), rtol=1e-5,
                             atol=1e-6)
