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


# ------------------------------------------------------------------------------------------ RECORDS (spec B.8-B.11)
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
  assert records_cifar.published(arg) > 30.0
  assert str(records_cifar.published(arg)) in records_cifar.__doc__


def test_records_published_numbers_and_nu_rows():
  assert records_cifar.published("dataset=cifar10,imb=0.01,q=0.3,row=corr") == 66.38
  assert records_cifar.published("dataset=cifar10,imb=0.02,q=0.7,row=corr_records_mixup") == 71.24
  assert records_cifar.published("dataset=cifar100,imb=0.01,q=0.07,row=solar") == 39.15
  assert records_cifar.published("dataset=cifar100,imb=0.02,q=0.05,row=corr_records") == 45.56
  for row in records_cifar.ROWS:
    for imb in ("0.02", "0.01"):
      for q in records_cifar.QS["cifar100"]:
        c = records_cifar.get_config(f"dataset=cifar100,imb={imb},q={q},row={row},nu=1")
        config_lib.validate(c)
        assert c[c.method].hierarchical and c.data.count_shuffle_seed == 123 and c.data.group_bounds == ()
        with pytest.raises(KeyError):
          records_cifar.published(f"dataset=cifar100,imb={imb},q={q},row={row},nu=1")
  for row in records_cifar.ROWS:
    config_lib.validate(records_digits.get_config(f"row={row}"))
  with pytest.raises(ValueError, match="unknown row"):
    records_cifar.get_config("row=oracle_la")
