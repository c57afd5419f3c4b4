"""Every shipped config (each table row) builds and passes validation, and encodes the official code's settings."""

import itertools
import json

import pytest

from configs import arb_cifar100, cdb_digits, cifar_lt, quickstart, sbcl_cifar, sbcl_digits, svhn_lt

from ltjax import config as config_lib, losses
from ltjax.train import loop, run as run_lib


@pytest.mark.parametrize("dataset,imb,row", list(itertools.product(["cifar10", "cifar100"], ["0.01", "0.02", "0.1"],
                                                                   sorted(cifar_lt.ROWS))))
def test_every_cifar_table_row_validates(dataset, imb, row):
  c = cifar_lt.get_config(f"dataset={dataset},imb={imb},row={row}")
  config_lib.validate(c)
  assert c.train.batch_size == 128 and c.train.epochs == 200 and c.optim.lr == 0.1 and c.optim.weight_decay == 2e-4
  assert c.data.imb_factor == float(imb) and c.data.group_bounds == {"cifar10": (3, 7), "cifar100": (36, 71)}[dataset]


def test_rows_encode_the_spec_tables():
  arb = cifar_lt.get_config("row=arb")
  assert (arb.loss.name, arb.loss.arb_counts, arb.supervised.mixup_alpha, arb.optim.schedule) == (
      "arb", "batch", 0.0, "arb_step")
  assert cifar_lt.get_config("row=arb_ugcc").loss.arb_counts == "global"
  assert cifar_lt.get_config("row=arb_mixup").supervised.mixup_alpha == 1.0
  ldam = cifar_lt.get_config("row=ldam_drw")
  assert (ldam.loss.name, ldam.supervised.train_rule, ldam.supervised.drw_epoch, ldam.optim.schedule) == (
      "ldam", "drw", 160, "ss_step")
  assert cifar_lt.get_config("row=cb_resample").supervised.train_rule == "resample"
  assert cifar_lt.get_config("row=ce_mixup").optim.schedule == "mislas_step"


def test_other_configs_validate_and_bad_arguments_fail():
  for c in (arb_cifar100.get_config(), quickstart.get_config(), svhn_lt.get_config("imb=0.01,row=ldam_drw")):
    config_lib.validate(c)
  assert arb_cifar100.get_config().data.name == "cifar100" and svhn_lt.get_config().data.name == "svhn"
  with pytest.raises(ValueError, match="unknown row"):
    cifar_lt.get_config("row=nope")
  with pytest.raises(ValueError, match="unknown config argument"):
    cifar_lt.get_config("rho=0.1")


# ------------------------------------------------------------------------------------------ RECORDS (RECORDS'
# schedules; the RECORDS README's results)
from configs import records_cifar, records_digits  # noqa: E402

_RECORDS_CELLS = [(ds, imb, q, row) for ds in ("cifar10", "cifar100") for imb in ("0.02", "0.01")
                  for q in records_cifar.QS[ds] for row in records_cifar.ROWS]


@pytest.mark.parametrize("dataset,imb,q,row", _RECORDS_CELLS)
def test_every_records_table_cell_validates(dataset, imb, q, row):
  arg = f"dataset={dataset},imb={imb},q={q},row={row}"
  c = records_cifar.get_config(arg)
  config_lib.validate(c)
  assert (c.model.name, c.optim.lr, c.optim.weight_decay, c.optim.momentum) == ("resnet18_cifar", 0.01, 1e-3, 0.9)
  assert (c.optim.schedule, c.train.batch_size, c.seed, c.data.drop_remainder) == ("records_cosine", 256, 123, True)
  assert c.data.imb_factor == float(imb) and c.data.mean == (0.5071, 0.4867, 0.4408)  # CIFAR-100 test statistics
  s = c[c.method]
  assert s.partial_rate == q and not s.hierarchical and c.data.count_shuffle_seed == -1
  assert tuple(s.train_mean) == ((0.4914, 0.4822, 0.4465) if dataset == "cifar10" else (0.5071, 0.4867, 0.4408))
  if row == "solar":
    est = {"cifar10": 100, "cifar100": 20}[dataset]
    assert c.method == "solar" and s.est_epochs == est and c.train.epochs == est + 800 and c.optim.restart_epoch == est
    assert (s.rho_start, s.rho_end) == {"cifar10": (0.2, 0.6), "cifar100": (0.2, 0.5)}[dataset]
    assert (s.gamma1, s.gamma2) == {"cifar10": (0.1, 0.01), "cifar100": (0.05, 0.01)}[dataset]
    assert (s.queue_length, s.lamd, s.eta, s.tau, s.warmup_epoch) == (64, 3.0, 0.9, 0.99, 50)
  else:
    assert c.method == "records" and c.train.epochs == 800 and s.upd_start == 1 and s.momentum == 0.9
    assert (s.debias, s.mixup) == {"corr": (False, False), "corr_records": (True, False),
                                   "corr_records_mixup": (True, True)}[row] and s.alpha == 1.0
  assert records_cifar.published_top1(arg) > 30.0
  assert str(records_cifar.published_top1(arg)) in records_cifar.__doc__


def test_records_published_numbers_and_nu_rows():
  assert records_cifar.published_top1("dataset=cifar10,imb=0.01,q=0.3,row=corr") == 66.38
  assert records_cifar.published_top1("dataset=cifar10,imb=0.02,q=0.7,row=corr_records_mixup") == 71.24
  assert records_cifar.published_top1("dataset=cifar100,imb=0.01,q=0.07,row=solar") == 39.15
  assert records_cifar.published_top1("dataset=cifar100,imb=0.02,q=0.05,row=corr_records") == 45.56
  for row in records_cifar.ROWS:
    for imb in ("0.02", "0.01"):
      for q in records_cifar.QS["cifar100"]:
        c = records_cifar.get_config(f"dataset=cifar100,imb={imb},q={q},row={row},nu=1")
        config_lib.validate(c)
        assert c[c.method].hierarchical and c.data.count_shuffle_seed == 123 and c.data.group_bounds == ()
        with pytest.raises(KeyError):
          records_cifar.published_top1(f"dataset=cifar100,imb={imb},q={q},row={row},nu=1")
  for row in records_cifar.ROWS:
    config_lib.validate(records_digits.get_config(f"row={row}"))
  with pytest.raises(ValueError, match="unknown row"):
    records_cifar.get_config("row=oracle_la")


@pytest.mark.parametrize("dataset,imb,stage,rule", [(d, i, "1", "drw") for d in ("cifar10", "cifar100")
                                                    for i in ("0.01", "0.02", "0.1")]
                         + [(d, i, "2", r) for d in ("cifar10", "cifar100") for i in ("0.01", "0.02", "0.1")
                            for r in sorted(sbcl_cifar.STAGE2_RULES)])
def test_every_sbcl_setting_validates(dataset, imb, stage, rule):
  c = sbcl_cifar.get_config(f"dataset={dataset},imb={imb},stage={stage},rule={rule}")
  if stage == "2":
    with pytest.raises(config_lib.ConfigError, match="init.workdir is empty"):
      config_lib.validate(c)  # stage 2 without its stage-1 run
    c.init.workdir = "runs/sbcl_s1"
  config_lib.validate(c)
  assert c.data.name == dataset and c.data.imb_factor == float(imb) and c.model.name == "resnet32"


def test_sbcl_configs_encode_the_spec():
  s1 = sbcl_cifar.get_config("stage=1")
  assert (s1.method, s1.optim.lr, s1.optim.momentum, s1.optim.weight_decay, s1.train.batch_size, s1.train.epochs) \
      == ("sbcl", 0.5, 0.9, 1e-4, 1024, 1000)                                      # SBCL `SimCLR/main.py`
  assert (s1.optim.schedule, s1.optim.warmup_epochs, s1.optim.fix_negative_warmup) == ("sbcl_cosine", 10, False)
  assert (s1.sbcl.loss_mode, s1.sbcl.warm_epochs, s1.sbcl.step, s1.sbcl.cluster) == ("rank", 10, 10, 10)
  assert tuple(s1.sbcl.projection) == (64, 128) and s1.sbcl.temperature == 0.1  # SBCL `SupConResNet`, `SupConLoss`
  # SBCL `SupConLoss_rank`:
  assert (s1.sbcl.sbcl_temperature, s1.sbcl.sbcl_base_temperature, s1.sbcl.gamma) == (0.1, 0.07, 0.25)
  assert (s1.train.eval_every, s1.train.select_on, s1.data.drop_remainder) == (0, "last", False)
  # SBCL `SimCLR/linear_classify.py`:
  for rule, want in {"drw": ("ldam", "cosine", "reweight", "sbcl_linear_step", 200),
                     "reweight": ("ldam", "cosine", "resample", "sbcl_linear_cosine", 200),
                     "cb": ("ce", "linear_torch", "class_aware", "sbcl_linear_cosine", 45),
                     "ce": ("ce", "linear_torch", "none", "sbcl_linear_step", 200)}.items():
    c = sbcl_cifar.get_config(f"stage=2,rule={rule}")
    assert (c.loss.name, c.model.head, c.supervised.train_rule, c.optim.schedule, c.train.epochs) == want, rule
    assert (c.method, c.optim.lr, c.optim.weight_decay, c.train.batch_size, c.supervised.cb_beta) == (
        "supervised", 0.1, 0.0, 128, 0.9999)
    assert (c.train.trainable, c.train.frozen_bn, c.init.checkpoint, c.init.strict) == ("^fc/", "eval", "last", True)
    assert (c.loss.ldam_max_m, c.loss.ldam_s) == (0.5, 30.0)
    assert c.init.required  # an empty init.workdir is refused (test_every_sbcl_setting_validates)
  for arg in ("stage=1", "stage=2,rule=drw", "stage=2,rule=cb"):
    c = sbcl_digits.get_config(arg)
    if arg.startswith("stage=2"):
      c.init.workdir = "runs/sbcl_digits_s1"
    config_lib.validate(c)
  with pytest.raises(ValueError, match="unknown stage-2 rule"):
    sbcl_cifar.get_config("stage=2,rule=ldam")
  with pytest.raises(ValueError, match="stage must be"):
    sbcl_cifar.get_config("stage=3")

# ---- MoCo / decoupling / SBCL ImageNet-LT configs -----------------------------------------------------------------

from configs import decouple, moco_digits, moco_pretrain, sbcl_imagenet  # noqa: E402

from ltjax.data import sources  # noqa: E402
from ltjax.models import MODELS  # noqa: E402


def _needs_large(c):
  """Skip (naming what is missing) unless the `large` helper's ResNet-50 and data source are registered."""
  missing = []
  if c.model.name not in MODELS:
    missing.append(f"model '{c.model.name}'")
  if c.data.name not in sources.REGISTRY:
    missing.append(f"data source '{c.data.name}'")
  if missing:
    pytest.skip(" and ".join(missing) + " not in the registry (they come from the large-scale data/model branch)")


@pytest.mark.parametrize("dataset", ["imagenet_lt", "inaturalist"])
def test_moco_pretrain_config(dataset):
  c = moco_pretrain.get_config(f"dataset={dataset}")
  assert (c.method, c.model.name, c.train.batch_size, c.train.epochs) == ("moco", "resnet50", 128, 200)
  assert (c.optim.lr, c.optim.weight_decay, c.optim.schedule) == (0.015, 1e-4, "moco_cosine")
  m = c.moco
  assert (m.queue_size, m.momentum, m.temperature, tuple(m.projection)) == (65536, 0.999, 0.2, (2048, 128))
  assert (tuple(m.crop_scale), tuple(m.jitter), m.jitter_p, m.gray_p, tuple(m.blur_sigma), m.blur_p) == (
      (0.2, 1.0), (0.4, 0.4, 0.4, 0.1), 0.8, 0.2, (0.1, 2.0), 0.5)
  assert c.train.eval_every == 0 and c.data.drop_remainder
  _needs_large(c)
  config_lib.validate(c)


@pytest.mark.parametrize("dataset,row", list(itertools.product(["imagenet_lt", "inaturalist"], decouple.ROWS)))
def test_decouple_rows(dataset, row):
  c = decouple.get_config(f"dataset={dataset},row={row},init=runs/x")
  inat = dataset == "inaturalist"
  assert c.method == "decouple" and c.optim.lr == 0.2 and c.optim.schedule == "decoupling_cosine"
  assert c.optim.weight_decay == (1e-4 if inat else 5e-4) and c.init.workdir == "runs/x"
  assert c.init.exclude == ("^fc/",)
  if row == "crt":
    assert (c.train.batch_size, c.train.epochs) == (512, 30 if inat else 10)
    assert (c.train.trainable, c.train.frozen_bn, c.decouple.sampler) == ("^fc/", "train", "class_aware")
  else:
    assert (c.train.batch_size, c.train.epochs, c.train.trainable) == (100 if inat else 128, 90, "")
    assert c.decouple.sampler == ("class_aware" if row == "ce_balanced" else "uniform")
    assert c.decouple.in_batch_shuffle == (row == "ce_balanced")
  assert decouple.PUBLISHED_ERROR[(dataset, row)] > 0
  _needs_large(c)
  config_lib.validate(c)


@pytest.mark.parametrize("arg", ["stage=1", "stage=2", "stage=2,rule=drw"])
def test_sbcl_imagenet_stages(arg):
  c = sbcl_imagenet.get_config(arg + ",init=runs/s1")
  if arg == "stage=1":
    assert (c.method, c.train.batch_size, c.train.epochs, c.optim.lr, c.optim.weight_decay) == (
        "sbcl_moco", 256, 400, 0.1, 1e-4)
    s = c.sbcl_moco
    assert (s.phase2_epoch, s.kcl_k, s.temperature, s.rank_temperature, s.gamma, s.cluster, s.step) == (
        200, 6, 0.07, 0.12, 0.2, 20, 5)
    assert c.optim.schedule == "sbcl_moco_cosine" and c.moco.queue_size == 65536 and c.moco.bn_groups == 8
  else:
    assert (c.method, c.train.batch_size, c.train.epochs, c.optim.lr, c.optim.weight_decay) == (
        "decouple", 2048, 40, 10.0, 0.0)
    assert (c.train.trainable, c.train.frozen_bn, c.optim.schedule) == ("^fc/", "train", "sbcl_imagenet_linear_step")
    if "drw" in arg:
      assert (c.model.head, c.loss.name, c.decouple.sampler) == ("cosine", "ldam", "uniform")
    else:
      assert (c.decouple.sampler, c.decouple.fc_init, c.decouple.fc_std) == ("class_aware", "normal", 0.01)
  _needs_large(c)
  config_lib.validate(c)


@pytest.mark.parametrize("stage", moco_digits.STAGES)
def test_moco_digits_stages_validate(stage):
  config_lib.validate(moco_digits.get_config(f"stage={stage}"))
  with pytest.raises(ValueError, match="stage must be"):
    moco_digits.get_config("stage=nope")
# ----------------------------------------------------------------------------------------------------------------
# Large-scale rows (ARB's shipped configs)
from configs import imagenet_lt, inat2018, large_lt, places_lt  # noqa: E402

LARGE_SPEC = {  # (dataset, row): (loss, counts, mixup α, batch, wd, epochs)
    ("imagenet_lt", "ce"): ("ce", None, 0.0, 1024, 5e-4, 200),
    ("imagenet_lt", "arb"): ("arb", "batch", 0.0, 768, 5e-4, 200),
    ("imagenet_lt", "arb_ugcc"): ("arb", "global", 0.0, 768, 5e-4, 200),
    ("imagenet_lt", "arb_ugcc_mixup"): ("arb", "global", 0.2, 1024, 5e-4, 200),
    ("inat2018", "ce"): ("ce", None, 0.0, 1024, 1e-4, 200),
    ("inat2018", "arb_ugcc"): ("arb", "global", 0.0, 1024, 1e-4, 200),
    ("inat2018", "arb_ugcc_mixup"): ("arb", "global", 0.2, 1024, 1e-4, 200),
    ("places_lt", "arb_ugcc_mixup"): ("arb", "global", 0.2, 1024, 5e-4, 90),
}


@pytest.mark.parametrize("dataset,row", sorted(LARGE_SPEC))
def test_every_large_scale_row_validates_and_matches_the_spec(dataset, row):
  module = {"imagenet_lt": imagenet_lt, "inat2018": inat2018, "places_lt": places_lt}[dataset]
  c = module.get_config("" if dataset == "places_lt" else f"row={row}")
  config_lib.validate(c)
  loss, counts, alpha, batch, wd, epochs = LARGE_SPEC[(dataset, row)]
  assert c.loss.name == loss and c.supervised.mixup_alpha == alpha and c.train.batch_size == batch
  if counts:
    assert c.loss.arb_counts == counts
  assert (c.optim.weight_decay, c.train.epochs, c.optim.lr, c.optim.momentum) == (wd, epochs, 0.1, 0.9)
  assert c.optim.schedule == "arb_cosine" and c.supervised.train_rule == "none" and not c.data.drop_remainder
  assert c.data.name == dataset and c.data.label_remap == "frequency" and c.data.color_jitter == 0.4
  assert c.data.group_bounds == {"imagenet_lt": (390, 835), "inat2018": (842, 4543), "places_lt": (131, 288)}[dataset]
  assert (c.data.image_size, c.data.eval_resize) == (224, 256)
  if dataset == "places_lt":
    assert c.model.name == "places_resnet152" and c.train.trainable == "^(block|fc)/"
    assert c.init.workdir == "pretrained/resnet152_torchvision.npz" and c.init.exclude == ("^fc/", "^block/")
  else:
    assert c.model.name == "resnet50" and c.init.workdir == "" and c.train.trainable == ""
  assert large_lt.get_config(f"dataset={dataset},row={row}").to_dict() == c.to_dict()


def test_large_scale_variants_and_bad_arguments():
  assert imagenet_lt.get_config("row=arb,source=tfds").data.name == "imagenet_lt_tfds"
  assert inat2018.get_config("source=tfds").data.name == "inat2018_tfds"
  p50 = places_lt.get_config("depth=50,pretrained=0")
  config_lib.validate(p50)
  assert p50.model.name == "places_resnet50" and p50.init.workdir == ""
  with pytest.raises(ValueError, match="unknown row"):
    inat2018.get_config("row=arb")  # ARB ships no batch-count iNat config
  with pytest.raises(ValueError, match="source"):
    large_lt.get_config("dataset=places_lt,source=tfds")
  with pytest.raises(ValueError, match="depth"):
    places_lt.get_config("depth=101")
# ---------------------------------------------------------------------------------------------------------------
# Rethinking the Value of Labels: rotation SSP, fine-tuning, semi-supervised rows (imbalanced-semi-self `train.py`;
# imbalanced-semi-self `pretrain_rot.py`, the official READMEs)

from configs import ss_finetune, ss_rotation, ss_semi  # noqa: E402


def _flat(c):
  import ml_collections
  return dict(config_lib._walk(ml_collections.ConfigDict(config_lib.to_dict(c))))  # what config.json stores


@pytest.mark.parametrize("dataset,imb", list(itertools.product(["cifar10", "cifar100"], ["0.01", "0.02", "0.1"])))
def test_rotation_pretraining_rows_validate(dataset, imb):
  c = ss_rotation.get_config(f"dataset={dataset},imb={imb}")
  config_lib.validate(c)
  assert (c.method, c.loss.name, c.supervised.train_rule, c.supervised.mixup_alpha, c.model.name) == (
      "rotation", "ce", "none", 0.0, "resnet32")
  assert (c.optim.lr, c.optim.momentum, c.optim.weight_decay, c.optim.schedule) == (0.1, 0.9, 2e-4, "ss_step")
  assert (c.train.batch_size, c.train.epochs, c.train.eval_every, c.train.select_on) == (128, 200, 0, "last")
  assert (c.data.name, c.data.imb_factor, c.data.imb_type) == (dataset, float(imb), "exp")


@pytest.mark.parametrize("dataset,imb,row", list(itertools.product(["cifar10", "cifar100"], ["0.01", "0.02", "0.1"],
                                                                   ss_finetune.ROWS)))
def test_finetune_rows_are_the_supervised_rows_plus_init(dataset, imb, row):
  c = ss_finetune.get_config(f"dataset={dataset},imb={imb},row={row}")
  config_lib.validate(c)
  base = cifar_lt.get_config(f"dataset={dataset},imb={imb},row={ss_finetune.ALIASES.get(row, row)}")
  a, b = _flat(c), _flat(base)
  assert {k for k in set(a) | set(b) if a.get(k) != b.get(k)} <= {"init.workdir", "init.checkpoint", "init.exclude",
                                                                   "init.strict"}
  assert c.init.workdir == ss_rotation.workdir(dataset, imb) == f"runs/ss_rot_{dataset}_{imb}"
  assert tuple(c.init.exclude) == ("fc", "linear") and c.init.checkpoint == "last" and c.init.strict


def test_finetune_rows_encode_the_readme_table():
  uni = ss_finetune.get_config("row=ce_uniform")
  bal = ss_finetune.get_config("row=ce_balanced")
  assert (uni.loss.name, uni.supervised.train_rule, bal.loss.name, bal.supervised.train_rule) == (
      "ce", "none", "ce", "resample")
  assert ss_finetune.get_config("pretrained=/x/rot").init.workdir == "/x/rot"
  for (dataset, imb), errs in ss_finetune.PUBLISHED_ERROR.items():
    for e in errs:
      assert f"{e:.2f}" in ss_finetune.__doc__
  assert ss_finetune.PUBLISHED_ERROR[("cifar10", "0.01")] == (26.50, 23.47)
  assert ss_finetune.PUBLISHED_ERROR[("cifar100", "0.1")] == (42.93, 41.94)


@pytest.mark.parametrize("dataset,imb_u", list(itertools.product(["cifar10", "svhn"], ["1.0", "0.04", "0.02", "0.01"])))
def test_semi_rows_validate_and_encode_train_semi(dataset, imb_u):
  c = ss_semi.get_config(f"dataset={dataset},imb=0.02,imb_u={imb_u}")
  config_lib.validate(c)
  u = c.data.unlabeled
  assert (c.data.name, c.data.imb_factor, u.imb_factor, u.multiplier, u.select_by, u.allow_fewer) == (
      dataset, 0.02, float(imb_u), 5, "truth", False)
  assert u.pool == {"cifar10": "data/ti_80M_selected.pickle", "svhn": "svhn_extra"}[dataset]
  assert u.pseudo_labels == f"data/pseudo_labeled_{dataset}_0.02.npz"
  assert (c.loss.name, c.supervised.train_rule, c.train.batch_size, c.train.epochs, c.optim.lr, c.optim.schedule) == (
      "ce", "none", 256, 200, 0.1, "ss_step")
  assert f"{ss_semi.PUBLISHED_ERROR[dataset][imb_u]:.2f}" in ss_semi.__doc__
  assert not c.init.workdir


def test_semi_with_pretraining_and_bad_arguments():
  c = ss_semi.get_config("dataset=svhn,pretrained=runs/r,pool=/p.npz,pseudo=/q.npz")
  config_lib.validate(c)
  assert c.init.workdir == "runs/r" and tuple(c.init.exclude) == ("fc", "linear")
  assert (c.data.unlabeled.pool, c.data.unlabeled.pseudo_labels) == ("/p.npz", "/q.npz")
  assert ss_semi.PUBLISHED_ERROR == {"cifar10": {"1.0": 16.79, "0.04": 16.88, "0.02": 18.36, "0.01": 19.94},
                                     "svhn": {"1.0": 13.07, "0.04": 13.36, "0.02": 13.16, "0.01": 14.54}}
  with pytest.raises(ValueError, match="semi-supervised rows exist for"):
    ss_semi.get_config("dataset=cifar100")
  with pytest.raises(ValueError, match="rotation pre-training runs on"):
    ss_rotation.get_config("dataset=svhn")
  with pytest.raises(ValueError, match="unknown row"):
    ss_finetune.get_config("row=arb")


# ------------------------------------------------------------------------------------------- renamed keys, sections
@pytest.mark.parametrize("old,new,value", [("train_rule", "supervised.train_rule", "drw"),
                                           ("cb_beta", "supervised.cb_beta", 0.999),
                                           ("drw_epoch", "supervised.drw_epoch", 100),
                                           ("mixup_alpha", "supervised.mixup_alpha", 1.0)])
def test_a_key_in_its_old_spelling_is_an_error_naming_the_new_key(old, new, value):
  c = config_lib.default()
  c[old] = value
  with pytest.raises(config_lib.ConfigError, match=f"config.{old} was renamed to config.{new}"):
    config_lib.validate(c)
  section, key = new.split(".")
  c[old] = None  # the placeholder itself is accepted
  c[section][key] = value
  if old == "train_rule":
    c.supervised.drw_epoch = 100  # DRW needs epochs <= 2·drw_epoch
  config_lib.validate(c)


def test_a_stored_config_in_the_old_spelling_is_read_in_the_new_one(tmp_path):
  """A run directory written before the supervised section existed opens and resumes with today's config."""
  c = cifar_lt.get_config("dataset=cifar10,row=ldam_drw")
  stored = config_lib.to_dict(c)
  assert "train_rule" not in stored and stored["supervised"]["train_rule"] == "drw"
  old = dict(stored)
  for k, v in old.pop("supervised").items():
    old[k] = v  # the old layout: train_rule, cb_beta, drw_epoch, mixup_alpha at the top level
  (tmp_path / "config.json").write_text(json.dumps(old))
  back = config_lib.load_stored(str(tmp_path / "config.json"))
  assert back.supervised.to_dict() == c.supervised.to_dict() and "train_rule" not in back
  config_lib.validate(back)
  loop._check_workdir_config(str(tmp_path), c)  # same experiment: resumable
  c.supervised.drw_epoch = 150
  with pytest.raises(config_lib.ConfigError, match="supervised.drw_epoch"):
    loop._check_workdir_config(str(tmp_path), c)


def test_the_loss_section_is_the_union_of_what_the_losses_declare():
  section = config_lib.default().loss
  declared = {f for e in losses.REGISTRY.values() for f in e.defaults}
  assert set(section.keys()) == declared | {"name"}
  for e in losses.REGISTRY.values():
    for f, v in e.defaults.items():
      assert section[f] == v, (e.name, f)
  c = config_lib.default()
  c.loss.las_shape = "wavy"
  with pytest.raises(config_lib.ConfigError, match="las_shape"):
    config_lib.validate(c)


def test_auto_head_is_the_one_the_loss_declares():
  assert losses.head_for("ldam") == "cosine" and losses.head_for("ce") == "linear"
  c = cifar_lt.get_config("dataset=cifar10,row=ldam_drw")
  assert run_lib._head(c) == "cosine"
  c.model.head = "linear"
  with pytest.raises(config_lib.ConfigError, match="cosine logits"):
    config_lib.validate(c)


def test_parse_arg_is_typed_by_the_defaults():
  from configs.common import parse_arg
  a = parse_arg("epochs=5,lr=0.5,name=x,nu", epochs=30, lr=0.1, name="y", nu=False, keep="k")
  assert a == {"epochs": 5, "lr": 0.5, "name": "x", "nu": True, "keep": "k"}
  assert parse_arg("nu=0", nu=True)["nu"] is False and parse_arg("", imb="0.01") == {"imb": "0.01"}
  with pytest.raises(ValueError, match="unknown config argument 'rows'"):
    parse_arg("rows=1", row="a")
  with pytest.raises(ValueError, match="'epochs' must be int"):
    parse_arg("epochs=ten", epochs=30)
  with pytest.raises(ValueError, match="is a flag"):
    parse_arg("nu=maybe", nu=False)
  assert cdb_digits.get_config("epochs=7").train.epochs == 7


def test_crt_cifar_is_a_frozen_backbone_with_a_fresh_classifier_on_class_aware_batches():
  from configs import crt_cifar
  c = crt_cifar.get_config("dataset=cifar100,imb=0.02")
  assert (c.method, c.decouple.sampler, c.train.trainable, c.init.exclude) == ("decouple", "class_aware", "^fc/",
                                                                               ("^fc/",))
  assert c.data.group_bounds == (36, 71) and c.optim.schedule == "decoupling_cosine" and c.train.epochs == 10
  with pytest.raises(config_lib.ConfigError, match="init.workdir"):
    config_lib.validate(c)
  c.init.workdir = "runs/stage1"
  config_lib.validate(c)


def test_published_numbers_have_one_home_read_by_docstring_and_table_runner():
  """Every config's PUBLISHED entry appears in its docstring (generated from it) and comes back from
  `published(args)`, the table runner's hook; missing numbers are labelled, never given a value."""
  import importlib

  from configs.common import Published
  checked = 0
  for name in ("cifar_lt", "mislas_stage2", "sbcl_cifar", "sbcl_imagenet"):
    mod = importlib.import_module(f"configs.{name}")
    for key, p in mod.PUBLISHED.items():
      assert isinstance(p, Published) and p.source, (name, key)
      if p.top1 is None:
        assert "missing" in p.source
        continue
      assert f"{p.top1:.2f}" in mod.__doc__ or f"{p.top1} / " in mod.__doc__, (name, key, p.top1)
      args = dict(zip(("dataset", "imb", "row"), key))
      args = {k: str(v) for k, v in args.items()}
      if name.startswith("sbcl"):
        args["stage"] = "2"
      assert mod.published(args)["top1"] == p.top1, (name, key)
      checked += 1
  assert checked >= 20
