"""Diagnostics of a long-tailed classifier, as pure jnp functions over features, labels, logits and the classifier.

Shapes: features F [N, D], labels y [N] int, logits Z [N, C], classifier W [D, C] (columns w_c).

Neural-collapse geometry (Papyan et al. 2020; the quantities ARB-Loss's paper reasons about), over the classes
present in y (C' of them):
  μ_G = mean_i f_i,   μ_c = mean_{i: y_i = c} f_i,   m_c = μ_c − μ_G
  NC1 = tr(Σ_W Σ_B^†)/C'    with Σ_W = (1/N) Σ_i (f_i − μ_{y_i})(f_i − μ_{y_i})ᵀ, Σ_B = (1/C') Σ_c m_c m_cᵀ
  equinorm = std_c ‖m_c‖ / mean_c ‖m_c‖ (likewise ‖w_c‖)
  cos(m_c, m_c') over pairs c ≠ c': mean and std (a simplex ETF has every cosine = −1/(C'−1))
  NC3 = ‖ Wᵀ/‖W‖_F − M/‖M‖_F ‖²_F  (classifier–mean alignment; M rows m_c)
Pairwise cosine statistics use ‖Σ_c u_c‖² and ‖UᵀU‖²_F (D×D), never the C×C matrix, so they cost O(C·D²) and run
for 8,142 classes.

Attraction/repulsion gradient components (ARB `train_stage1.py`), for class row c and sample class j:
  G[c, j] = ‖ Σ_{i: y_i = j} q_ic f_i ‖₂,   q_ic = w_ic e^{z_ic} / Σ_k w_ik e^{z_ik} − 1{c = y_i}
with w ≡ 1 for CE and w_ic = n_c / n_{y_i} for ARB. G[c, c] is the attraction of class c's samples to w_c, G[c, j≠c]
the repulsion from class j's samples. Computed per class j from the within-class Gram matrix:
  G[c, j]² = Σ_{i,i' ∈ j} q_ic q_i'c ⟨f_i, f_i'⟩,
batched over classes with lax.map, so memory is O(chunk·n_max·C), not O(C²·D).
"""

from __future__ import annotations

from typing import Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np


def class_means(features, labels, num_classes: int):
  """(means [C, D], counts [C]); absent classes get a zero mean and count 0."""
  f = jnp.asarray(features, jnp.float32)
  counts = jnp.zeros([num_classes], jnp.float32).at[labels].add(1.0)
  sums = jnp.zeros([num_classes, f.shape[1]], jnp.float32).at[labels].add(f)
  return sums / jnp.maximum(counts, 1.0)[:, None], counts


def _pair_cosine_stats(u, present):
  """Mean and std of cos(u_c, u_c') over ordered pairs c ≠ c' of present rows, without the C×C matrix."""
  n = jnp.sum(present)
  un = jnp.where(present[:, None], u / jnp.maximum(jnp.linalg.norm(u, axis=1, keepdims=True), 1e-12), 0.0)
  s1 = jnp.sum(jnp.square(jnp.sum(un, axis=0))) - n  # Σ_{c≠c'} cos
  g = un.T @ un
  s2 = jnp.sum(jnp.square(g)) - n  # Σ_{c≠c'} cos²
  pairs = n * (n - 1)
  mean = s1 / pairs
  return mean, jnp.sqrt(jnp.maximum(s2 / pairs - mean ** 2, 0.0))


def _equinorm(norms, present):
  n = jnp.sum(present)
  mean = jnp.sum(jnp.where(present, norms, 0.0)) / n
  var = jnp.sum(jnp.where(present, (norms - mean) ** 2, 0.0)) / n
  return jnp.sqrt(var) / mean


def neural_collapse(features, labels, classifier: Optional[jax.Array], num_classes: int) -> Dict[str, jax.Array]:
  """NC1, equinorm, equiangularity of class means and classifier vectors, NC3 (see module docstring)."""
  f = jnp.asarray(features, jnp.float32)
  means, counts = class_means(f, labels, num_classes)
  present = counts > 0
  n_present = jnp.sum(present)
  mu_g = jnp.mean(f, axis=0)
  m = jnp.where(present[:, None], means - mu_g, 0.0)
  within = f - means[labels]
  sigma_w = within.T @ within / f.shape[0]
  sigma_b = m.T @ m / n_present
  nc1 = jnp.trace(sigma_w @ jnp.linalg.pinv(sigma_b, hermitian=True)) / n_present
  mean_norms = jnp.linalg.norm(m, axis=1)
  cos_mean, cos_std = _pair_cosine_stats(m, present)
  out = {
      "nc1": nc1,
      "within_class_var": jnp.trace(sigma_w),
      "between_class_var": jnp.trace(sigma_b),
      "mean_norm_cv": _equinorm(mean_norms, present),
      "mean_cos_avg": cos_mean,
      "mean_cos_std": cos_std,
      "etf_cos": -1.0 / (n_present - 1),
      "mean_norms": mean_norms,
  }
  if classifier is not None:
    w = jnp.asarray(classifier, jnp.float32).T  # [C, D]
    w_norms = jnp.linalg.norm(w, axis=1)
    wc_mean, wc_std = _pair_cosine_stats(w, present)
    wp = jnp.where(present[:, None], w, 0.0)
    nc3 = jnp.sum(jnp.square(wp / jnp.linalg.norm(wp) - m / jnp.linalg.norm(m)))
    out.update(classifier_norm_cv=_equinorm(w_norms, present), classifier_cos_avg=wc_mean,
               classifier_cos_std=wc_std, nc3=nc3, classifier_norms=w_norms,
               classifier_mean_cos=jnp.sum(w * m, 1) / jnp.maximum(w_norms * mean_norms, 1e-12))
  return out


def gradient_coefficients(logits, labels, counts: Optional[jax.Array] = None):
  """q [N, C]: q_ic = w_ic e^{z_ic}/Σ_k w_ik e^{z_ik} − 1{c = y_i} (w ≡ 1 when counts is None, else n_c/n_{y_i})."""
  z = jnp.asarray(logits, jnp.float32)
  if counts is not None:
    n = jnp.asarray(counts, jnp.float32)
    logw = jnp.where(n > 0, jnp.log(jnp.where(n > 0, n, 1.0)), -jnp.inf)
    z = z + logw  # the w_ic factor; the 1/n_{y_i} cancels in the normalisation
  p = jax.nn.softmax(z, axis=-1)
  return p - jax.nn.one_hot(labels, z.shape[-1], dtype=jnp.float32)


def _class_blocks(labels: np.ndarray, num_classes: int):
  """[C, n_max] example indices per class (padding −1), host side."""
  labels = np.asarray(labels)
  order = np.argsort(labels, kind="stable")
  counts = np.bincount(labels, minlength=num_classes)
  n_max = max(int(counts.max()), 1)
  blocks = -np.ones([num_classes, n_max], np.int64)
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  for c in range(num_classes):
    blocks[c, :counts[c]] = order[starts[c]:starts[c] + counts[c]]
  return blocks


def gradient_components(features, logits, labels, counts: Optional[jax.Array] = None, chunk: int = 64):
  """G [C, C] with G[c, j] = ‖Σ_{i: y_i = j} q_ic f_i‖₂ (rows: classifier class c; columns: sample class j)."""
  f = jnp.asarray(features, jnp.float32)
  q = gradient_coefficients(logits, labels, counts)
  num_classes = q.shape[1]
  blocks = _class_blocks(np.asarray(labels), num_classes)
  pad = (-num_classes) % chunk
  blocks = np.concatenate([blocks, -np.ones([pad, blocks.shape[1]], np.int64)]).reshape(-1, chunk, blocks.shape[1])
  f_ext = jnp.concatenate([f, jnp.zeros([1, f.shape[1]], f.dtype)])  # row N = zero padding
  q_ext = jnp.concatenate([q, jnp.zeros([1, num_classes], q.dtype)])
  n = f.shape[0]

  def one_chunk(idx):  # idx [chunk, n_max]
    idx = jnp.where(idx < 0, n, idx)
    fj, qj = f_ext[idx], q_ext[idx]  # [k, m, D], [k, m, C]
    gram = jnp.einsum("kmd,knd->kmn", fj, fj)
    sq = jnp.einsum("kmc,kmn,knc->kc", qj, gram, qj)
    return jnp.sqrt(jnp.maximum(sq, 0.0))  # [k, C]: column j of G for each class j in the chunk

  cols = jax.lax.map(one_chunk, jnp.asarray(blocks))  # [chunks, chunk, C]
  return cols.reshape(-1, num_classes)[:num_classes].T


def attraction_repulsion_ratio(g) -> np.ndarray:
  """Per classifier row c of G [C, C] (`gradient_components`): r_c = G[c, c] / Σ_{j≠c} G[c, j], the attraction that
  pulls w_c towards its own class's features over the repulsion that every other class's samples exert on it
  (the ARB-Loss paper's per-class balance; tail rows have r_c ≪ 1 under CE). Row-wise on purpose: summed down a
  column instead, a sample's coefficients q_i· sum to zero and the ratio is ≈ C − 1 for every class. [C] float64;
  inf where a row has no repulsion."""
  g = np.asarray(g, np.float64)
  att = np.diag(g)
  rep = g.sum(1) - att
  with np.errstate(divide="ignore", invalid="ignore"):
    return np.where(rep > 0, att / np.where(rep > 0, rep, 1.0), np.inf)
