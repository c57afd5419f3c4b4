"""SoLar (Wang et al., NeurIPS 2022; official `train_solar.py`): Sinkhorn pseudo-labels under the online class prior,
per-class small-loss selection, the three-term loss and the PRODEN-style table update, in two stages in one run
(see the package's `records.py` docstring for the state both methods share)."""

from __future__ import annotations

import logging
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax import lax

from ltjax.errors import ConfigError
from ltjax.losses import partial_label as rec
from ltjax.methods.records.common import (PartialLabelMethod, method_section, partial_label_defaults,
                                          validate_partial_label)

log = logging.getLogger("ltjax")


def solar_selection(q, ps, prior, rho, batch_size):
  """Per-class small-loss selection (RECORDS `train_solar.py`), `[B]` bool: for each class j with n_j ≥ 1 samples whose
  argmax Q_i = j,
  the max(min(⌈batch_size·prior_j·ρ⌉, n_j), 1) samples of smallest ps (ties: lower index first)."""
  cls = jnp.argmax(q, axis=-1)
  c = q.shape[-1]
  same = cls[:, None] == cls[None, :]
  i = jnp.arange(cls.shape[0])
  before = (ps[None, :] < ps[:, None]) | ((ps[None, :] == ps[:, None]) & (i[None, :] < i[:, None]))
  rank = jnp.sum(same & before, axis=1)
  n = jnp.bincount(cls, length=c)
  quota = jnp.maximum(jnp.minimum(jnp.ceil(batch_size * prior * rho), n), 1)
  return rank < quota[cls]


def _reset_count(fresh, old):
  """The fresh optimizer state with every `count` leaf (schedule step counters) taken from the old one."""
  def pick(path, new, prev):
    last = path[-1] if path else None
    return prev if getattr(last, "name", None) == "count" else new
  return jax.tree_util.tree_map_with_path(pick, fresh, old)


class SoLar(PartialLabelMethod):
  """SoLar (w/ mixup), the two-stage `train_solar.py` in one run: stage 1 = epochs [0, est_epochs), stage 2 = the
  rest; train.epochs = est_epochs + `--epochs`; optim.schedule 'records_cosine' with restart_epoch = est_epochs."""

  name = "solar"

  @staticmethod
  def config_defaults():
    c = ml_collections.ConfigDict()
    partial_label_defaults(c)
    c.queue_length = 64  # × batch size rows of class scores (--queue_length)
    c.lamd = 3.0  # Sinkhorn power (--lamd)
    c.sinkhorn_iters = 50
    c.eta = 0.9  # (--eta)
    c.tau = 0.99  # high-confidence threshold (--tau)
    c.rho_start = 0.2  # (--rho_range)
    c.rho_end = 0.8
    c.gamma1 = 0.1  # prior EMA weight, pre-estimation stage (--gamma)
    c.gamma2 = 0.01  # prior EMA weight, final stage
    c.warmup_epoch = 50  # ramp length of η and ρ (--warmup_epoch)
    c.est_epochs = 20  # pre-estimation epochs (--est_epochs); 0 = single stage from the uniform prior
    return c

  @staticmethod
  def validate(cfg) -> None:
    s = method_section(cfg, SoLar)
    validate_partial_label(s, cfg)
    if s.est_epochs < 0 or cfg.train.epochs <= s.est_epochs:
      raise ConfigError(f"config.train.epochs = {cfg.train.epochs} must exceed config.solar.est_epochs = "
                        f"{s.est_epochs} (train.epochs = est_epochs + the final stage's --epochs)")
    if cfg.optim.schedule == "records_cosine" and cfg.optim.restart_epoch != s.est_epochs:
      raise ConfigError(f"SoLar restarts the cosine schedule with its second stage: set config.optim.restart_epoch "
                        f"= config.solar.est_epochs = {s.est_epochs} (got {cfg.optim.restart_epoch})")
    if not cfg.data.drop_remainder:
      raise ConfigError("SoLar's queue and quotas assume full batches (upstream drop_last=True): set "
                        "config.data.drop_remainder = True")
    if s.queue_length < 1 or s.lamd <= 0 or s.sinkhorn_iters < 1 or s.warmup_epoch < 0:
      raise ConfigError("config.solar needs queue_length >= 1, lamd > 0, sinkhorn_iters >= 1, warmup_epoch >= 0")
    for k in ("eta", "rho_start", "rho_end", "gamma1", "gamma2"):
      if not 0.0 <= s[k] <= 1.0:
        raise ConfigError(f"config.solar.{k} = {s[k]} must lie in [0, 1]")

  def _stage_epoch(self, epoch: int) -> int:
    est = int(self.s.est_epochs)
    return epoch - est if est and epoch >= est else epoch

  def _ramp(self, e: int) -> float:
    w = int(self.s.warmup_epoch)
    return 1.0 if w == 0 else float(np.clip(e / w, 0.0, 1.0))

  def init_state(self, rng, prior: Optional[np.ndarray] = None):
    state = self._tables()
    c = self.num_classes
    state["queue"] = jnp.zeros((int(self.s.queue_length) * int(self.cfg.train.batch_size), c), jnp.float32)
    state["prior"] = jnp.asarray(np.full(c, 1.0 / c) if prior is None else prior, jnp.float32)
    state["prior_epoch"] = jnp.zeros([], jnp.int32)  # the epoch whose start-of-epoch prior update is applied
    return state

  def epoch_hparams(self, epoch: int):
    e = self._stage_epoch(epoch)
    r = self._ramp(e)
    s = self.s
    return {"eta": np.float32(s.eta * r), "rho": np.float32(s.rho_start + (s.rho_end - s.rho_start) * r),
            "first": np.asarray(e < 1, np.bool_)}

  def estimate_prior(self, logits: np.ndarray) -> np.ndarray:
    """emp_train = histogram(argmax softmax(o) ⊙ Y)/N on the un-augmented training set (RECORDS `train_solar.py`).
    float64 [C]."""
    p = np.exp(logits - logits.max(1, keepdims=True))
    p = p / p.sum(1, keepdims=True)
    yhat = np.argmax(p * self.candidates, axis=1)
    return np.bincount(yhat, minlength=self.num_classes) / float(len(yhat))

  def on_epoch_start(self, epoch, state, run):
    if epoch == 0 or int(jax.device_get(state.method_state["prior_epoch"])) == epoch:
      return state  # nothing before the first epoch; already applied (resumed inside this epoch)
    from ltjax.train import step as step_lib
    p = run.predict(state, "train")
    order = np.argsort(p["index"])
    emp_train = self.estimate_prior(p["logits"][order])
    gamma = self.s.gamma1 if (epoch - 1) < self.s.est_epochs else self.s.gamma2
    emp = gamma * emp_train + (1.0 - gamma) * np.asarray(jax.device_get(state.method_state["prior"]), np.float64)
    if self.s.est_epochs and epoch == self.s.est_epochs:  # stage 2: new model, optimizer, table, queue
      log.info("SoLar: pre-estimation done after %d epochs, prior %s; starting the final stage", epoch,
               np.round(emp, 4).tolist())
      image = run.data.example_input()
      key = jax.random.fold_in(jax.random.PRNGKey(self.cfg.seed), 0x501a)
      variables = jax.jit(lambda r, x: run.model.init(r, x, train=False))(key, image)
      params = variables["params"]
      ms = self.init_state(None, prior=emp)
      ms["prior_epoch"] = jnp.asarray(epoch, jnp.int32)
      state = state.replace(params=params, batch_stats=variables.get("batch_stats", {}),
                            opt_state=_reset_count(run.tx.init(params), state.opt_state), method_state=ms)
    else:
      ms = dict(state.method_state, prior=jnp.asarray(emp, jnp.float32),
                prior_epoch=jnp.asarray(epoch, jnp.int32))
      state = state.replace(method_state=ms)
    return jax.device_put(state, step_lib.replicated(run.mesh))

  def loss(self, apply_fn, params, batch_stats, method_state, batch, hparams, rng):
    s = self.s
    x_w, x_s, idx, y = batch["image"], batch["image_strong"], batch["index"], batch["label"]
    b = x_w.shape[0]
    cand, w = method_state["candidates"][idx], method_state["confidence"][idx]
    queue, prior = method_state["queue"], method_state["prior"]
    out_w, v1 = apply_fn({"params": params, "batch_stats": batch_stats}, x_w, train=True, mutable=["batch_stats"])
    out_s, v2 = apply_fn({"params": params, "batch_stats": v1["batch_stats"]}, x_s, train=True,
                         mutable=["batch_stats"])
    o_w, o_s = out_w["logits"], out_s["logits"]
    rn = rec.solar_per_example_ce(o_w, w)
    m, conf_rn = rec.solar_scores(o_w, cand)

    def with_queue(_):
      q, bad = rec.sinkhorn(jnp.concatenate([queue, m], 0), prior, s.lamd, s.sinkhorn_iters)
      return q[-b:], bad

    def alone(_):
      return rec.sinkhorn(m, prior, s.lamd, s.sinkhorn_iters)

    q, nan_fallback = lax.cond(rec.solar_queue_full(queue), with_queue, alone, None)
    new_queue = rec.solar_queue_push(queue, m)
    ps = rec.solar_per_example_ce(o_w, q)
    prob = lax.stop_gradient(jax.nn.softmax(o_w, axis=-1))
    sel = solar_selection(q, lax.stop_gradient(ps), prior, hparams["rho"], b)
    sel = sel | (jnp.sum(q * prob, axis=-1) > s.tau)
    self_f = sel.astype(jnp.float32)
    n_sel = jnp.sum(self_f)
    n_uns = b - n_sel
    loss_sin = jnp.sum(self_f * ps) / jnp.maximum(n_sel, 1.0)
    loss_cons = jnp.sum(self_f * rec.solar_per_example_ce(o_s, q)) / jnp.maximum(n_sel, 1.0)
    loss_unrel = jnp.sum((1.0 - self_f) * rn) / jnp.maximum(n_uns, 1.0)
    # Mixup among the selected samples: position k < n_sel pairs the k-th selected sample with the k-th of a random
    # permutation of them; positions k >= n_sel repeat selected pairs so the forward has a static batch of B rows
    # (upstream forwards only the n_sel mixed rows, so its BatchNorm batch is smaller; docs/DEVIATIONS.md).
    k_beta, k_perm = jax.random.split(rng)
    lam = rec.mixup_lambda(jax.random.beta(k_beta, 4.0, 4.0))
    comp = jnp.argsort(jnp.where(sel, 0, 1), stable=True)
    partner = jnp.argsort(jnp.where(sel, jax.random.uniform(k_perm, (b,)), 2.0))
    pos = jnp.arange(b)
    n_int = jnp.maximum(n_sel.astype(jnp.int32), 1)
    pos = jnp.where(pos < n_int, pos, pos % n_int)
    a_i, b_i = comp[pos], partner[pos]
    x_mix = lam * x_w[a_i] + (1.0 - lam) * x_w[b_i]
    q_mix = lam * q[a_i] + (1.0 - lam) * q[b_i]
    out_m, v3 = apply_fn({"params": params, "batch_stats": v2["batch_stats"]}, x_mix, train=True,
                         mutable=["batch_stats"])
    valid = (jnp.arange(b) < n_sel).astype(jnp.float32)
    loss_mix = jnp.sum(valid * rec.solar_per_example_ce(out_m["logits"], q_mix)) / jnp.maximum(n_sel, 1.0)
    full = jnp.logical_and(jnp.logical_not(hparams["first"]), n_sel > 0)
    eta = hparams["eta"]
    loss = jnp.where(full, eta * (loss_sin + loss_mix + loss_cons) + (1.0 - eta) * loss_unrel, jnp.mean(rn))
    new_bs = jax.tree.map(lambda a, c: jnp.where(full, a, c), v3["batch_stats"], v2["batch_stats"])
    new_state = dict(method_state, queue=new_queue, confidence=method_state["confidence"].at[idx].set(conf_rn))
    metrics = {"accuracy": jnp.mean(jnp.argmax(o_w, -1) == y), "sinkhorn_accuracy": jnp.mean(jnp.argmax(q, -1) == y),
               "selected_fraction": n_sel / b, "loss_rn": jnp.mean(rn), "loss_sinkhorn": jnp.mean(ps),
               "sinkhorn_nan_fallback": nan_fallback.astype(jnp.float32)}
    return loss, (new_bs, new_state, metrics)
