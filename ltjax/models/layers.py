"""Layers and initialisers faithful to the PyTorch models the specs describe (the official ResNets).

Initialisers (kernels are HWIO for convs, [in, out] for Dense):
  kaiming_normal_fan_in   w ~ N(0, 2/fan_in),  fan_in  = kh·kw·in   (PyTorch kaiming_normal_, mode='fan_in')
  kaiming_normal_fan_out  w ~ N(0, 2/fan_out), fan_out = kh·kw·out  (mode='fan_out'; ImageNet ResNets)
  pytorch_linear_bias(d)  b ~ U(−1/√d, 1/√d)                         (nn.Linear's default bias)
The normals are NOT truncated (jax's variance_scaling distribution 'normal' is a plain normal; 'truncated_normal'
would not match PyTorch).
"""

from __future__ import annotations

import os
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

kaiming_normal_fan_in = jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")
kaiming_normal_fan_out = jax.nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def pytorch_linear_bias(fan_in: int):
  """nn.Linear's default bias init: U(−1/√fan_in, 1/√fan_in)."""
  bound = 1.0 / fan_in ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


BN_VARIANCE_ENV = "LTJAX_BN_VARIANCE"
BN_VARIANCE_FORMULAS = ("one_pass", "two_pass")


def bn_variance_formula() -> str:
  """Train-mode BatchNorm statistics: $LTJAX_BN_VARIANCE, 'one_pass' (default) or 'two_pass'; read at trace time."""
  formula = os.environ.get(BN_VARIANCE_ENV, "one_pass").strip().lower() or "one_pass"
  if formula not in BN_VARIANCE_FORMULAS:
    raise ValueError(f"{BN_VARIANCE_ENV}={formula!r} is not a BatchNorm variance formula; use one of "
                     f"{', '.join(BN_VARIANCE_FORMULAS)} (or unset it for one_pass)")
  return formula


def batch_norm_train(x, scale, bias, epsilon: float = 1e-5):
  """Train-mode batch normalisation over every axis but the last: x [..., C] float32 → (y [..., C], μ [C], σ² [C]).

    μ = mean(x),  σ² = mean((x − μ)²)  (biased),  r = 1/√(σ² + ε),  y = γ·(x − μ)·r + β.

  Two formulations with the backward pass written out (jax.custom_vjp), chosen by bn_variance_formula():
    one_pass (default): σ² = max(Σx²/N − μ², 0), y = x·a + (β − μ·a) with a = γr. The statistics are two plain sums
      of x and the output one pass over x, so x − μ is never materialised (XLA:CPU's library reductions do not fuse
      the broadcast; faster on CPU, docs/BENCHMARKS.md). flax.linen.BatchNorm's default (use_fast_variance). Loses
      about log10(μ²/σ²) of float32's 7 digits in σ² (1e-5 relative at |μ| = 10σ; activations sit near |μ| ≲ σ).
    two_pass: σ² = mean((x − μ)²) as PyTorch: exact to rounding whatever μ.
  The same gradient either way: with d = x − μ, N values per channel and output cotangents (ȳ, μ̄, σ̄²),

    β̄ = Σ ȳ,   γ̄ = r·Σ ȳ·d,
    x̄ = γr·ȳ + (2σ̄²/N − γr³/N·Σ ȳ·d)·d + (μ̄ − γr·Σ ȳ)/N     (one_pass: Σ ȳ·d = Σ ȳ·x − μ·Σ ȳ, d unexpanded).

  It reads the activations twice instead of the five-odd passes autodiff of the two-pass variance makes. Sums run
  over all non-channel axes, so under jit with a batch-sharded x they span the global batch.
  """
  if bn_variance_formula() == "two_pass":
    return _bn_two_pass(x, scale, bias, epsilon)
  return _bn_one_pass(x, scale, bias, epsilon)


def _bn_two_pass_fwd(x, scale, bias, epsilon):
  axes = tuple(range(x.ndim - 1))
  mean = jnp.mean(x, axes)
  d = x - mean
  var = jnp.mean(jnp.square(d), axes)
  r = jax.lax.rsqrt(var + epsilon)
  return (d * (scale * r) + bias, mean, var), (x, mean, r, scale)


def _bn_two_pass_bwd(epsilon, res, cts):
  x, mean, r, scale = res
  dy, dmean, dvar = cts
  axes = tuple(range(x.ndim - 1))
  n = x.size // x.shape[-1]
  d = x - mean
  sum_dy, sum_dyd = jnp.sum(dy, axes), jnp.sum(dy * d, axes)
  gr = scale * r
  dx = dy * gr + d * (2 * dvar / n - gr * r * r / n * sum_dyd) + (dmean - gr * sum_dy) / n
  return dx, sum_dyd * r, sum_dy


def _bn_one_pass_fwd(x, scale, bias, epsilon):
  axes = tuple(range(x.ndim - 1))
  n = x.size // x.shape[-1]
  mean = jnp.sum(x, axes) / n
  var = jnp.maximum(jnp.sum(jnp.square(x), axes) / n - jnp.square(mean), 0.0)
  r = jax.lax.rsqrt(var + epsilon)
  a = scale * r
  return (x * a + (bias - mean * a), mean, var), (x, mean, r, scale)


def _bn_one_pass_bwd(epsilon, res, cts):
  x, mean, r, scale = res
  dy, dmean, dvar = cts
  axes = tuple(range(x.ndim - 1))
  n = x.size // x.shape[-1]
  sum_dy = jnp.sum(dy, axes)
  sum_dyd = jnp.sum(dy * x, axes) - mean * sum_dy
  gr = scale * r
  coef = 2 * dvar / n - gr * r * r / n * sum_dyd  # the factor of d in x̄, folded into x and a constant
  dx = dy * gr + x * coef + ((dmean - gr * sum_dy) / n - mean * coef)
  return dx, sum_dyd * r, sum_dy


def _custom_bn(fwd, bwd):
  fn = jax.custom_vjp(lambda x, scale, bias, epsilon: fwd(x, scale, bias, epsilon)[0], nondiff_argnums=(3,))
  fn.defvjp(fwd, bwd)
  return fn


_bn_two_pass = _custom_bn(_bn_two_pass_fwd, _bn_two_pass_bwd)
_bn_one_pass = _custom_bn(_bn_one_pass_fwd, _bn_one_pass_bwd)


class BatchNorm(nn.Module):
  """PyTorch BatchNorm2d (train/eval semantics) over the last (channel) axis of x [..., C].

  Train:  μ = mean(x), σ² = mean((x − μ)²) over all non-channel axes (n = x.size / C values per channel),
          y = γ·(x − μ)/√(σ² + ε) + β                          (biased σ² for the normalisation),
          mean ← (1 − m)·mean + m·μ,  var ← (1 − m)·var + m·σ²·n/(n − 1)   (unbiased σ² for the running var).
  Eval (`use_running_average`, or `frozen`): y = γ·(x − mean)/√(var + ε) + β; nothing is updated.
  Defaults m = 0.1 (PyTorch momentum: the weight of the NEW batch), ε = 1e-5, γ = 1, β = 0, mean = 0, var = 1.
  Statistics and the normalisation run in float32 whatever the input dtype; the output has `dtype`. The batch
  statistics are plain jnp reductions, so under `jax.jit` with a batch-sharded input they span the global batch
  (1 device and 8 devices give the same result).

  Variables: params {scale, bias} [C]; batch_stats {mean, var} [C] (all float32).
  `use_running_average` may be given as a field or a call argument (exactly one, as in flax.linen.BatchNorm).
  """

  use_running_average: Optional[bool] = None
  momentum: float = 0.1
  epsilon: float = 1e-5
  dtype: Any = jnp.float32
  frozen: bool = False

  @nn.compact
  def __call__(self, x, use_running_average: Optional[bool] = None):
    use_ra = nn.merge_param("use_running_average", self.use_running_average, use_running_average)
    c = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
    ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
    ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
    xf = x.astype(jnp.float32)
    if use_ra or self.frozen:
      y = (xf - ra_mean.value) * (scale * jax.lax.rsqrt(ra_var.value + self.epsilon)) + bias
      return y.astype(self.dtype)
    y, mean, var = batch_norm_train(xf, scale, bias, self.epsilon)
    if not self.is_initializing():
      n = x.size // c
      m = self.momentum
      ra_mean.value = (1 - m) * ra_mean.value + m * mean
      ra_var.value = (1 - m) * ra_var.value + m * var * (n / max(n - 1, 1))
    return y.astype(self.dtype)
