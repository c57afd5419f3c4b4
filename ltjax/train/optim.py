"""Optimizer and learning-rate schedules, as the official PyTorch code runs them.

Learning rate (the official SGD settings, ARB `train_stage1.py`, imbalanced-semi-self `train.py`, imbalanced-semi-self
`imagenet_inat/main.py`, imbalanced-semi-self `pretrain_moco.py`): the official trainers set the LR once per epoch,
at the start of the epoch, and keep it for every step of that epoch. Here every schedule is a plain python function
`f(e, base_lr, ...) -> float` of the **0-based** epoch index `e`; `lr_table` evaluates one for every epoch of a run
(float64 array `[E]`), and `epoch_schedule(table, steps_per_epoch)` turns the table into an optax schedule
`step -> table[min(step // steps_per_epoch, E - 1)]`, constant within an epoch.

Optimizer (the official SGD settings): PyTorch SGD with coupled weight decay, dampening 0,

    g ← g + λ·θ          (weight decay on ALL parameters by default: conv/linear weights, biases, BN γ and β)
    v ← μ·v + g          (first step: v = g, because the buffer starts at 0)
    θ ← θ − lr·v         (nesterov: θ ← θ − lr·(g + μ·v))

built as `optax.chain(add_decayed_weights(λ), trace(μ), scale_by_learning_rate(lr))`. Checked in optax 0.2.8's
source: `optax.trace` computes `new = g + decay·old` from a zero-initialised buffer (PyTorch's `buf.mul_(μ).add_(g)`,
first step `buf = g`), nesterov returns `g + decay·new` (PyTorch's `g.add(buf, alpha=μ)`), and
`add_decayed_weights` computes `g + λ·θ`; placing it first in the chain applies it before the momentum, as PyTorch
does. The learning rate multiplies the momentum buffer's output, not its input, so an LR change between epochs
does not rescale the stored momentum (PyTorch behaviour).
"""

from __future__ import annotations

import inspect
import math
import re
from typing import Any, Callable, Dict, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ltjax.errors import ConfigError

# ARB/MiSLAS use a truncated π in their cosine schedule (ARB `train_stage1.py`).
TRUNCATED_PI = 3.1415926535


# ----------------------------------------------------------------------------------------------------------------
# Epoch-level schedules. `e` is the 0-based epoch index everywhere.
# ----------------------------------------------------------------------------------------------------------------


def _warmup_step(e: int, base_lr: float, warmup: int, milestones: Sequence[int], factors: Sequence[float],
                 larger_first: bool) -> float:
  """Shared body of the LDAM-style step schedules (1-based e' = e + 1, if/elif chain in the official code)."""
  if len(milestones) != len(factors):
    raise ValueError(f"milestones {tuple(milestones)} and factors {tuple(factors)} must have the same length")
  ep = e + 1
  if ep <= warmup:
    return base_lr * ep / warmup
  branches = list(zip(milestones, factors))
  if larger_first:
    branches.sort(key=lambda mf: mf[0], reverse=True)
  for m, f in branches:  # the first branch whose condition holds wins, as in an if/elif chain
    if ep > m:
      return base_lr * f
  return base_lr


def arb_step(e: int, base_lr: float, warmup: int = 5, milestones: Sequence[int] = (160, 240),
             gammas: Sequence[float] = (0.1, 0.01)) -> float:
  """ARB/MiSLAS stage-1 step schedule, `cos: False` (ARB `train_stage1.py`).

  With e' = e + 1 (checked in this order, larger milestone first):

      lr·e'/warmup   if e' <= warmup        (0.02, 0.04, ..., 0.1 for lr 0.1)
      lr·0.01        if e' > 240
      lr·0.1         if e' > 160
      lr             otherwise

  With 200 epochs the ×0.01 branch is unreachable: 0.1 until index 159, 0.01 from index 160 to 199.
  """
  return _warmup_step(e, base_lr, warmup, milestones, gammas, larger_first=True)


def ss_step(e: int, base_lr: float, warmup: int = 5, milestones: Sequence[int] = (160, 180),
            factors: Sequence[float] = (0.01, 1e-4), legacy_order: bool = False) -> float:
  """imbalanced-semi-self / LDAM-DRW CIFAR step schedule (imbalanced-semi-self `train.py`, LDAM-DRW `cifar_train.py`).

  With e' = e + 1:

      lr·e'/warmup   if e' <= warmup
      lr·1e-4        if e' > 180
      lr·0.01        if e' > 160            (i.e. 160 < e' <= 180)
      lr             otherwise

  so, for lr 0.1: 0.001 at indices 160..179 and 1e-5 at 180..199. `legacy_order=True` checks the milestones in the
  given (ascending) order, as SS did before its 2021-04-03 commit: `e' > 160` is tested first, so the 1e-4 step is
  unreachable and lr·0.01 holds from index 160 to the end (what the 2020 results presumably used).
  """
  return _warmup_step(e, base_lr, warmup, milestones, factors, larger_first=not legacy_order)


def arb_cosine(e: int, base_lr: float, num_epochs: int) -> float:
  """ARB/MiSLAS `cos: True` (ARB `train_stage1.py`): lr_e = 0.5·lr·(1 + cos(π̃·e/E)), π̃ = 3.1415926535 (truncated),
  0-based e,
  no warm-up. The first epoch uses lr; the last (e = E−1) a small positive value."""
  return 0.5 * base_lr * (1.0 + math.cos(TRUNCATED_PI * e / num_epochs))


def decoupling_cosine(e: int, base_lr: float, num_epochs: int, eta_min: float = 0.0) -> float:
  """SS `imagenet_inat` (decoupling code base) cosine (imbalanced-semi-self `imagenet_inat/main.py`):
  `CosineAnnealingLR(T_max=E, eta_min)` stepped at
  the *start* of every epoch, so the official 1-based epoch e+1 uses

      lr_e = eta_min + 0.5·(lr − eta_min)·(1 + cos(π·(e + 1)/E))

  The first epoch already uses slightly less than lr and the last epoch uses exactly eta_min (0 by default).
  """
  return eta_min + 0.5 * (base_lr - eta_min) * (1.0 + math.cos(math.pi * (e + 1) / num_epochs))


def moco_cosine(e: int, base_lr: float, num_epochs: int) -> float:
  """MoCo pre-training cosine (imbalanced-semi-self `pretrain_moco.py`): lr_e = lr·0.5·(1 + cos(π·e/E)), 0-based e; the
  first epoch uses lr."""
  return base_lr * 0.5 * (1.0 + math.cos(math.pi * e / num_epochs))


def moco_step(e: int, base_lr: float, milestones: Sequence[int] = (120, 160), gamma: float = 0.1) -> float:
  """MoCo pre-training without `--cos` (imbalanced-semi-self `pretrain_moco.py`): lr·γ^{#(milestones m with e >= m)},
  0-based e."""
  return base_lr * gamma ** sum(1 for m in milestones if e >= m)


def mislas_step(e: int, base_lr: float, warmup: int = 5, milestones: Sequence[int] = (160, 180),
                gammas: Sequence[float] = (0.1, 0.01)) -> float:
  """MiSLAS's own stage-1 step schedule (ARB's shipped configs): as `arb_step` but ×0.01 after epoch 180 (ARB moved it
  to 240,
  where 200 epochs never reach it)."""
  return arb_step(e, base_lr, warmup=warmup, milestones=milestones, gammas=gammas)


def records_cosine(e: int, base_lr: float, num_epochs: int, decay_rate: float = 0.1, restart_epoch: int = 0) -> float:
  """RECORDS / CORR / SoLar `--cosine` (RECORDS' schedules), 0-based e, set at the start of every epoch:

      lr_e = η_min + (lr − η_min)·(1 + cos(π·e/E))/2,   η_min = lr·decay_rate³

  `restart_epoch` R > 0 (SoLar's two stages, RECORDS `train_solar.py`): the horizon is E = num_epochs − R (`--epochs`)
  and the schedule
  restarts at R: epochs e < R (stage 1, `--est_epochs`) use e, epochs e >= R use e − R."""
  horizon = num_epochs - restart_epoch
  if horizon < 1:
    raise ValueError(f"records_cosine: restart_epoch {restart_epoch} must be < num_epochs {num_epochs}")
  t = e - restart_epoch if restart_epoch and e >= restart_epoch else e
  eta_min = base_lr * decay_rate ** 3
  return eta_min + (base_lr - eta_min) * (1.0 + math.cos(math.pi * t / horizon)) / 2.0


def records_step(e: int, base_lr: float, milestones: Sequence[int] = (700, 800, 900),
                 decay_rate: float = 0.1) -> float:
  """RECORDS / CORR / SoLar without `--cosine` (RECORDS' schedules): lr·decay_rate^{#(milestones m with e > m)}, 0-based
  e."""
  return base_lr * decay_rate ** sum(1 for m in milestones if e > m)


def constant(e: int, base_lr: float) -> float:
  """lr for every epoch."""
  del e
  return base_lr


def sbcl_cosine(e: int, base_lr: float, num_epochs: int, steps_per_epoch: int, warmup: int = 10,
                warmup_from: float = 0.01, decay_rate: float = 0.1, fix_negative_warmup: bool = False):
  """SBCL CIFAR stage 1 (`SimCLR/main.py`, SupCon's schedule, SBCL `SimCLR/main.py`): per-STEP rates of epoch e, a list
  of
  `steps_per_epoch` floats (N_b = steps_per_epoch, b = 0-based step within the epoch).

  Cosine per epoch:  η_e = η_min + (η_0 − η_min)·(1 + cos(π·e/E))/2,   η_min = η_0·decay_rate⁴ (5e-5 for 0.5).
  Warm-up (the official code enables it for batch > 256; here whenever warmup > 0), for e ≤ warmup:
      η = warmup_from + p·(η_w − warmup_from),   p = (b + (e − 1)·N_b)/(warmup·N_b),
      η_w = η_0·decay_rate³ + (η_0 − η_0·decay_rate³)·(1 + cos(π·warmup/E))/2   (≈ 0.49988; note 0.1³, not 0.1⁴)
  The formula is written for 1-based epochs but the loop is 0-based, so epoch 0 has p ∈ [−0.1, 0): NEGATIVE
  rates (≈ −0.039 at the first step), and the ramp ends at epoch `warmup` (≈ 0.4955); epoch warmup+1 resumes the
  cosine. That is the official behaviour (the SBCL code's known issues) and the default.
  `fix_negative_warmup=True`: the ramp uses the epoch count SupCon intended, p = (b + e·N_b)/(warmup·N_b) for
  e < warmup (0.01 at the first step, → η_w at the end of epoch warmup−1), the cosine from epoch `warmup` on.
  """
  nb = int(steps_per_epoch)
  eta_min = base_lr * decay_rate ** 4
  cos = eta_min + (base_lr - eta_min) * (1.0 + math.cos(math.pi * e / num_epochs)) / 2.0
  if warmup <= 0:
    return [cos] * nb
  lo = base_lr * decay_rate ** 3
  eta_w = lo + (base_lr - lo) * (1.0 + math.cos(math.pi * warmup / num_epochs)) / 2.0
  if fix_negative_warmup:
    if e >= warmup:
      return [cos] * nb
    ps = [(b + e * nb) / (warmup * nb) for b in range(nb)]
  else:
    if e > warmup:
      return [cos] * nb
    ps = [(b + (e - 1) * nb) / (warmup * nb) for b in range(nb)]
  return [warmup_from + p * (eta_w - warmup_from) for p in ps]


def sbcl_linear_step(e: int, base_lr: float, warmup: int = 5, milestones: Sequence[int] = (140, 180),
                     factors: Sequence[float] = (0.1, 0.01)) -> float:
  """SBCL CIFAR stage 2, `--train_rule DRW` (and CE) (`SimCLR/linear_classify.py`, SBCL `SimCLR/linear_classify.py`).
  With e' = e + 1:

      lr·e'/warmup   if e' <= warmup
      lr·0.01        if e' > 180
      lr·0.1         if e' > 140
      lr             otherwise
  """
  return _warmup_step(e, base_lr, warmup, milestones, factors, larger_first=True)


def sbcl_linear_cosine(e: int, base_lr: float, num_epochs: int, warmup: int = 5) -> float:
  """SBCL CIFAR stage 2, `--train_rule CB | Reweight` (SBCL `SimCLR/linear_classify.py`). With e' = e + 1:

      lr·e'/warmup                                          if e' <= warmup
      0.5·lr·(1 + cos(π̃·(e' − warmup)/(E − warmup)))        otherwise (0 in the last epoch)

  with π̃ = 3.1415926535, the constant the official code writes (as ARB's cosine, `TRUNCATED_PI`).
  """
  ep = e + 1
  if ep <= warmup:
    return base_lr * ep / warmup
  return 0.5 * base_lr * (1.0 + math.cos(TRUNCATED_PI * (ep - warmup) / (num_epochs - warmup)))


SCHEDULES: Dict[str, Callable[..., float]] = {
    "arb_step": arb_step,
    "mislas_step": mislas_step,
    "ss_step": ss_step,
    "ldam_drw_step": ss_step,  # LDAM-DRW's schedule is the (corrected-order) SS one (LDAM-DRW `cifar_train.py`)
    "arb_cosine": arb_cosine,
    "decoupling_cosine": decoupling_cosine,
    "moco_cosine": moco_cosine,
    "moco_step": moco_step,
    "records_cosine": records_cosine,
    "records_step": records_step,
    "constant": constant,
    "sbcl_cosine": sbcl_cosine,  # per-step (takes steps_per_epoch): its table is [E, steps_per_epoch]
    "sbcl_linear_step": sbcl_linear_step,
    "sbcl_linear_cosine": sbcl_linear_cosine,
}


def register_schedule(name: str):
  """Class-free registry decorator for a per-epoch LR schedule `fn(e, base_lr, [num_epochs], [steps_per_epoch],
  **own keywords) -> float` (0-based epoch e). A method package registers its own schedules in its
  `schedules.py`; registering a name twice with different functions is an error.

      @optim.register_schedule("my_cosine")
      def my_cosine(e, base_lr, num_epochs): ...
  """
  def deco(fn):
    if SCHEDULES.setdefault(name, fn) is not fn:
      raise RuntimeError(f"LR schedule '{name}' is already registered by another module")
    return fn
  return deco


def _params_of(fn) -> Dict[str, inspect.Parameter]:
  return dict(inspect.signature(fn).parameters)


def lr_table(name: Any, base_lr: Optional[float] = None, num_epochs: Optional[int] = None,
             steps_per_epoch: Optional[int] = None, **kw) -> np.ndarray:
  """Per-epoch learning rates, float64 `[num_epochs]`, entry e = the LR used for the whole 0-based epoch e.

  A per-step schedule (one that takes `steps_per_epoch`, e.g. `sbcl_cosine`) gives `[num_epochs, steps_per_epoch]`
  instead (entry [e, b] = the LR of step b of epoch e) and needs `steps_per_epoch`.

  `lr_table("arb_step", 0.1, 200)`, `lr_table("ss_step", 0.1, 200, legacy_order=True)`, ... `kw` are the schedule's
  own keyword arguments; `num_epochs` is passed to the schedules that take it (the cosines).

  A config may be given instead of a name: `lr_table(cfg)` reads `cfg.optim.{schedule, lr, warmup_epochs,
  legacy_order}` and `cfg.train.epochs` (see `lr_table_from_config`); `num_epochs` then overrides the config's.

  Raises ValueError for an unknown name (listing the known ones) or a keyword the schedule does not take.
  """
  if not isinstance(name, str):
    return lr_table_from_config(name, num_epochs=num_epochs, steps_per_epoch=steps_per_epoch)
  if name not in SCHEDULES:
    raise ValueError(f"unknown LR schedule {name!r}; known schedules: {sorted(SCHEDULES)}")
  if base_lr is None or num_epochs is None:
    raise ValueError("lr_table(name, base_lr, num_epochs, **kw) needs base_lr and num_epochs")
  if num_epochs < 1:
    raise ValueError(f"num_epochs must be >= 1, got {num_epochs}")
  fn = SCHEDULES[name]
  accepted = _params_of(fn)
  fixed = ("e", "base_lr", "num_epochs", "steps_per_epoch")
  bad = sorted(k for k in kw if k not in accepted or k in fixed)
  if bad:
    options = [k for k in accepted if k not in fixed]
    raise ValueError(f"LR schedule {name!r} takes no argument(s) {bad}; it takes {options}")
  if "num_epochs" in accepted:
    kw = dict(kw, num_epochs=int(num_epochs))
  if "steps_per_epoch" in accepted:
    if steps_per_epoch is None or int(steps_per_epoch) < 1:
      raise ValueError(f"LR schedule {name!r} sets the rate per step: pass steps_per_epoch >= 1, got {steps_per_epoch}")
    kw = dict(kw, steps_per_epoch=int(steps_per_epoch))
  return np.asarray([fn(e, float(base_lr), **kw) for e in range(int(num_epochs))], dtype=np.float64)


def validate(section) -> None:
  """The config's `optim` section: a registered schedule, lr > 0, weight_decay >= 0, momentum in [0, 1),
  restart_epoch >= 0. Raises ConfigError naming the field."""
  if section.schedule not in SCHEDULES:
    raise ConfigError(f"config.optim.schedule = {section.schedule!r} is not one of {sorted(SCHEDULES)}")
  if section.lr <= 0 or section.weight_decay < 0 or not 0 <= section.momentum < 1:
    raise ConfigError("config.optim needs lr > 0, weight_decay >= 0 and momentum in [0, 1)")
  if section.restart_epoch < 0:
    raise ConfigError("config.optim.restart_epoch must be >= 0 (0 = no restart)")
  parse_lr_mults(section.get("lr_mults", ()))


def parse_lr_mults(specs: Sequence[str]):
  """('REGEX=FACTOR', …) → [(compiled regex, float factor)]; ConfigError naming the bad entry."""
  out = []
  for spec in specs:
    pattern, sep, factor = str(spec).rpartition("=")
    try:
      if not sep or not pattern:
        raise ValueError
      f = float(factor)
      if not math.isfinite(f) or f < 0:
        raise ValueError
      out.append((re.compile(pattern), f))
    except (ValueError, re.error):
      raise ConfigError(f"config.optim.lr_mults holds {spec!r}: each entry is 'REGEX=FACTOR' with a valid regex and "
                        "a finite factor >= 0, e.g. '^fc/(kernel|bias)$=0.5'") from None
  return out


def scale_by_path(lr_mults: Sequence[str]) -> optax.GradientTransformation:
  """Multiply each leaf's update by the factor of the first 'REGEX=FACTOR' of `lr_mults` whose regex matches the
  leaf's '/'-joined path (1 where none matches). Placed after `scale_by_learning_rate` this is a per-group LR:
  θ ← θ − (f·lr)·v, PyTorch's param-group `lr`, with the momentum buffer v untouched."""
  rules = parse_lr_mults(lr_mults)

  def factor(path) -> float:
    name = "/".join(_key_str(k) for k in path)
    for rx, f in rules:
      if rx.search(name):
        return f
    return 1.0

  def update_fn(updates, state, params=None):
    del params
    return jax.tree_util.tree_map_with_path(lambda p, u: u * factor(p) if factor(p) != 1.0 else u, updates), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def lr_table_from_config(cfg, num_epochs: Optional[int] = None, steps_per_epoch: Optional[int] = None) -> np.ndarray:
  """`lr_table` for a run config: schedule `cfg.optim.schedule`, base LR `cfg.optim.lr`, `cfg.train.epochs` epochs
  (unless `num_epochs` is given). `cfg.optim.warmup_epochs` is passed as `warmup` and `cfg.optim.legacy_order` as
  `legacy_order` to the schedules that take them and ignored by the others."""
  o = cfg.optim
  name = o.schedule
  if name not in SCHEDULES:
    raise ValueError(f"config.optim.schedule = {name!r} is not one of {sorted(SCHEDULES)}")
  accepted = _params_of(SCHEDULES[name])
  kw = {}
  if "warmup" in accepted and "warmup_epochs" in o:
    kw["warmup"] = int(o.warmup_epochs)
  if "legacy_order" in accepted and "legacy_order" in o:
    kw["legacy_order"] = bool(o.legacy_order)
  if "fix_negative_warmup" in accepted and "fix_negative_warmup" in o:
    kw["fix_negative_warmup"] = bool(o.fix_negative_warmup)
  if "restart_epoch" in accepted and "restart_epoch" in o:
    kw["restart_epoch"] = int(o.restart_epoch)
  epochs = int(cfg.train.epochs if num_epochs is None else num_epochs)
  return lr_table(name, float(o.lr), epochs, steps_per_epoch=steps_per_epoch, **kw)


def epoch_schedule(table: np.ndarray, steps_per_epoch: int) -> Callable[[Any], jax.Array]:
  """An optax schedule `step -> lr` that holds `table[epoch]` for the whole epoch:
  lr(step) = table[min(step // steps_per_epoch, E − 1)] (steps past the last epoch keep the last value).
  A per-step table `[E, steps_per_epoch]` gives lr(step) = table.flat[min(step, E·steps_per_epoch − 1)].

  The table is stored as a float32 device constant; `step` may be a python int or a traced int array.
  """
  table = np.asarray(table, dtype=np.float64)
  if steps_per_epoch < 1:
    raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
  if table.ndim == 2 and table.size:
    if table.shape[1] != steps_per_epoch:
      raise ValueError(f"per-step table has {table.shape[1]} steps per epoch, the run {steps_per_epoch}")
    flat = table.reshape(-1).astype(np.float32)

    def step_schedule(step):
      return jnp.asarray(flat)[jnp.clip(jnp.asarray(step), 0, flat.size - 1)]

    return step_schedule
  if table.ndim != 1 or table.size == 0:
    raise ValueError(f"table must be a non-empty 1-D array of per-epoch learning rates, got shape {table.shape}")
  values = table.astype(np.float32)
  last = table.size - 1
  spe = int(steps_per_epoch)

  def schedule(step):
    epoch = jnp.clip(jnp.asarray(step) // spe, 0, last)
    return jnp.asarray(values)[epoch]

  return schedule


# ----------------------------------------------------------------------------------------------------------------
# SGD
# ----------------------------------------------------------------------------------------------------------------

MaskOrFn = Union[Any, Callable[[Any], Any]]


def sgd(learning_rate: optax.ScalarOrSchedule, momentum: float = 0.9, weight_decay: float = 0.0,
        nesterov: bool = False, mask: Optional[MaskOrFn] = None,
        frozen: Optional[MaskOrFn] = None, lr_mults: Sequence[str] = ()) -> optax.GradientTransformation:
  """PyTorch `torch.optim.SGD(lr, momentum, weight_decay, dampening=0, nesterov)` as an optax transformation.

  Per step (λ = weight_decay, μ = momentum, lr = learning_rate(count) for a schedule, count = steps taken):

      g ← g + λ·θ           for every parameter selected by `mask` (default: all of them, BN γ/β and biases
                            included, the official SGD settings)
      v ← μ·v + g           (v starts at 0, so the first step has v = g; with μ = 0 no buffer is kept)
      θ ← θ − lr·v          (nesterov: θ ← θ − lr·(g + μ·v))

  Args:
    learning_rate: a float or an optax schedule (e.g. `epoch_schedule(lr_table(...), steps_per_epoch)`).
    momentum: μ (PyTorch form, dampening 0).
    weight_decay: λ, coupled (added to the gradient before the momentum). 0.0 (PyTorch's default) disables it.
    nesterov: PyTorch's Nesterov variant.
    mask: which parameters get weight decay, in optax's convention: a pytree of bools with the structure of the
      params (or a prefix of it), or a callable `params -> such a pytree`; True = decayed. None = all parameters.
    frozen: parameters that must not change at all (their update is exactly 0: no gradient step, no weight decay,
      no momentum state; e.g. the feature extractor in cRT, imbalanced-semi-self `imagenet_inat/main.py`): a pytree of
      bools (or prefix) or a callable
      `params -> pytree`; True = frozen. Implemented with `optax.partition` ({'train': SGD, 'frozen':
      set_to_zero()}), which changes the optimizer-state structure; None = nothing frozen (plain chain).
      BN running statistics are not parameters and are not affected by this.
    lr_mults: 'REGEX=FACTOR' strings, per-parameter LR factors (`scale_by_path`); () = one LR for all.
  """
  parts = []
  if weight_decay:
    parts.append(optax.add_decayed_weights(weight_decay, mask=mask))
  if momentum:
    parts.append(optax.trace(decay=momentum, nesterov=nesterov))
  elif nesterov:
    raise ValueError("nesterov momentum requires momentum > 0 (as in PyTorch)")
  parts.append(optax.scale_by_learning_rate(learning_rate))
  if lr_mults:
    parts.append(scale_by_path(lr_mults))
  tx = optax.chain(*parts)
  if frozen is None:
    return tx

  def labels(tree):
    m = frozen(tree) if callable(frozen) else frozen
    return jax.tree.map(lambda f: "frozen" if f else "train", m)

  return optax.partition({"train": tx, "frozen": optax.set_to_zero()}, labels)


def mask_by_path(predicate: Callable[[str], bool]) -> Callable[[Any], Any]:
  """A mask function for `sgd(mask=...)` / `sgd(frozen=...)`: leaf → predicate('/'-joined key path), e.g.
  `mask_by_path(lambda p: 'fc' not in p)` marks every parameter outside the classifier head."""

  def fn(tree):
    def leaf(path, _):
      return bool(predicate("/".join(_key_str(k) for k in path)))
    return jax.tree_util.tree_map_with_path(leaf, tree)

  return fn


def _key_str(k) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(k, attr):
      return str(getattr(k, attr))
  return str(k)


def from_config(cfg, steps_per_epoch: int, mask: Optional[MaskOrFn] = None, frozen: Optional[MaskOrFn] = None):
  """(tx, schedule, table) for a run config: `lr_table_from_config(cfg)`, `epoch_schedule(table, steps_per_epoch)`
  and `sgd(schedule, cfg.optim.momentum, cfg.optim.weight_decay, cfg.optim.nesterov, mask, frozen)`."""
  table = lr_table_from_config(cfg, steps_per_epoch=steps_per_epoch)
  schedule = epoch_schedule(table, steps_per_epoch)
  tx = sgd(schedule, momentum=float(cfg.optim.momentum), weight_decay=float(cfg.optim.weight_decay),
           nesterov=bool(cfg.optim.nesterov), mask=mask, frozen=frozen,
           lr_mults=tuple(cfg.optim.get("lr_mults", ())))
  return tx, schedule, table
