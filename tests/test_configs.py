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


# ----------------------------------------------------------------------------------------------------------------
# Large-scale rows (spec §2.6)
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
  assert c.loss.name == loss and c.mixup_alpha == alpha and c.train.batch_size == batch
  if counts:
    assert c.loss.arb_counts == counts
  assert (c.optim.weight_decay, c.train.epochs, c.optim.lr, c.optim.momentum) == (wd, epochs, 0.1, 0.9)
  assert c.optim.schedule == "arb_cosine" and c.train_rule == "none" and not c.data.drop_remainder
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
