"""Long-tailed partial-label learning (RECORDS (Hong et al., ICLR 2023; official code)): CORR, CORR + RECORDS, CORR +
RECORDS + mixup
(`method = "records"`) and SoLar (`method = "solar"`).

Both keep in the method state (so in the replicated train state and in checkpoints):
  confidence  W [N, C] float32  soft pseudo-labels, rows sum to 1, initialised uniform over the candidates (RECORDS'
  pipeline)
  candidates  S [N, C] float32  the initial candidate mask (constant)
and gather the batch rows by the batch's `index`. The candidate sets are generated host side for the long-tailed
training subset (at construction): one `uniform(0, 1, (N, C))` draw on the legacy RandomState of the selection,
continued
right after the per-class shuffles (RECORDS' candidate-set generation), uniform with flip probability q or, for
CIFAR-100 with
`hierarchical`, 8q inside the true label's superclass (CIFAR-100-LT-NU).

records (train.py; every step one forward over [weak; strong] (2B), or [weak; strong; weak_mix; strong_mix] (4B)
with mixup, so BatchNorm sees all views at once):
  L = L_CORR(o, õ; w)  [+ α·[e ≥ upd_start]·L_CORR(o_mix, õ_mix; λw + (1−λ)w[π])]         (RECORDS
  `utils/utils_loss.py::CORR_loss`, RECORDS `CORR_loss_RECORDS_mixup`)
  debias (RECORDS): f̄ ← m f̄ + (1−m)·mean((f^w + f^s)/2) every step, π = softmax(fc(f̄)) with the current fc,
  table update on o − log(π + 1e-9) with the initial candidate support, test logits o − log(π + 1e-9) (RECORDS
  `CORR_loss_RECORDS`);
  plain CORR updates with the current support and tests on raw logits (RECORDS `utils/utils_loss.py::CORR_loss`).
  Updates only when e ≥ upd_start.
solar (train_solar.py, RECORDS `train_solar.py`): separate forwards for weak, strong and mixed batches; FIFO score
queue, Sinkhorn
  pseudo-labels with the online class prior, per-class small-loss selection with ρ/η ramps, τ rule, the three-term
  loss, PRODEN-style table update; per-epoch EMA prior from predictions on the un-augmented training set; two stages
  (pre-estimation for `est_epochs`, then a fresh model, optimizer, table and queue) in one run.

Evaluation adds to the trainer's exact top-1 the official `train.py` figure, `top1_batch_mean` (the unweighted mean
of per-batch accuracies over test batches of 4·batch_size, RECORDS' evaluation, `train.py`; the RECORDS code's known
issues), and SoLar's rank-based groups
`many_rank` / `medium_rank` / `few_rank` (k = round(C/3): 3 for CIFAR-10, 33 for CIFAR-100, RECORDS' evaluation,
`train.py`).
"""


from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ltjax.errors import ConfigError
from ltjax.losses import partial_label as rec
from ltjax.methods.records.common import (PartialLabelMethod, method_section, partial_label_defaults,
                                          validate_partial_label)


class Records(PartialLabelMethod):
  """CORR (debias=False, mixup=False), CORR + RECORDS (debias=True), CORR + RECORDS + mixup (both True)."""

  name = "records"

  @staticmethod
  def config_defaults():
    c = ml_collections.ConfigDict()
    partial_label_defaults(c)
    c.upd_start = 1  # the table is updated from this epoch on (--upd_start)
    c.debias = False  # RECORDS (--records): momentum feature mean, debiased update, test-time adjustment
    c.momentum = 0.9  # m of the feature mean (--m)
    c.mixup = False  # the mixed CORR term (--mixup; needs debias, as upstream)
    c.alpha = 1.0  # weight of the mixed term (--alpha; the Beta(4, 4) parameters are fixed)
    return c

  @staticmethod
  def validate(cfg) -> None:
    s = method_section(cfg, Records)
    validate_partial_label(s, cfg)
    if s.mixup and not s.debias:
      raise ConfigError("config.records.mixup is only defined together with config.records.debias (upstream "
                        "CORR_loss_RECORDS_mixup): set debias = True")
    if not 0.0 <= s.momentum < 1.0:
      raise ConfigError(f"config.records.momentum = {s.momentum} must lie in [0, 1)")
    if s.upd_start < 0 or s.alpha < 0:
      raise ConfigError("config.records.upd_start and alpha must be >= 0")

  def __init__(self, cfg, data, stats):
    super().__init__(cfg, data, stats)
    if self.s.debias:  # the feature width of the model, for f̄
      from ltjax.models import create_model
      model = create_model(self.cfg.model.name, data.num_classes, head="linear", dtype=self.cfg.model.dtype)
      x = jnp.zeros((1,) + self.image_shape, jnp.float32)
      out = jax.eval_shape(lambda: model.apply(model.init(jax.random.PRNGKey(0), x), x))
      self.feature_dim = int(out["features"].shape[-1])

  def init_state(self, rng):
    state = self._tables()
    if self.s.debias:
      state["feat_mean"] = jnp.zeros((self.feature_dim,), jnp.float32)
    return state

  def epoch_hparams(self, epoch: int):
    return {"update": np.asarray(epoch >= self.s.upd_start, np.bool_)}

  def loss(self, apply_fn, params, batch_stats, method_state, batch, hparams, rng):
    s = self.s
    x_w, x_s, idx, y = batch["image"], batch["image_strong"], batch["index"], batch["label"]
    conf = method_state["confidence"]
    w = conf[idx]
    b = x_w.shape[0]
    update = hparams["update"]
    views = [x_w, x_s]
    if s.mixup:
      k_beta, k_perm = jax.random.split(rng)
      lam = rec.mixup_lambda(jax.random.beta(k_beta, 4.0, 4.0))
      perm = jax.random.permutation(k_perm, b)
      views += [rec.mix(x_w, perm, lam), rec.mix(x_s, perm, lam)]
    out, new_vars = apply_fn({"params": params, "batch_stats": batch_stats}, jnp.concatenate(views, 0), train=True,
                             mutable=["batch_stats"])
    logits = out["logits"].reshape((len(views), b) + out["logits"].shape[1:])
    o_w, o_s = logits[0], logits[1]
    l_neg, l_con = rec.corr_loss_terms(o_w, o_s, w)
    loss = l_neg + l_con
    metrics = {"accuracy": jnp.mean(jnp.argmax(o_w, -1) == y), "loss_neg": l_neg, "loss_con": l_con}
    if s.mixup:
      w_mix = rec.mix(w, perm, lam)
      l_mix = rec.corr_loss(logits[2], logits[3], w_mix)
      loss = loss + jnp.where(update, s.alpha * l_mix, 0.0)
      metrics["loss_mix"] = l_mix
    new_state = dict(method_state)
    if s.debias:
      feats = out["features"].reshape((len(views), b, -1))
      f_mean = rec.records_feature_mean(method_state["feat_mean"], feats[0], feats[1], s.momentum)
      prior = rec.records_prior(f_mean, params["fc"]["kernel"], params["fc"]["bias"])
      rows = rec.records_update(o_w, o_s, method_state["candidates"][idx], prior, w, update)
      new_state["feat_mean"] = f_mean
    else:
      rows = rec.corr_update(o_w, o_s, w, update)
    new_conf = conf.at[idx].set(rows)
    new_state["confidence"] = new_conf
    metrics["mean_max_confidence"] = jnp.mean(jnp.max(new_conf, axis=1))
    return loss, (new_vars["batch_stats"], new_state, metrics)

  def eval_logits(self, outputs, method_state, params):
    if not self.s.debias:
      return outputs["logits"]
    prior = rec.records_prior(method_state["feat_mean"], params["fc"]["kernel"], params["fc"]["bias"])
    return rec.records_adjust_logits(outputs["logits"], prior)
