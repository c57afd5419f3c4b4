"""Contrastive losses (pure, jit-able): supervised contrastive (SupCon), SBCL's subclass-balanced in-batch losses, and
MoCo's InfoNCE, with the row normalisation they share.

References
  * SupCon: Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020, eq. 2 (L^sup_out).
  * SBCL: Hou et al., "Subclass-balancing Contrastive Learning for Long-tailed Recognition", ICCV 2023, eq. 3-6;
    official `SBCL/losses.py` (`SupConLoss_rank`, `SupConLoss_ccl`).
  * InfoNCE: He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020, eq. 1;
    official `moco/builder.py`.

Conventions
  * In-batch losses take z [2B, d] = view 1 of all B images stacked above view 2 (anchor a = v·B + i), unit-norm
    rows; labels may be given per image ([B], tiled to both views) or per anchor ([2B]).
  * Queue losses (MoCo): q, k [B, d] unit rows, queue [K, d] row-major (the official code stores [d, K]).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12, dtype=jnp.float32) -> jax.Array:
  """`F.normalize(x, dim=axis)`: x / max(‖x‖₂, eps), written as x / √max(‖x‖², eps²) so the gradient at x = 0 is
  finite (0). Computed in `dtype` (float32 by default; None keeps x's dtype)."""
  if dtype is not None:
    x = x.astype(dtype)
  sq = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
  return x / jnp.sqrt(jnp.maximum(sq, eps * eps))


def infonce_logits(q: jax.Array, k: jax.Array, queue: jax.Array, temperature: float = 1.0) -> jax.Array:
  """[B, 1 + K] logits: column 0 = q_i·k_i (positive), column 1 + j = q_i·queue_j; all divided by T.

  q, k [B, d] unit rows (k is treated as a constant), queue [K, d]. `temperature=1` gives the un-scaled logits SBCL
  hands to its losses (SBCL `moco/moco.py`).
  """
  k = jax.lax.stop_gradient(k)
  queue = jax.lax.stop_gradient(queue)
  pos = jnp.sum(q * k, axis=-1, keepdims=True)
  neg = q @ queue.T
  return jnp.concatenate([pos, neg], axis=1) / temperature


def infonce_loss(q: jax.Array, k: jax.Array, queue: jax.Array, temperature: float = 0.2) -> jax.Array:
  """MoCo InfoNCE, scalar: L = mean_i −log softmax(ℓ_i)_0 with ℓ = infonce_logits(q, k, queue, T) (T = 0.2 in the
  SS MoCo v2 pre-training, `--moco-t`)."""
  logits = infonce_logits(q, k, queue, temperature)
  return -jnp.mean(jax.nn.log_softmax(logits, axis=1)[:, 0])


# ------------------------------------------------------------------------------------- in-batch (SupCon, SBCL)


def _per_anchor(lab, n2):
  lab = jnp.asarray(lab)
  if lab.shape[0] == n2:
    return lab
  if 2 * lab.shape[0] == n2:
    return jnp.concatenate([lab, lab])
  raise ValueError(f"labels of length {lab.shape[0]} for {n2} anchors (expected B = {n2 // 2} or 2B = {n2})")


def _supcon_terms(logits, pos, den):
  """−(1/|P(a)|) Σ_{p∈P(a)} [logits_ap − log Σ_{b∈N(a)} exp(logits_ab)] per anchor, [2B]."""
  lse = jax.nn.logsumexp(jnp.where(den, logits, -jnp.inf), axis=1)
  npos = jnp.sum(pos, axis=1)
  return -(jnp.sum(jnp.where(pos, logits, 0.0), axis=1) / npos - lse)


def supcon_loss(z: jax.Array, labels: jax.Array, temperature: float = 0.1, base_temperature: float = 0.1):
  """Warm-up SupCon on classes (SBCL `SupConLoss`, `SupConLoss`, T = T_b = 0.1), scalar.

    s_ab = z_a·z_b,  z [2B, d] (view 1 rows then view 2 rows, unit-norm),  labels y [B] or [2B]
    ℓ_a = −(1/|P(a)|) Σ_{p∈P(a)} [ s_ap/T − log Σ_{b≠a} exp(s_ab/T) ],  P(a) = {b ≠ a : y_b = y_a}  (∋ a')
    L = (T/T_b) · mean_a ℓ_a
  """
  n2 = z.shape[0]
  y = _per_anchor(labels, n2)
  eye = jnp.eye(n2, dtype=bool)
  logits = (z @ z.T) / temperature
  pos = (y[:, None] == y[None, :]) & ~eye
  return (temperature / base_temperature) * jnp.mean(_supcon_terms(logits, pos, ~eye))


def sbcl_loss(z: jax.Array, labels: jax.Array, sub_labels: jax.Array, class_temps: jax.Array,
              temperature: float = 0.1, base_temperature: float = 0.07, gamma: float = 0.25):
  """SBCL bi-granularity loss, CIFAR default (SBCL `SupConLoss_rank`, `SupConLoss_rank`), scalar.

    z [2B, d] unit rows (view 1 then view 2, a' = the other view of a's image); y [B]|[2B] classes, k [B]|[2B]
    global subclasses, class_temps τ_c [C] (SBCL `SimCLR/main.py`); τ = 0.1, τ_b = 0.07, γ = 0.25 (constructor defaults;
    the
    script does not pass --temperature here, the SBCL code's known issues).
    ℓ1(a) = −(1/|P1(a)|) Σ_{p∈P1(a)} [ s_ap/τ − log Σ_{b≠a} exp(s_ab/τ) ],   P1(a) = {b ≠ a : k_b = k_a}
    t = τ_{y_a};  N2(a) = {a'} ∪ {b : k_b ≠ k_a};  P2(a) = {a'} ∪ {b : y_b = y_a, k_b ≠ k_a}
    ℓ2(a) = −(1/|P2(a)|) Σ_{p∈P2(a)} [ s_ap/t − log Σ_{b∈N2(a)} exp(s_ab/t) ]
    L = (1/2B) Σ_a [ (τ/τ_b)·ℓ1(a) + γ·ℓ2(a) ]
  """
  n2 = z.shape[0]
  B = n2 // 2
  y = _per_anchor(labels, n2)
  k = _per_anchor(sub_labels, n2)
  eye = jnp.eye(n2, dtype=bool)
  other_view = jnp.roll(eye, B, axis=1)                                # column a' = (a + B) mod 2B
  s = z @ z.T
  same_k = k[:, None] == k[None, :]
  same_y = y[:, None] == y[None, :]
  l1 = _supcon_terms(s / temperature, same_k & ~eye, ~eye)
  t = jnp.asarray(class_temps, s.dtype)[y][:, None]
  l2 = _supcon_terms(s / t, other_view | (same_y & ~same_k), other_view | ~same_k)
  return jnp.mean((temperature / base_temperature) * l1 + gamma * l2)


def sbcl_ccl_loss(z: jax.Array, labels: jax.Array, sub_labels: jax.Array, temperature: float = 0.1,
                  base_temperature: float = 0.07, gamma: float = 0.25, class_temperature: float = 0.1):
  """SBCL alternative `SupConLoss_ccl` (SBCL `SupConLoss_ccl`, `--train_rule` ≠ Rank), scalar. No class temperatures.

    ℓ1(a) as in `sbcl_loss` (SupCon on subclasses, τ = 0.1);  ℓ^SC(a) = class-level SupCon at T = 0.1 (denominator
    all b ≠ a, positives all same-class b ≠ a)
    L = mean_a [ (τ/τ_b)·ℓ1(a) + γ·ℓ^SC(a) ]      (τ_b = 0.07, γ = 0.25)
  = supcon_loss(z, k, τ, τ_b) + γ·supcon_loss(z, y, T, T).
  """
  return (supcon_loss(z, sub_labels, temperature, base_temperature)
          + gamma * supcon_loss(z, labels, class_temperature, class_temperature))
