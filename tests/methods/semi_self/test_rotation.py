"""Rotation pre-training (imbalanced-semi-self `pretrain_rot.py`): rotation ids and rotated batches against numpy
references,
the loss value and gradient against a float64 reference, 1 device = 8, and the method's config checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from tests.cfgutil import labels_dataset, override

from ltjax import config as config_lib
from ltjax.data.stats import ClassStats
from ltjax.methods import REGISTRY
from ltjax.methods.semi_self.rotation import Rotation, rotate, rotation_batch, rotation_labels
from ltjax.train import step as step_lib


@pytest.mark.parametrize("b", [1, 3, 4, 7, 64, 130])
def test_rotation_ids_are_the_first_b_of_a_permuted_balanced_list(b):
  key = jax.random.PRNGKey(b)
  k = np.asarray(rotation_labels(key, b))
  assert k.dtype == np.int32 and k.shape == (b,)
  # Reference: the list [0, 1, 2, 3] repeated ⌊B/4⌋ + 1 times, permuted, cut at B.
  pool = np.array([0, 1, 2, 3] * (b // 4 + 1))
  perm = np.asarray(jax.random.permutation(key, len(pool)))
  np.testing.assert_array_equal(k, pool[perm][:b])
  counts = np.bincount(k, minlength=4)
  assert counts.max() <= b // 4 + 1 and counts.min() >= b - 3 * (b // 4 + 1)


def test_rotation_ids_are_uniform_over_many_batches():
  ks = np.stack([np.asarray(rotation_labels(jax.random.PRNGKey(s), 6)) for s in range(400)])
  # Position-wise uniform: each rotation about 1/4 of the time at every position.
  freq = np.stack([(ks == r).mean(0) for r in range(4)])
  assert np.abs(freq - 0.25).max() < 0.09
  assert len({tuple(r) for r in ks}) > 300  # different batches get different draws


def test_rotate_is_counter_clockwise_in_the_h_w_plane():
  x = np.array([[1, 2], [3, 4]], np.float32)[None, :, :, None]
  got = [np.asarray(rotate(jnp.asarray(x), jnp.array([j])))[0, :, :, 0].tolist() for j in range(4)]
  # torch.rot90(x, 1, dims=(H, W)) = np.rot90: the top-right pixel moves to the top-left.
  assert got == [[[1, 2], [3, 4]], [[2, 4], [1, 3]], [[4, 3], [2, 1]], [[3, 1], [4, 2]]]


def test_rotation_batch_matches_a_numpy_reference():
  rng = np.random.RandomState(0)
  x = rng.normal(size=(9, 5, 5, 3)).astype(np.float32)
  key = jax.random.PRNGKey(3)
  xr, k = rotation_batch(jnp.asarray(x), key)
  k = np.asarray(k)
  np.testing.assert_array_equal(k, np.asarray(rotation_labels(key, 9)))
  want = np.stack([np.rot90(x[i], k[i], axes=(0, 1)) for i in range(9)])
  np.testing.assert_array_equal(np.asarray(xr), want)
  with pytest.raises(ValueError, match="square images"):
    rotate(jnp.zeros((2, 4, 6, 3)), jnp.zeros(2, jnp.int32))


def linear_apply(variables, x, train=True, mutable=()):
  """A stand-in model: logits = flatten(x) W + b; BN statistics returned unchanged."""
  p = variables["params"]
  out = {"logits": x.reshape(x.shape[0], -1) @ p["w"] + p["b"], "features": x.reshape(x.shape[0], -1)}
  return out, {"batch_stats": variables["batch_stats"]}


@pytest.mark.slow
def test_loss_value_and_gradient_equal_a_float64_reference():
  rng = np.random.RandomState(1)
  x = rng.normal(size=(10, 4, 4, 2)).astype(np.float32)
  params = {"w": jnp.asarray(rng.normal(size=(32, 4)) * 0.3, jnp.float32), "b": jnp.asarray([0.1, -0.2, 0.0, 0.3])}
  method = Rotation.__new__(Rotation)
  key = jax.random.PRNGKey(7)

  def f(p):
    loss, (_, _, m) = method.loss(linear_apply, p, {}, {}, {"image": jnp.asarray(x), "label": jnp.zeros(10)}, {},
                                  key)
    return loss, m

  (loss, m), g = jax.value_and_grad(f, has_aux=True)(params)
  k = np.asarray(rotation_labels(key, 10))
  xr = np.stack([np.rot90(x[i], k[i], axes=(0, 1)) for i in range(10)]).reshape(10, -1).astype(np.float64)
  w, b = np.asarray(params["w"], np.float64), np.asarray(params["b"], np.float64)
  z = xr @ w + b
  p = np.exp(z - z.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  onehot = np.eye(4)[k]
  want = -np.mean(np.log(p[np.arange(10), k]))
  dz = (p - onehot) / 10
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(g["w"]), xr.T @ dz, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(np.asarray(g["b"]), dz.sum(0), rtol=1e-4, atol=1e-6)
  assert float(m["accuracy"]) == pytest.approx(np.mean(z.argmax(1) == k))


@pytest.mark.multidevice
def test_loss_on_one_device_equals_eight():
  assert jax.device_count() == 8
  rng = np.random.RandomState(2)
  x = rng.normal(size=(16, 4, 4, 1)).astype(np.float32)
  params = {"w": jnp.asarray(rng.normal(size=(16, 4)), jnp.float32), "b": jnp.zeros(4)}
  method = Rotation.__new__(Rotation)

  def f(p, images, key):
    return jax.value_and_grad(lambda q: method.loss(linear_apply, q, {}, {}, {"image": images}, {}, key)[0])(p)

  key = jax.random.PRNGKey(0)
  one = jax.jit(f)(params, jnp.asarray(x), key)
  mesh = step_lib.make_mesh(8)  # the trainer's mesh (Auto axes)
  xs = jax.device_put(x, NamedSharding(mesh, P("data")))
  eight = jax.jit(f, in_shardings=(NamedSharding(mesh, P()), NamedSharding(mesh, P("data")),
                                   NamedSharding(mesh, P())))(params, xs, key)
  np.testing.assert_allclose(float(one[0]), float(eight[0]), rtol=1e-6)
  for a, b in zip(jax.tree.leaves(one[1]), jax.tree.leaves(eight[1])):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def rotation_cfg(**over):
  c = config_lib.default()
  c.method = "rotation"
  c.train.eval_every = 0
  c.train.select_on = "last"
  return override(c, **over)


def test_method_is_registered_with_a_four_way_head():
  assert REGISTRY["rotation"] is Rotation
  labels = np.zeros(3, np.int32)
  m = Rotation(rotation_cfg(), labels_dataset(labels, 1), ClassStats.from_labels(labels, 1))
  assert m.model_kwargs() == {"num_classes": 4}


@pytest.mark.parametrize("over,match", [
    ({"loss.name": "ldam"}, "cross-entropy"),
    ({"supervised.train_rule": "drw"}, "ignores class labels"),
    ({"supervised.mixup_alpha": 1.0}, "ignores class labels"),
    ({"train.eval_every": 1}, "eval_every=0"),
])
def test_meaningless_settings_are_refused(over, match):
  with pytest.raises(config_lib.ConfigError, match=match):
    Rotation.validate(rotation_cfg(**over))
