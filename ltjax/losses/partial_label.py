"""Partial-label losses and table updates: CORR, RECORDS, RECORDS+mixup, SoLar's Sinkhorn (RECORDS
`utils/utils_loss.py::CORR_loss`; RECORDS `train_solar.py`, quirks the RECORDS code's known issues).

Pure jnp functions, jit-able. The confidence table `W [N, C]` lives in the method state; the caller gathers the
batch rows `w = W[idx]` (`[B, C]`) and scatters the returned rows back. Logits are computed in float32. Table rows,
candidate masks and priors are treated as constants (`stop_gradient`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

EPS = 1e-9


def _f32(x):
  return jnp.asarray(x, jnp.float32)


# ---------------------------------------------------------------------------------------------------------- CORR
# RECORDS `utils/utils_loss.py::CORR_loss`
def corr_loss_terms(logits_w, logits_s, targets):
  """The two CORR terms (RECORDS `utils/utils_loss.py::CORR_loss`). logits_w, logits_s `[B, C]` (weak / strong view),
  targets w `[B, C]` (table rows,
  taken before any update) → (L_neg, L_con) float32 scalars, with p = softmax(o), p̃ = softmax(õ):

    L_neg = (1/B) Σ_i Σ_j [w_ij = 0]·( −log(|1 − p_ij| + 1e-9) − log(|1 − p̃_ij| + 1e-9) )
    L_con = (1/B) Σ_i Σ_{j: w_ij>0} w_ij (log w_ij − log p_ij) + (same with p̃)      (KL, `batchmean`)

  The negative mask is "current confidence is exactly 0" (not "non-candidate"), the RECORDS code's known issues."""
  w = lax.stop_gradient(_f32(targets))
  b = w.shape[0]
  logp = jax.nn.log_softmax(_f32(logits_w), axis=-1)
  logps = jax.nn.log_softmax(_f32(logits_s), axis=-1)
  p, ps = jnp.exp(logp), jnp.exp(logps)
  neg = (w == 0).astype(jnp.float32)
  l_neg = jnp.sum(neg * (-jnp.log(jnp.abs(1.0 - p) + EPS) - jnp.log(jnp.abs(1.0 - ps) + EPS))) / b
  pos = w > 0
  logw = jnp.log(jnp.where(pos, w, 1.0))
  kl = jnp.where(pos, w * (logw - logp), 0.0) + jnp.where(pos, w * (logw - logps), 0.0)
  l_con = jnp.sum(kl) / b
  return l_neg, l_con


def corr_loss(logits_w, logits_s, targets):
  """CORR loss (RECORDS `utils/utils_loss.py::CORR_loss`): L = L_neg + L_con (unit weights, no ramp-up); see
  `corr_loss_terms`. → float32 scalar."""
  l_neg, l_con = corr_loss_terms(logits_w, logits_s, targets)
  return l_neg + l_con


def corr_update(logits_w, logits_s, targets, do_update=True):
  """CORR confidence update (RECORDS `utils/utils_loss.py::CORR_loss`). logits `[B, C]` ×2, targets w `[B, C]` → new
  rows `[B, C]`:

    u_ij = [w_ij > 0]·sqrt(p_ij·p̃_ij),   w_i ← u_i / (Σ_j u_ij + 1e-9)

  Support = current non-zero entries (the RECORDS code's known issues). `do_update` (bool scalar, may be traced; `epoch
  >= upd_start`):
  when False the rows are returned unchanged. No gradient."""
  w = _f32(targets)
  p = jax.nn.softmax(_f32(logits_w), axis=-1)
  ps = jax.nn.softmax(_f32(logits_s), axis=-1)
  u = jnp.where(w > 0, jnp.sqrt(p * ps), 0.0)
  new = u / (jnp.sum(u, axis=-1, keepdims=True) + EPS)
  return lax.stop_gradient(jnp.where(do_update, new, w))


# ------------------------------------------------------------------------------------------------------- RECORDS
# RECORDS `CORR_loss_RECORDS`
def records_feature_mean(feat_mean, features_w, features_s, momentum=0.9):
  """Momentum feature mean, every step (RECORDS `CORR_loss_RECORDS`). feat_mean f̄ `[D]` (zeros initially), features
  `[B, D]` ×2 → `[D]`:

    g = mean_i (f^w_i + f^s_i)/2,    f̄ ← m·f̄ + (1 − m)·g

  Started from zero with no bias correction, so the first value is (1 − m)·g (the RECORDS code's known issues). No
  gradient."""
  g = jnp.mean((_f32(features_w) + _f32(features_s)) / 2.0, axis=0)
  return lax.stop_gradient(momentum * _f32(feat_mean) + (1.0 - momentum) * g)


def records_prior(feat_mean, fc_kernel, fc_bias):
  """Current class-prior estimate (RECORDS `CORR_loss_RECORDS`): π = softmax(f̄ W + b) with the *current* classifier.
  feat_mean `[D]`, fc_kernel `[D, C]` (flax layout; PyTorch's weight transposed), fc_bias `[C]` → `[C]`. No gradient."""
  return lax.stop_gradient(jax.nn.softmax(_f32(feat_mean) @ _f32(fc_kernel) + _f32(fc_bias), axis=-1))


def records_adjust_logits(logits, prior):
  """Debiased logits (RECORDS `CORR_loss_RECORDS`, also the test-time adjustment): o − log(π + 1e-9). logits `[B, C]`,
  prior `[C]`."""
  return _f32(logits) - jnp.log(_f32(prior) + EPS)


def records_update(logits_w, logits_s, candidates, prior, targets=None, do_update=True):
  """RECORDS debiased confidence update (RECORDS `CORR_loss_RECORDS`). logits `[B, C]` ×2, candidates `[B, C]` (rows of
  the *initial*
  candidate mask / frozen initial table: support is `> 0`), prior π `[C]` → new rows `[B, C]`:

    q = softmax(o − log(π+1e-9)),  q̃ = softmax(õ − log(π+1e-9)),  v_ij = [j ∈ S_i]·q_ij·q̃_ij
    v ← v/(Σ_j v + 1e-9);  v ← sqrt(v);  v ← v/(Σ_j v + 1e-9)

  Labels whose confidence fell to 0 can re-enter (support = initial set, the RECORDS code's known issues). With
  `do_update` False
  (`epoch < upd_start`) `targets` (required then) is returned unchanged. No gradient."""
  q = jax.nn.softmax(records_adjust_logits(logits_w, prior), axis=-1)
  qs = jax.nn.softmax(records_adjust_logits(logits_s, prior), axis=-1)
  v = jnp.where(_f32(candidates) > 0, q * qs, 0.0)
  v = v / (jnp.sum(v, axis=-1, keepdims=True) + EPS)
  v = jnp.sqrt(v)
  v = v / (jnp.sum(v, axis=-1, keepdims=True) + EPS)
  if targets is None:
    return lax.stop_gradient(v)
  return lax.stop_gradient(jnp.where(do_update, v, _f32(targets)))


# --------------------------------------------------------------------------------------------------------- mixup
# RECORDS `CORR_loss_RECORDS_mixup`
def mixup_lambda(beta):
  """λ = max(β, 1 − β) for β ~ Beta(4, 4) (drawn by the caller; RECORDS `CORR_loss_RECORDS_mixup`, also SoLar RECORDS
  `train_solar.py`)."""
  return jnp.maximum(beta, 1.0 - beta)


def mix(x, perm, lam):
  """λ·x + (1 − λ)·x[perm] along axis 0 (images or target rows `[B, ...]`; perm `[B]` int)."""
  x = jnp.asarray(x)
  return lam * x + (1.0 - lam) * x[perm]


def records_mixup_loss(logits_w, logits_s, targets, logits_w_mix, logits_s_mix, targets_mix, alpha=1.0,
                       mixed_on=True):
  """RECORDS + mixup loss (RECORDS `CORR_loss_RECORDS_mixup`): L = L_CORR(o, õ; w) + α·[mixed_on]·L_CORR(o_mix, õ_mix;
  w_mix), all `[B, C]`.
  w_mix = mix(w, perm, λ) from the rows *before* this step's update; its negative mask is [w_mix = 0]; α = `--alpha`
  (loss weight, not the Beta parameter); `mixed_on` = (epoch ≥ upd_start), may be traced."""
  base = corr_loss(logits_w, logits_s, targets)
  mixed = corr_loss(logits_w_mix, logits_s_mix, targets_mix)
  return base + jnp.where(mixed_on, alpha * mixed, 0.0)


# --------------------------------------------------------------------------------------------------------- SoLar
# RECORDS `train_solar.py`
def solar_scores(logits_w, candidates):
  """SoLar per-step scores (RECORDS `train_solar.py`). logits_w `[B, C]`, candidates Y `[B, C]` → (M, conf_rn) both `[B,
  C]`:
  M = softmax(o^w) ⊙ Y (Sinkhorn input / queue rows),  conf_rn = M / Σ_j M_ij (the PRODEN-style new table rows)."""
  m = jax.nn.softmax(_f32(logits_w), axis=-1) * _f32(candidates)
  return lax.stop_gradient(m), lax.stop_gradient(m / jnp.sum(m, axis=-1, keepdims=True))


def solar_queue_push(queue, rows):
  """FIFO score queue (RECORDS `train_solar.py`): shift down by B, put `rows [B, C]` on top. queue `[L, C]` → `[L,
  C]`."""
  b = rows.shape[0]
  return jnp.concatenate([_f32(rows), queue[:-b]], axis=0)


def solar_queue_full(queue):
  """The queue counts as full when its last row is non-zero (RECORDS `train_solar.py`). → bool scalar."""
  return jnp.any(queue[-1] != 0)


def _sinkhorn_core(scores, r_in, power, num_iters):
  ps = _f32(scores).T ** power  # [C, N]
  n = ps.shape[1]
  inv_n = 1.0 / n
  r_init = _f32(r_in)
  c = jnp.full((n,), inv_n, jnp.float32)

  def body(_, carry):
    c, _r = carry
    r = r_init / (ps @ c)
    c_new = inv_n / (r @ ps)
    return c_new, r

  c, r = lax.fori_loop(0, num_iters, body, (c, r_init))
  q = n * c[:, None] * ps.T * r[None, :]
  # Upstream checks isnan(Σc_new + Σr) at iterations 10, 20, …; NaN is sticky through the iteration, so checking the
  # final values is equivalent.
  bad = jnp.isnan(jnp.sum(c) + jnp.sum(r))
  return q, bad


def sinkhorn(scores, r_in, power=3.0, num_iters=50):
  """SoLar's Sinkhorn label refinery (RECORDS `train_solar.py`). scores `[N, C]` (non-negative, e.g. [queue; M]), target
  row marginal
  r `[C]` (the class prior `emp_dist`) → (Q `[N, C]`, nan_fallback bool):

    P = (scores^T)^power  [C, N],  c = 1/N;  repeat num_iters: r' = r / (P c),  c = (1/N) / (r'^T P)
    Q = N · diag(c) P^T diag(r')          (rows sum to 1, column sums ≈ N·r)

  Always `num_iters` iterations (the upstream err < 0.1 exit is dead code, the RECORDS code's known issues). If the
  result is NaN, it is
  recomputed once on `scores + 1e-5·[scores = 0]` and the originally-zero entries are zeroed afterwards (no
  renormalisation). Pseudo-labels for the batch are the last B rows. No gradient."""
  scores = lax.stop_gradient(_f32(scores))
  q, bad = _sinkhorn_core(scores, r_in, power, num_iters)

  def relaxed(_):
    q2, _ = _sinkhorn_core(scores + 1e-5 * (scores == 0), r_in, power, num_iters)
    return q2 * (scores != 0)

  q = lax.cond(bad, relaxed, lambda _: q, None)
  return lax.stop_gradient(q), bad


def soft_cross_entropy(logits, targets):
  """mean_i −Σ_j t_ij log softmax(o_i)_j (SoLar's rn / ps / L_cons / L_mix terms, RECORDS `train_solar.py`). `[B, C]` ×2
  → scalar."""
  return jnp.mean(solar_per_example_ce(logits, targets))


def solar_per_example_ce(logits, targets):
  """−Σ_j t_ij log softmax(o_i)_j → `[B]` (rn_i with t = W rows; ps_i with t = Q rows)."""
  return -jnp.sum(lax.stop_gradient(_f32(targets)) * jax.nn.log_softmax(_f32(logits), axis=-1), axis=-1)
