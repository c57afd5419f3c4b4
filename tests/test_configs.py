"""Every shipped config (each table row) builds and passes validation, and encodes the spec's settings."""

import itertools

import pytest

from configs import arb_cifar100, cifar_lt, quickstart, svhn_lt
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
