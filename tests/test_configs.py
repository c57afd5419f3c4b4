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
    assert (c.train.trainable, c.train.frozen_bn, c.optim.schedule) == ("^fc/", "train", "sbcl_linear_step")
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
