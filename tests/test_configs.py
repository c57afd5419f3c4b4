"""Every shipped config (each table row) builds and passes validation, and encodes the spec's settings."""

import itertools

import pytest

from configs import arb_cifar100, cifar_lt, quickstart, sbcl_cifar, sbcl_digits, svhn_lt
from ltjax import config as config_lib


@pytest.mark.parametrize("dataset,imb,row", list(itertools.product(["cifar10", "cifar100"], ["0.01", "0.02", "0.1"],
                                                                   sorted(cifar_lt.ROWS))))
def test_every_cifar_table_row_validates(dataset, imb, row):
  c = cifar_lt.get_config(f"dataset={dataset},imb={imb},row={row}")
  config_lib.validate(c)
  assert c.train.batch_size == 128 and c.train.epochs == 200 and c.optim.lr == 0.1 and c.optim.weight_decay == 2e-4
  assert c.data.imb_factor == float(imb) and c.data.group_bounds == {"cifar10": (3, 7), "cifar100": (36, 71)}[dataset]


def test_rows_encode_the_spec_tables():
  arb = cifar_lt.get_config("row=arb")
  assert (arb.loss.name, arb.loss.arb_counts, arb.mixup_alpha, arb.optim.schedule) == ("arb", "batch", 0.0, "arb_step")
  assert cifar_lt.get_config("row=arb_ugcc").loss.arb_counts == "global"
  assert cifar_lt.get_config("row=arb_mixup").mixup_alpha == 1.0
  ldam = cifar_lt.get_config("row=ldam_drw")
  assert (ldam.loss.name, ldam.train_rule, ldam.drw_epoch, ldam.optim.schedule) == ("ldam", "drw", 160, "ss_step")
  assert cifar_lt.get_config("row=cb_resample").train_rule == "resample"
  assert cifar_lt.get_config("row=ce_mixup").optim.schedule == "mislas_step"


def test_other_configs_validate_and_bad_arguments_fail():
  for c in (arb_cifar100.get_config(), quickstart.get_config(), svhn_lt.get_config("imb=0.01,row=ldam_drw")):
    config_lib.validate(c)
  assert arb_cifar100.get_config().data.name == "cifar100" and svhn_lt.get_config().data.name == "svhn"
  with pytest.raises(ValueError, match="unknown row"):
    cifar_lt.get_config("row=nope")
  with pytest.raises(ValueError, match="unknown config argument"):
    cifar_lt.get_config("rho=0.1")


@pytest.mark.parametrize("dataset,imb,stage,rule", [(d, i, "1", "drw") for d in ("cifar10", "cifar100")
                                                    for i in ("0.01", "0.02", "0.1")]
                         + [(d, i, "2", r) for d in ("cifar10", "cifar100") for i in ("0.01", "0.02", "0.1")
                            for r in sorted(sbcl_cifar.STAGE2_RULES)])
def test_every_sbcl_setting_validates(dataset, imb, stage, rule):
  c = sbcl_cifar.get_config(f"dataset={dataset},imb={imb},stage={stage},rule={rule}")
  config_lib.validate(c)
  assert c.data.name == dataset and c.data.imb_factor == float(imb) and c.model.name == "resnet32"


def test_sbcl_configs_encode_the_spec():
  s1 = sbcl_cifar.get_config("stage=1")
  assert (s1.method, s1.optim.lr, s1.optim.momentum, s1.optim.weight_decay, s1.train.batch_size, s1.train.epochs) \
      == ("sbcl", 0.5, 0.9, 1e-4, 1024, 1000)                                      # A.6.1
  assert (s1.optim.schedule, s1.optim.warmup_epochs, s1.optim.fix_negative_warmup) == ("sbcl_cosine", 10, False)
  assert (s1.sbcl.loss_mode, s1.sbcl.warm_epochs, s1.sbcl.step, s1.sbcl.cluster) == ("rank", 10, 10, 10)
  assert tuple(s1.sbcl.projection) == (64, 128) and s1.sbcl.temperature == 0.1      # A.3.2, A.5.1
  assert (s1.sbcl.sbcl_temperature, s1.sbcl.sbcl_base_temperature, s1.sbcl.gamma) == (0.1, 0.07, 0.25)  # A.5.2
  assert (s1.train.eval_every, s1.train.select_on, s1.data.drop_remainder) == (0, "last", False)
  for rule, want in {"drw": ("ldam", "cosine", "reweight", "sbcl_linear_step", 200),
                     "reweight": ("ldam", "cosine", "resample", "sbcl_linear_cosine", 200),
                     "cb": ("ce", "linear_torch", "class_aware", "sbcl_linear_cosine", 45),
                     "ce": ("ce", "linear_torch", "none", "sbcl_linear_step", 200)}.items():    # A.5.5, A.6.2
    c = sbcl_cifar.get_config(f"stage=2,rule={rule}")
    assert (c.loss.name, c.model.head, c.train_rule, c.optim.schedule, c.train.epochs) == want, rule
    assert (c.method, c.optim.lr, c.optim.weight_decay, c.train.batch_size, c.cb_beta) == ("supervised", 0.1, 0.0,
                                                                                           128, 0.9999)
    assert (c.train.trainable, c.train.frozen_bn, c.init.checkpoint, c.init.strict) == ("^fc/", "eval", "last", True)
    assert (c.loss.ldam_max_m, c.loss.ldam_s) == (0.5, 30.0)
  for arg in ("stage=1", "stage=2,rule=drw", "stage=2,rule=cb"):
    config_lib.validate(sbcl_digits.get_config(arg))
  with pytest.raises(ValueError, match="unknown stage-2 rule"):
    sbcl_cifar.get_config("stage=2,rule=ldam")
  with pytest.raises(ValueError, match="stage must be"):
    sbcl_cifar.get_config("stage=3")
