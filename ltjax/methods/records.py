"""Long-tailed partial-label learning (spec SBCL_AND_RECORDS Part B): CORR, CORR + RECORDS, CORR + RECORDS + mixup
(`method = "records"`) and SoLar (`method = "solar"`).

Both keep in the method state (so in the replicated train state and in checkpoints):
  confidence  W [N, C] float32  soft pseudo-labels, rows sum to 1, initialised uniform over the candidates (§B.1)
  candidates  S [N, C] float32  the initial candidate mask (constant)
and gather the batch rows by the batch's `index`. The candidate sets are generated host side for the long-tailed
training subset (`bind_data`): one `uniform(0, 1, (N, C))` draw on the legacy RandomState of the selection, continued
right after the per-class shuffles (§B.2.2), uniform with flip probability q or, for CIFAR-100 with
`hierarchical`, 8q inside the true label's superclass (CIFAR-100-LT-NU).

records (train.py; every step one forward over [weak; strong] (2B), or [weak; strong; weak_mix; strong_mix] (4B)
with mixup, so BatchNorm sees all views at once):
  L = L_CORR(o, õ; w)  [+ α·[e ≥ upd_start]·L_CORR(o_mix, õ_mix; λw + (1−λ)w[π])]         (§B.4, §B.6)
  debias (RECORDS): f̄ ← m f̄ + (1−m)·mean((f^w + f^s)/2) every step, π = softmax(fc(f̄)) with the current fc,
  table update on o − log(π + 1e-9) with the initial candidate support, test logits o − log(π + 1e-9) (§B.5);
  plain CORR updates with the current support and tests on raw logits (§B.4). Updates only when e ≥ upd_start.
solar (train_solar.py, §B.7): separate forwards for weak, strong and mixed batches; FIFO score queue, Sinkhorn
  pseudo-labels with the online class prior, per-class small-loss selection with ρ/η ramps, τ rule, the three-term
  loss, PRODEN-style table update; per-epoch EMA prior from predictions on the un-augmented training set; two stages
  (pre-estimation for `est_epochs`, then a fresh model, optimizer, table and queue) in one run.

Evaluation adds to the trainer's exact top-1 the official `train.py` figure, `top1_batch_mean` (the unweighted mean
of per-batch accuracies over test batches of 4·batch_size, §B.9/§B.12.3), and SoLar's rank-based groups
`many_rank` / `medium_rank` / `few_rank` (k = round(C/3): 3 for CIFAR-10, 33 for CIFAR-100, §B.9).
"""

from __future__ import annotations

import copy
import logging
from typing import Dict, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax import lax

from ltjax import partial_labels as pl
from ltjax.config import ConfigError
from ltjax.losses import records as rec
from ltjax.methods.base import Method

log = logging.getLogger("ltjax")

# Train-view normalisation of the official loaders (§B.2.3); the test transform uses CIFAR-100's for both datasets
# (set config.data.mean / std to CIFAR100_STATS for that, §B.12.1).
CIFAR10_TRAIN_STATS = ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))
CIFAR100_STATS = ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))
VIEWS = ("records", "plain")


# ------------------------------------------------------------------------------------------------- host helpers
def batch_mean_top1(logits: np.ndarray, labels: np.ndarray, batch_size: int) -> float:
  """train.py's test accuracy (§B.9): split order, batches of `batch_size` (the last one smaller), the unweighted
  mean of the per-batch top-1 accuracies, in percent."""
  pred = np.argmax(np.asarray(logits), axis=1)
  correct = pred == np.asarray(labels)
  accs = [correct[i:i + batch_size].mean() for i in range(0, len(correct), batch_size)]
  return float(100.0 * np.mean(accs))


def rank_groups(counts: np.ndarray, k: int) -> Dict[str, np.ndarray]:
  """SoLar's many/medium/few (§B.9): with counts sorted ascending, many = n_c > sorted[C − k − 1],
  few = n_c < sorted[k], medium the rest. Boolean [C] masks."""
  counts = np.asarray(counts)
  s = np.sort(counts)
  many = counts > s[len(s) - k - 1]
  few = counts < s[k]
  return {"many": many, "medium": ~many & ~few, "few": few}


def rank_group_accuracies(logits, labels, counts, k: int) -> Dict[str, float]:
  """Per-class top-1 averaged within each rank group (percent); classes absent from the labels are skipped."""
  pred = np.argmax(np.asarray(logits), axis=1)
  labels = np.asarray(labels)
  c = len(counts)
  acc = np.full(c, np.nan)
  for j in range(c):
    m = labels == j
    if m.any():
      acc[j] = (pred[m] == j).mean()
  out = {}
  for name, g in rank_groups(counts, k).items():
    v = acc[g & ~np.isnan(acc)]
    out[f"{name}_rank"] = float(100.0 * v.mean()) if v.size else 0.0
  return out


def generate_candidates(labels: np.ndarray, num_classes: int, q: float, hierarchical: bool,
                        rng: np.random.RandomState) -> np.ndarray:
  """Candidate sets of §B.2.2 on the given legacy stream (advanced in place): hierarchical (8q / q) for 100 classes
  with `hierarchical`, uniform otherwise (CIFAR-10 ignores `--hierarchical` here, as upstream)."""
  if hierarchical and num_classes == 100:
    s = pl.hierarchical_candidates(labels, q, rng=rng)
  else:
    s = pl.uniform_candidates(labels, num_classes, q, rng=rng)
  return pl.check_candidates(s, labels, require_true=True)


def _pl_defaults(c: ml_collections.ConfigDict) -> None:
  c.partial_rate = 0.1  # q: flip probability of each non-true label into the candidate set (--partial_rate)
  c.hierarchical = False  # CIFAR-100-LT-NU candidates (8q in the superclass); pair with data.count_shuffle_seed
  c.views = "records"  # records (weak/strong of §B.2.3) | plain (both views un-augmented: tiny images, digits)
  c.train_mean = ()  # train-view normalisation; () = config.data.mean / the dataset's
  c.train_std = ()


def _section(cfg, cls):
  if cls.name not in cfg:
    raise ConfigError(f"method '{cls.name}' needs its config section: add `c.{cls.name} = "
                      f"ltjax.methods.records.{cls.__name__}.config_defaults()` to the config")
  return cfg[cls.name]


def _pl_validate(s, cfg) -> None:
  if not 0.0 <= s.partial_rate <= 1.0:  # NaN fails too
    raise ConfigError(f"config.{cfg.method}.partial_rate = {s.partial_rate} must lie in [0, 1] (the flip "
                      "probability q of each non-true label)")
  if s.views not in VIEWS:
    raise ConfigError(f"config.{cfg.method}.views = {s.views!r} is not one of {list(VIEWS)}")
  if len(tuple(s.train_mean)) != len(tuple(s.train_std)):
    raise ConfigError(f"config.{cfg.method}.train_mean and train_std must have the same length")
  if s.hierarchical and cfg.data.count_shuffle_seed < 0:
    raise ConfigError(f"config.{cfg.method}.hierarchical reproduces upstream --hierarchical, which also shuffles the "
                      "class sizes: set config.data.count_shuffle_seed (to config.seed, 123 in the README)")
  if cfg.model.head not in ("auto", "linear"):
    raise ConfigError(f"{cfg.method} uses a linear classifier: set config.model.head to 'linear' or 'auto'")
  if cfg.loss.name != "ce":
    raise ConfigError(f"{cfg.method} has its own loss; leave config.loss.name = 'ce' (it is not used)")
  if cfg.train_rule != "none" or cfg.mixup_alpha != 0:
    raise ConfigError(f"{cfg.method} ignores config.train_rule / config.mixup_alpha: leave them at 'none' / 0 "
                      f"(RECORDS' mixup is config.records.mixup)")


class _PartialLabel(Method):
  """Shared host side: candidate sets, weak/strong views, extra evaluation figures."""

  def __init__(self, cfg, stats, train_labels):
    super().__init__(cfg, stats, train_labels)
    self.s = cfg[self.name]
    self.num_classes = stats.num_classes
    self.candidates: Optional[np.ndarray] = None

  def bind_data(self, data) -> None:
    rng = data.selection_rng
    if rng is None:
      log.warning("%s: the data source gives no selection RandomState; candidate sets use RandomState(%d)",
                  data.name, self.cfg.data.rand_number)
      rng = np.random.RandomState(self.cfg.data.rand_number)
    rng = copy.deepcopy(rng)  # setup() may run more than once on the same Dataset (inspection)
    if self.s.hierarchical and data.num_classes != 100:
      log.info("%s: hierarchical candidate sets need the CIFAR-100 superclasses; using uniform ones (as upstream "
               "for CIFAR-10)", data.name)
    self.candidates = generate_candidates(np.asarray(data.train.labels), data.num_classes,
                                          float(self.s.partial_rate), bool(self.s.hierarchical), rng)
    if data.train.images is None:
      raise ConfigError(f"{self.name} needs an in-memory dataset (CIFAR, digits); '{data.name}' is file-backed")
    self.image_shape = tuple(data.train.images.shape[1:])
    mean = tuple(self.s.train_mean) or tuple(data.mean)
    std = tuple(self.s.train_std) or tuple(data.std)
    if len(mean) != self.image_shape[-1]:
      raise ConfigError(f"config.{self.name}.train_mean {mean} needs one value per image channel "
                        f"({self.image_shape[-1]})")
    self.train_stats = (mean, std)
    log.info("%s: candidate sets for %d examples, mean size %.3f (expected %.3f)", data.name, len(self.candidates),
             self.candidates.sum(1).mean(), self.expected_size())

  def expected_size(self) -> float:
    q, c = float(self.s.partial_rate), self.num_classes
    if self.s.hierarchical and c == 100:
      return 1 + 32 * q + 95 * q
    return 1 + q * (c - 1)

  def _need_data(self):
    if self.candidates is None:
      raise RuntimeError(f"method '{self.name}' needs bind_data(dataset) before init_state (the trainer calls it)")

  def device_augment(self, data):
    from ltjax.data import device_randaugment
    mean, std = self.train_stats
    return device_randaugment.weak_strong(mean, std, size=int(data.train.images.shape[1]), views=self.s.views)

  def train_augment(self, data):
    from ltjax.data import records_augment
    mean, std = self.train_stats
    return records_augment.weak_strong(mean, std, size=int(data.train.images.shape[1]), views=self.s.views)

  def eval_metrics(self, logits, labels) -> Dict[str, float]:
    k = max(1, int(round(self.num_classes / 3)))
    out = {"top1_batch_mean": batch_mean_top1(logits, labels, 4 * int(self.cfg.train.batch_size))}
    out.update(rank_group_accuracies(logits, labels, self.stats.counts, k))
    return out

  def _tables(self):
    self._need_data()
    cand = jnp.asarray(self.candidates, jnp.float32)
    return {"confidence": jnp.asarray(pl.initial_confidence(self.candidates)), "candidates": cand}


# ----------------------------------------------------------------------------------------------------- CORR family
class Records(_PartialLabel):
  """CORR (debias=False, mixup=False), CORR + RECORDS (debias=True), CORR + RECORDS + mixup (both True)."""

  name = "records"

  @staticmethod
  def config_defaults():
    c = ml_collections.ConfigDict()
    _pl_defaults(c)
    c.upd_start = 1  # the table is updated from this epoch on (--upd_start)
    c.debias = False  # RECORDS (--records): momentum feature mean, debiased update, test-time adjustment
    c.momentum = 0.9  # m of the feature mean (--m)
    c.mixup = False  # the mixed CORR term (--mixup; needs debias, as upstream)
    c.alpha = 1.0  # weight of the mixed term (--alpha; the Beta(4, 4) parameters are fixed)
    return c

  @staticmethod
  def validate(cfg) -> None:
    s = _section(cfg, Records)
    _pl_validate(s, cfg)
    if s.mixup and not s.debias:
      raise ConfigError("config.records.mixup is only defined together with config.records.debias (upstream "
                        "CORR_loss_RECORDS_mixup): set debias = True")
    if not 0.0 <= s.momentum < 1.0:
      raise ConfigError(f"config.records.momentum = {s.momentum} must lie in [0, 1)")
    if s.upd_start < 0 or s.alpha < 0:
      raise ConfigError("config.records.upd_start and alpha must be >= 0")

  def bind_data(self, data) -> None:
    super().bind_data(data)
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

  def eval_logits(self, outputs, method_state, params=None):
    if not self.s.debias:
      return outputs["logits"]
    prior = rec.records_prior(method_state["feat_mean"], params["fc"]["kernel"], params["fc"]["bias"])
    return rec.records_adjust_logits(outputs["logits"], prior)


# ----------------------------------------------------------------------------------------------------------- SoLar
def solar_selection(q, ps, prior, rho, batch_size):
  """Per-class small-loss selection (§B.7), `[B]` bool: for each class j with n_j ≥ 1 samples whose argmax Q_i = j,
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


class SoLar(_PartialLabel):
  """SoLar (w/ mixup), the two-stage `train_solar.py` in one run: stage 1 = epochs [0, est_epochs), stage 2 = the
  rest; train.epochs = est_epochs + `--epochs`; optim.schedule 'records_cosine' with restart_epoch = est_epochs."""

  name = "solar"

  @staticmethod
  def config_defaults():
    c = ml_collections.ConfigDict()
    _pl_defaults(c)
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
    s = _section(cfg, SoLar)
    _pl_validate(s, cfg)
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
    """emp_train = histogram(argmax softmax(o) ⊙ Y)/N on the un-augmented training set (§B.7). float64 [C]."""
    p = np.exp(logits - logits.max(1, keepdims=True))
    p = p / p.sum(1, keepdims=True)
    yhat = np.argmax(p * self.candidates, axis=1)
    return np.bincount(yhat, minlength=self.num_classes) / float(len(yhat))

  def on_epoch_start(self, epoch, state, run):
    if epoch == 0 or int(jax.device_get(state.method_state["prior_epoch"])) == epoch:
      return state  # nothing before the first epoch; already applied (resumed inside this epoch)
    from ltjax.train import loop, step as step_lib
    p = loop.predict(run, state, "train")
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
