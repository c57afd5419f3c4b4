"""The default config (the schema every experiment config extends) and its validation.

Every experiment config starts from `default()` and changes fields; `validate()` runs before anything is compiled
or loaded and rejects keys the schema does not know, ill-typed values and impossible settings with a message that
names the field and the fix.
"""

from __future__ import annotations

import difflib
import json
import math
import re

import ml_collections
from ml_collections import config_dict

from ltjax import distributed, losses, methods, preflight
from ltjax.errors import ConfigError  # noqa: F401 (re-exported)
from ltjax.methods.supervised import TRAIN_RULES, Supervised  # noqa: F401 (TRAIN_RULES re-exported)

SELECT_ON = ("test", "val", "last")

# Keys that moved, old spelling → (new spelling, placeholder). The old spelling stays in the schema holding its
# placeholder, a value of the old type that no run uses ("", NaN, -2**31), so that a command-line override in the old
# spelling parses and reaches validation, which names the new key; a stored config.json in the old spelling is read
# into the new one (`load_stored`), and config.json never stores the placeholders.
RENAMED = {
    "train_rule": ("supervised.train_rule", ""),
    "cb_beta": ("supervised.cb_beta", float("nan")),
    "drw_epoch": ("supervised.drw_epoch", -2**31),
    "mixup_alpha": ("supervised.mixup_alpha", float("nan")),
}


def _is_placeholder(value, placeholder) -> bool:
  if isinstance(placeholder, float):
    return isinstance(value, float) and math.isnan(value)
  return value == placeholder and type(value) is type(placeholder)


def default() -> ml_collections.ConfigDict:
  """The full schema with defaults: the ARB/MiSLAS CIFAR stage-1 recipe on the embedded digits data."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # training seed: initialisation, epoch order, augmentation, mixup.
  c.method = "supervised"  # a key of ltjax.methods.REGISTRY.

  c.data = ml_collections.ConfigDict()
  # digits | cifar10 | cifar100 | svhn | npz | image_folder | imagenet_lt | inat2018 | places_lt (+ _tfds variants)
  c.data.name = "digits"
  c.data.data_dir = ""  # TFDS data dir; "" = TFDS default (~/tensorflow_datasets or $TFDS_DATA_DIR).
  c.data.path = ""  # data.name = 'npz': a .npz of x_train, y_train, x_test, y_test (uint8 NHWC or NHW images)
  c.data.resize = 0  # data.name = 'image_folder': >0 resizes every image to resize×resize; 0 keeps the size
  c.data.imb_type = "exp"  # exp | step | none
  c.data.imb_factor = 0.01  # ρ ∈ (0, 1]; the paper's imbalance ratio is 1/ρ.
  c.data.rand_number = 0  # seed of the legacy-RandomState subset selection (LDAM-DRW `imbalance_cifar.py`).
  c.data.val_per_class = 0  # >0: balanced validation split from train images the subset does not use.
  # Upper bounds of the many and medium label ranges ([0,a), [a,b), [b,C)) for the index-range definition of
  # many/medium/few (MiSLAS/ARB's evaluation); () = report only the threshold definition.
  c.data.group_bounds = ()
  c.data.drop_remainder = False  # False keeps the last partial batch, as the official loaders do.
  # Where training batches are made (ltjax/data/device.py, docs/ARCHITECTURE.md "Data paths"): 'device' keeps an
  # in-memory split on the accelerators and gathers + augments each batch inside the compiled step (no TensorFlow);
  # 'host' runs tf.data on the host; 'auto' takes 'device' wherever it can run (in-memory data, a method whose
  # views exist as JAX ops), else 'host'. Evaluation of in-memory splits runs on the devices unless 'host'.
  c.data.pipeline = "auto"
  # Large-scale datasets (imagenet_lt | inat2018 | places_lt from split files; imagenet_lt_tfds | inat2018_tfds):
  c.data.root = ""  # image root; the split files' paths are relative to it
  c.data.lists_dir = ""  # directory of the split files ("" = data.root)
  c.data.val_list = False  # ImageNet-LT: also load ImageNet_LT_val.txt as the 'val' split (SS model selection)
  c.data.label_remap = "frequency"  # frequency (ARB/MiSLAS: label 0 = most frequent class) | none (SS)
  c.data.image_size = 224  # RandomResizedCrop / CenterCrop size
  c.data.eval_resize = 256  # eval: shorter side resized to this, then center-cropped to image_size
  c.data.color_jitter = 0.4  # brightness = contrast = saturation strength of ColorJitter; 0 = off (SS iNat)

  # Multi-process (multi-host) runs: jax.distributed.initialize before anything touches devices (ltjax/distributed.py).
  # Unset fields fall back to $JAX_COORDINATOR_ADDRESS, $JAX_NUM_PROCESSES, $JAX_PROCESS_ID; with none of them set
  # the run is a single process.
  c.distributed = ml_collections.ConfigDict()
  c.distributed.coordinator_address = ""  # host:port of process 0
  c.distributed.num_processes = 0
  c.distributed.process_id = -1
  c.distributed.cluster_detection = False  # True: let JAX detect SLURM / Open MPI / TPU pods itself
  c.distributed.initialization_timeout = 300  # seconds to wait for all processes
  # Semi-supervised D_U (imbalanced-semi-self `train_semi.py`, ltjax/data/unlabeled.py): off while pseudo_labels is "".
  # The pool's images are
  # appended to the long-tailed training set with their pseudo labels as targets.
  c.data.unlabeled = ml_collections.ConfigDict()
  # TinyImages selection .pickle | 'svhn_extra' | 'unused' (the dataset's own left-out training images) | .npy/.npz |
  # image folder
  c.data.unlabeled.pool = ""
  c.data.unlabeled.pseudo_labels = ""  # file written by `python -m ltjax.tools.pseudolabel` (or an official pickle)
  c.data.unlabeled.imb_factor = 0.01  # ρ_U (--imb_factor_unlabel): 1 balanced, 0.04/0.02/0.01 ratio 25/50/100
  c.data.unlabeled.multiplier = 5  # D_U@5x: |D_U| ≈ multiplier × |labeled|
  c.data.unlabeled.select_by = "truth"  # truth (official: pool labels choose counts) | pseudo | all (whole pool)
  c.data.unlabeled.allow_fewer = False  # True: a class short of pool images adds what it has (official, silent)
  # Per-channel normalisation statistics for pixels in [0, 1], overriding the dataset's (used by evaluation and the
  # default train recipe); () = the dataset's own. RECORDS tests CIFAR-10 with CIFAR-100 statistics (the RECORDS code's
  # known issues).
  c.data.mean = ()
  c.data.std = ()
  # >= 0: permute the position-indexed class counts with Python's random.Random(seed).shuffle before the selection
  # (RECORDS `--hierarchical`, CIFAR-100-LT-NU: head/tail classes become random classes, RECORDS
  # `utils/imbalance_cifar.py`); -1 = off.
  c.data.count_shuffle_seed = -1

  c.model = ml_collections.ConfigDict()
  c.model.name = "resnet32"
  # auto | linear | cosine | linear_torch (nn.Linear's default U(±1/√D) init) ("auto": cosine for LDAM, linear
  # otherwise, as SS/LD do).
  c.model.head = "auto"
  c.model.dtype = "float32"  # compute dtype: float32 | bfloat16 (parameters stay float32).

  # The supervised loss (`ltjax.losses`): `name` and every registered loss's own fields, declared with the loss.
  c.loss = losses.config_defaults()
  # The supervised method's own keys (train rules, mixup; `ltjax.methods.supervised`), also read by `decouple`.
  c.supervised = Supervised.config_defaults()
  for old, (_, placeholder) in RENAMED.items():
    c[old] = placeholder  # moved (RENAMED): any other value is an error naming the new key

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 0.1
  c.optim.momentum = 0.9
  c.optim.weight_decay = 2e-4
  c.optim.nesterov = False
  c.optim.schedule = "arb_step"  # a key of ltjax.train.optim schedules
  c.optim.warmup_epochs = 5
  c.optim.legacy_order = False  # ss_step only: the pre-2021 branch order (imbalanced-semi-self `train.py`)
  # sbcl_cosine only: False = the official warm-up with negative LRs in epoch 0 (SBCL the SBCL code's known issues);
  # True = fixed.
  c.optim.fix_negative_warmup = False
  # records_cosine only: the schedule restarts here (SoLar's second stage, RECORDS `train_solar.py`).
  c.optim.restart_epoch = 0
  # Per-parameter LR multipliers, PyTorch's param groups: 'REGEX=FACTOR' strings; a parameter whose '/'-joined path
  # matches the first REGEX (re.search) trains at FACTOR × the schedule's LR (MiSLAS stage 2: ('^fc/(kernel|bias)$=0.5',)).
  c.optim.lr_mults = ()

  c.train = ml_collections.ConfigDict()
  c.train.epochs = 200
  c.train.batch_size = 128  # global batch, split over all devices and processes
  c.train.eval_batch_size = 100
  c.train.eval_every = 1  # epochs; 0 = no evaluation (self-supervised pre-training; needs select_on = 'last')
  c.train.log_every = 50  # steps
  # Train steps per compiled call (a lax.scan of the step; ltjax.train.step.make_multi_train_step). 0 = auto: 4 on
  # CPU when a step's images hold >= 65,536 values (CIFAR at batch 128 and up: XLA:CPU then allocates and the kernel
  # zero-fills the step's temporaries once per call instead of once per step; docs/BENCHMARKS.md), else 1. Results
  # do not depend on the grouping; the log and SIGTERM are served between calls.
  c.train.steps_per_call = 0
  c.train.checkpoint_every = 1  # epochs
  c.train.keep_checkpoints = 2  # last N kept, plus the best
  c.train.select_on = "test"  # test (as the official code) | val (needs data.val_per_class > 0) | last
  c.train.progress_bar = True
  # >0: every this many epochs log neural-collapse geometry and attraction/repulsion means of the test split to
  # metrics.jsonl (split "diagnostics"); O(C·D²) and per-class Gram blocks, so it stays cheap for 8,142 classes.
  c.train.diagnostics_every = 0
  # Regex on '/'-joined parameter paths (e.g. '^fc/'): only matching parameters train; the others get no gradient,
  # no update and no weight decay (cRT, linear probing). "" = every parameter trains.
  c.train.trainable = ""
  # With train.trainable: 'train' runs frozen layers in train mode (BN normalises with batch statistics and updates
  # its running statistics: cRT, SBCL ImageNet stage 2); 'eval' runs the whole network with train=False inside the
  # loss (linear probing on a frozen encoder: SBCL CIFAR stage 2).
  c.train.frozen_bn = "train"

  # Initialise from a pre-trained run (ltjax.train.pretrained): stage 2 from stage 1, SSP fine-tuning, cRT.
  c.init = ml_collections.ConfigDict()
  c.init.workdir = ""  # an ltjax run directory, or a .npz of '/'-joined flax paths (params/..., batch_stats/...)
  c.init.checkpoint = "last"  # best | last
  c.init.exclude = ("^fc/",)  # regexes on paths (without params/): matching leaves keep their fresh init
  c.init.strict = True  # every other leaf of the new model must exist in the source with the same shape
  c.init.required = False  # True: the config only makes sense on pre-trained weights (stage 2); refuse an empty workdir

  c.mesh = ml_collections.ConfigDict()
  c.mesh.num_devices = 0  # 0 = every device of every process
  return c


def to_dict(cfg) -> dict:
  """The config as plain JSON data, without the placeholders of RENAMED keys (what config.json stores)."""
  d = json.loads(cfg.to_json_best_effort())
  for old, (_, placeholder) in RENAMED.items():
    if old in d and _is_placeholder(d[old], placeholder):
      del d[old]
  return d


def to_json(cfg) -> str:
  return json.dumps(to_dict(cfg), indent=1, sort_keys=True)


def migrate(d: dict) -> dict:
  """A stored config (plain data, e.g. an older run's config.json) in today's spelling: RENAMED keys moved."""
  d = json.loads(json.dumps(d))
  for old, (new, placeholder) in RENAMED.items():
    if old in d:
      value = d.pop(old)
      section, key = new.split(".")
      if value is not None and not _is_placeholder(value, placeholder):
        d.setdefault(section, {}).setdefault(key, value)
  return d


def load_stored(path: str) -> ml_collections.ConfigDict:
  """A run directory's config.json as a ConfigDict in today's spelling (`migrate`; `data.group_bounds`, which JSON
  stores as a list, back to a tuple)."""
  with open(path) as f:
    cfg = ml_collections.ConfigDict(migrate(json.load(f)))
  cfg.data.group_bounds = tuple(cfg.data.group_bounds)
  return cfg


def _walk(cfg, prefix=""):
  for k, v in cfg.items():
    name = f"{prefix}{k}"
    if isinstance(v, (ml_collections.ConfigDict, config_dict.FrozenConfigDict)):
      yield from _walk(v, name + ".")
    else:
      yield name, v


def _check_renamed(cfg) -> None:
  for old, (new, placeholder) in RENAMED.items():
    if old in cfg and cfg[old] is not None and not _is_placeholder(cfg[old], placeholder):
      raise ConfigError(f"config.{old} was renamed to config.{new}: set c.{new} = {cfg[old]!r} in the config file "
                        f"(or --config.{new}=... on the command line)")


def _check_schema(cfg, schema, prefix=""):
  for k in cfg.keys():
    if k not in schema:
      known = ", ".join(sorted(schema.keys()))
      close = difflib.get_close_matches(k, list(schema.keys()), n=1)
      hint = f"did you mean '{prefix}{close[0]}'? " if close else ""
      raise ConfigError(f"unknown config key '{prefix}{k}' ({hint}known keys at this level: {known})")
    v, s = cfg[k], schema[k]
    if isinstance(s, ml_collections.ConfigDict):
      if not isinstance(v, ml_collections.ConfigDict):
        raise ConfigError(f"config key '{prefix}{k}' must be a section, got {type(v).__name__}")
      _check_schema(v, s, prefix + k + ".")
    elif s is not None and v is not None:
      values = v if isinstance(v, (tuple, list)) else (v,)
      if any(isinstance(x, float) and not math.isfinite(x) for x in values) and not (k in RENAMED and not prefix):
        raise ConfigError(f"config.{prefix}{k} = {v} is not a finite number: give a finite value")
      ok = isinstance(v, type(s)) or (isinstance(s, float) and isinstance(v, int) and not isinstance(v, bool))
      if isinstance(s, (tuple, list)):
        ok = isinstance(v, (tuple, list))
      if not ok:
        raise ConfigError(f"config key '{prefix}{k}' must be {type(s).__name__}, got {v!r} ({type(v).__name__})")


def schema() -> ml_collections.ConfigDict:
  """The default config extended by every registered method's own section."""
  s = default()
  for name, method in methods.REGISTRY.items():
    extra = method.config_defaults()
    if extra is not None:
      s[name] = extra
  return s


def _choice(name, value, choices):
  if value not in choices:
    raise ConfigError(f"config.{name} = {value!r} is not one of {list(choices)}")


def validate(cfg: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the field and the fix for any config that cannot run. Loads no data."""
  from ltjax.data import sources
  from ltjax.models import MODELS
  from ltjax.train import optim

  _check_renamed(cfg)
  _check_schema(cfg, schema())
  _choice("method", cfg.method, methods.REGISTRY)
  sources.validate(cfg.data)
  _choice("model.name", cfg.model.name, MODELS)
  _choice("model.head", cfg.model.head, ("auto", "linear", "cosine", "linear_torch", "linear_lws"))
  _choice("model.dtype", cfg.model.dtype, ("float32", "bfloat16"))
  losses.validate(cfg.loss)
  optim.validate(cfg.optim)
  t = cfg.train
  if t.diagnostics_every < 0:
    raise ConfigError("config.train.diagnostics_every must be >= 0 (0 = off)")
  if t.eval_every < 0:
    raise ConfigError("config.train.eval_every must be >= 0 (0 = no evaluation)")
  if t.eval_every == 0 and t.select_on != "last":
    raise ConfigError("config.train.eval_every = 0 (no evaluation) needs config.train.select_on = 'last': with no "
                      "evaluation there is no best epoch to select")
  _choice("train.frozen_bn", t.frozen_bn, ("train", "eval"))
  if t.trainable:
    try:
      re.compile(t.trainable)
    except re.error as e:
      raise ConfigError(f"config.train.trainable = {t.trainable!r} is not a valid regex: {e}") from None
  elif t.frozen_bn == "eval":
    raise ConfigError("config.train.frozen_bn = 'eval' runs the network in inference mode, which only makes sense "
                      "for a frozen encoder: set config.train.trainable (e.g. '^fc/') or frozen_bn = 'train'")
  _choice("init.checkpoint", cfg.init.checkpoint, ("best", "last"))
  if cfg.init.get("required", False) and not cfg.init.workdir:
    raise ConfigError("this config trains on top of pre-trained weights (config.init.required = True) but "
                      "config.init.workdir is empty: pass the earlier stage's run, e.g. "
                      "--config.init.workdir=runs/STAGE1 (or set --config.init.required=False to train on a "
                      "randomly initialised encoder on purpose)")
  for pattern in cfg.init.exclude:
    try:
      re.compile(pattern)
    except re.error as e:
      raise ConfigError(f"config.init.exclude holds {pattern!r}, not a valid regex: {e}") from None
  for name in ("epochs", "batch_size", "eval_batch_size", "log_every", "checkpoint_every",
               "keep_checkpoints"):
    if t[name] < 1:
      raise ConfigError(f"config.train.{name} = {t[name]} must be >= 1")
  if t.steps_per_call < 0:
    raise ConfigError(f"config.train.steps_per_call = {t.steps_per_call} must be >= 0 (0 = auto)")
  _choice("train.select_on", t.select_on, SELECT_ON)
  if (t.select_on == "val" and cfg.data.val_per_class == 0 and not cfg.data.val_list
      and cfg.data.name != "image_folder"):  # an image tree may bring val/ (checked when the tree is read)
    raise ConfigError("config.train.select_on = 'val' needs a validation split: set config.data.val_per_class > 0 "
                      "(CIFAR/SVHN/digits) or config.data.val_list = True (ImageNet-LT)")
  distributed.validate(cfg.distributed)
  _validate_pipeline(cfg)
  if cfg.mesh.num_devices < 0:
    raise ConfigError("config.mesh.num_devices must be >= 0 (0 = all devices)")
  methods.REGISTRY[cfg.method].validate(cfg)
  preflight.check_ranges(cfg)  # the command line's bounds (ltjax/preflight.py), for values set in config files


def _validate_pipeline(cfg) -> None:
  """config.data.pipeline: 'device' needs an in-memory dataset and a method whose views are JAX ops."""
  from ltjax import methods
  from ltjax.data import device, sources
  d = cfg.data
  _choice("data.pipeline", d.pipeline, device.PIPELINES)
  if d.pipeline != "device":
    return
  if d.name in sources.FILE_BACKED:
    raise ConfigError(f"config.data.pipeline = 'device' needs an in-memory dataset, but '{d.name}' is read from "
                      "image files on the host: use config.data.pipeline = 'auto' or 'host'")
  paths = methods.REGISTRY[cfg.method].pipelines(cfg)
  if "device" not in paths:
    raise ConfigError(f"config.data.pipeline = 'device': method '{cfg.method}' makes its training views with "
                      "TensorFlow ops that have no JAX version yet, so it runs on the host path: use "
                      "config.data.pipeline = 'auto' or 'host' (docs/ARCHITECTURE.md lists the methods per path)")
