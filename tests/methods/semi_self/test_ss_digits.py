"""The semi- and self-supervised chains on the embedded digits (configs/ss_digits.py): the 'unused' pool is exactly
the training images the long-tailed subset (and the hold-out) left out, D_U is drawn from it by the official rule, and
both chains run end to end (rotation → fine-tune; base → pseudo-label → semi)."""

import json
import os

import numpy as np
import pytest

from configs import ss_digits
from tests.cfgutil import override

from ltjax.data import sources, unlabeled
from ltjax.errors import PoolError


def test_unused_pool_is_the_left_out_training_images():
  c = ss_digits.get_config("stage=base")
  full = sources._digits(None).train  # the 1,497-image train pool, original indices
  d = sources.load(c.data, keep_unused=True)
  assert len(d.train) == 585 and len(d.unused) == 1497 - 585
  assert not set(d.train.indices.tolist()) & set(d.unused.indices.tolist())
  assert sorted(d.train.indices.tolist() + d.unused.indices.tolist()) == sorted(full.indices.tolist())
  per_class = np.bincount(d.unused.labels, minlength=10)
  assert per_class[0] == 148 - 144 and per_class[9] == 150 - 14
  c.data.val_per_class = 2
  v = sources.load(c.data, keep_unused=True)
  assert len(v.unused) == 1497 - 585 - 20 and not set(v.val.indices.tolist()) & set(v.unused.indices.tolist())
  assert sources.load(c.data).unused is None  # kept only when asked
  with pytest.raises(PoolError, match="in-memory dataset"):
    unlabeled.load_pool("unused")


def test_d_u_follows_the_official_rule_on_the_unused_pool():
  d = sources.load(ss_digits.get_config("stage=base").data, keep_unused=True)
  rng = d.selection_rng
  idx, u = unlabeled.select(np.bincount(d.train.labels), tuple(range(10)), d.unused.labels, 1.0, rng,
                            multiplier=1, allow_fewer=True)
  assert u.tolist() == [58] * 10
  got = np.bincount(d.unused.labels[idx], minlength=10)
  assert got.tolist() == [4, 41] + [58] * 8 and len(idx) == 509


@pytest.mark.slow
def test_both_chains_end_to_end(tmp_path):
  from ltjax.tools import pseudolabel
  from ltjax.train import loop
  short = {"train.epochs": 2, "model.name": "resnet8", "train.eval_every": 1, "train.progress_bar": False}
  rot, ft = str(tmp_path / "rot"), str(tmp_path / "ft")
  loop.train_and_evaluate(override(ss_digits.get_config("stage=rotation"), **dict(short, **{"train.eval_every": 0})),
                          rot)
  assert os.listdir(os.path.join(rot, "checkpoints", "last"))  # the pre-trained model the fine-tuning reads
  loop.train_and_evaluate(override(ss_digits.get_config(f"stage=finetune,row=ce_balanced,init={rot}"), **short), ft)
  assert json.load(open(os.path.join(ft, "results.json")))["best"]["num_examples"] == 300
  base, semi, pl = str(tmp_path / "base"), str(tmp_path / "semi"), str(tmp_path / "pl.npz")
  loop.train_and_evaluate(override(ss_digits.get_config("stage=base"), **short), base)
  s = pseudolabel.pseudo_label(base, "unused", pl)
  assert s["num_images"] == 912 and "accuracy_vs_pool_labels" in s
  loop.train_and_evaluate(override(ss_digits.get_config(f"stage=semi,pseudo={pl}"), **short), semi)
  res = json.load(open(os.path.join(semi, "results.json")))
  assert sum(res["train_counts"]) == 585 + 509  # labeled + D_U, counted with their pseudo labels
