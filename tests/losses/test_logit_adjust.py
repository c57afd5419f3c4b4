"""Logit-adjusted cross-entropy (ltjax/losses/logit_adjust.py) against a float64 numpy reference written from Menon
et al. (ICLR 2021) eq. 10, its gradient, and its registration: the loss is usable from a config with nothing but
its own module (the worked recipe of docs/ARCHITECTURE.md, "Adding a loss")."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ltjax import config as config_lib, losses
from ltjax.losses import logit_adjust

COUNTS = np.array([500, 120, 30, 7, 2])


def ref_loss(z, y, counts, tau):
  z = np.asarray(z, np.float64) + tau * np.log(np.asarray(counts, np.float64) / np.sum(counts))
  z = z - z.max(1, keepdims=True)
  logp = z - np.log(np.exp(z).sum(1, keepdims=True))
  return -logp[np.arange(len(y)), y].mean()


def ref_grad(z, y, counts, tau):
  z = np.asarray(z, np.float64) + tau * np.log(np.asarray(counts, np.float64) / np.sum(counts))
  p = np.exp(z - z.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  p[np.arange(len(y)), y] -= 1.0
  return p / len(y)


@pytest.mark.parametrize("tau", [0.0, 1.0, 2.0])
def test_value_and_gradient_match_the_formula(tau):
  rng = np.random.RandomState(0)
  z = rng.randn(16, 5).astype(np.float32) * 3
  y = rng.randint(0, 5, 16)
  fn = losses.make("logit_adjust", type("S", (), {"la_tau": tau})(), COUNTS)
  value, grad = jax.value_and_grad(lambda x: fn(x, jnp.asarray(y)))(jnp.asarray(z))
  np.testing.assert_allclose(float(value), ref_loss(z, y, COUNTS, tau), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(grad), ref_grad(z, y, COUNTS, tau), rtol=1e-4, atol=1e-7)


def test_tau_zero_is_cross_entropy_and_the_adjustment_favours_rare_classes():
  z = jnp.zeros((2, 5))
  y = jnp.array([0, 4])
  ce = losses.make("ce", None, COUNTS)
  la0 = losses.make("logit_adjust", type("S", (), {"la_tau": 0.0})(), COUNTS)
  la1 = losses.make("logit_adjust", None, COUNTS)  # declared default τ = 1
  assert float(la0(z, y)) == pytest.approx(float(ce(z, y)), rel=1e-6)
  # Equal logits: the head class's term is small, the tail class's large, so training pushes tail logits up.
  per = [float(la1(z[i:i + 1], y[i:i + 1])) for i in range(2)]
  assert per[0] < np.log(5) < per[1]
  with pytest.raises(ValueError, match="takes no class weights"):
    la1(z, y, class_weights=jnp.ones(5))


def test_an_empty_class_gets_half_an_example():
  lp = logit_adjust.log_priors([4, 0])
  np.testing.assert_allclose(lp, np.log([4 / 4, 0.5 / 4]), rtol=1e-6)


def test_registered_with_its_config_field():
  assert losses.REGISTRY["logit_adjust"].defaults == {"la_tau": 1.0}
  c = config_lib.default()
  assert c.loss.la_tau == 1.0  # the loss section gained the field from the loss module alone
  c.loss.name = "logit_adjust"
  c.loss.la_tau = 1.5
  config_lib.validate(c)
