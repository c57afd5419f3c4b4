"""Classifier heads: features f [B, D] → logits [B, C] (float32). Parameters: `kernel` [D, C] (+ `bias` [C])."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ltjax.losses import contrastive
from ltjax.models.layers import kaiming_normal_fan_in, pytorch_linear_bias


def l2_normalize(x, axis, eps: float = 1e-12):
  """F.normalize in x's own dtype (`ltjax.losses.contrastive.l2_normalize`)."""
  return contrastive.l2_normalize(x, axis=axis, eps=eps, dtype=None)


class LinearHead(nn.Module):
  """z = f W + b.  W [D, C] ~ N(0, 2/D) (Kaiming fan_in, the specs' module-traversal init), b [C] ~ U(±1/√D)."""

  num_classes: int

  @nn.compact
  def __call__(self, f):
    d = f.shape[-1]
    w = self.param("kernel", kaiming_normal_fan_in, (d, self.num_classes), jnp.float32)
    b = self.param("bias", pytorch_linear_bias(d), (self.num_classes,), jnp.float32)
    return f.astype(jnp.float32) @ w + b


def unit_columns_init(key, shape, dtype=jnp.float32):
  """V ~ U(−1, 1), then every column V[:, c] rescaled to unit L2 norm (NormedLinear's init)."""
  v = jax.random.uniform(key, shape, dtype, -1.0, 1.0)
  return v / jnp.linalg.norm(v, axis=0, keepdims=True)


class CosineHead(nn.Module):
  """NormedLinear: z_ic = ⟨f_i/max(‖f_i‖, 1e-12), V_:c/max(‖V_:c‖, 1e-12)⟩ ∈ [−1, 1]; V [D, C], no bias."""

  num_classes: int

  @nn.compact
  def __call__(self, f):
    v = self.param("kernel", unit_columns_init, (f.shape[-1], self.num_classes), jnp.float32)
    return l2_normalize(f.astype(jnp.float32), 1) @ l2_normalize(v, 0)


class ProjectionHead(nn.Module):
  """Contrastive projection MLP: f [B, D] → Dense(d_0) → ReLU → … → ReLU → Dense(d_last) → [B, d_last] float32, not
  normalised (SupConResNet's `head`, MoCo v2's `mlp`). Every Dense has nn.Linear's default init: kernel [in, out]
  and bias both U(±1/√in). Parameters: `Dense_k/kernel`, `Dense_k/bias`."""

  dims: Sequence[int]

  @nn.compact
  def __call__(self, f):
    x = f.astype(jnp.float32)
    for k, d in enumerate(self.dims):
      if k:
        x = nn.relu(x)
      init = pytorch_linear_bias(x.shape[-1])
      x = nn.Dense(d, kernel_init=init, bias_init=init, name=f"Dense_{k}")(x)
    return x


class TorchLinearHead(nn.Module):
  """z = f W + b with nn.Linear's default init: W [D, C] and b [C] both ~ U(±1/√D) (a classifier built outside any
  Kaiming init loop, e.g. SBCL's stage-2 `LinearClassifier`)."""

  num_classes: int

  @nn.compact
  def __call__(self, f):
    d = f.shape[-1]
    w = self.param("kernel", pytorch_linear_bias(d), (d, self.num_classes), jnp.float32)
    b = self.param("bias", pytorch_linear_bias(d), (self.num_classes,), jnp.float32)
    return f.astype(jnp.float32) @ w + b


class LinearLWSHead(nn.Module):
  """Linear classifier with learnable weight scaling (LWS, MiSLAS `methods.py` `LearnableWeightScaling`; Kang et al.,
  ICLR 2020): z = (f W + b) ⊙ s. W [D, C], b [C] as `LinearHead` (so a stage-1 `fc/kernel`, `fc/bias` load into
  it), s [C] = `fc/lws`, initialised to 1 (then z equals the linear head's)."""

  num_classes: int

  @nn.compact
  def __call__(self, f):
    d = f.shape[-1]
    w = self.param("kernel", kaiming_normal_fan_in, (d, self.num_classes), jnp.float32)
    b = self.param("bias", pytorch_linear_bias(d), (self.num_classes,), jnp.float32)
    s = self.param("lws", nn.initializers.ones, (self.num_classes,), jnp.float32)
    return (f.astype(jnp.float32) @ w + b) * s


HEADS = {"linear": LinearHead, "cosine": CosineHead, "linear_torch": TorchLinearHead, "linear_lws": LinearLWSHead}
