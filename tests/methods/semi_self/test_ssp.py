"""Rotation self-supervised pre-training → fine-tuning end to end on the embedded digits (imbalanced-semi-self
`train.py`,
imbalanced-semi-self `pretrain_rot.py`): the pre-training run trains a 4-way head without evaluation, the fine-tuning
run copies every weight and BN
statistic but the head, and checkpoints of another architecture or head are refused with the mismatch named."""

import json

import jax
import numpy as np
import pytest

from configs import ss_finetune
from tests.data.test_semi_data import digits_pool, write_pool
from tests.train.test_train import params_of, tiny

from ltjax.errors import ConfigError
from ltjax.tools import pseudolabel, rotation_eval
from ltjax.train import loop, pretrained, run as run_lib


def flat(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    if hasattr(v, "items"):
      out.update(flat(v, f"{prefix}{k}/"))
    else:
      out[prefix + k] = np.asarray(v)
  return out


def finetune_cfg(rot_dir, **over):
  return tiny(**{"loss.name": "ce", "train.epochs": 1, "init.workdir": rot_dir, "init.checkpoint": "last",
                 "init.exclude": ss_finetune.EXCLUDE, **over})


@pytest.fixture(scope="module")
def rotation_run(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("rot") / "rot")
  cfg = tiny(**{"method": "rotation", "loss.name": "ce", "train.epochs": 2, "train.eval_every": 0,
                "train.select_on": "last", "optim.lr": 0.05})
  res = loop.train_and_evaluate(cfg, d)
  return d, cfg, res


@pytest.mark.slow
def test_rotation_run_trains_a_four_way_head_without_evaluation(rotation_run, capsys):
  d, cfg, res = rotation_run
  assert res["best"] is None and res["final"] is None  # no class-label evaluation
  lines = [json.loads(l) for l in open(f"{d}/metrics.jsonl")]
  assert {l["split"] for l in lines} == {"train"}
  assert all(np.isfinite(l["loss"]) and 0.0 <= l["accuracy"] <= 1.0 for l in lines)
  v = pretrained.load_variables(d, "last")
  assert v["params"]["fc"]["kernel"].shape == (64, 4) and v["params"]["fc"]["bias"].shape == (4,)
  assert rotation_eval.main(["--workdir", d]) == 0
  out = json.loads(open(f"{d}/rotation_eval.json").read())
  assert set(out) == {"rotation_accuracy", "rot0", "rot90", "rot180", "rot270", "split", "step"}
  assert out["rotation_accuracy"] == pytest.approx(np.mean([out[k] for k in ("rot0", "rot90", "rot180", "rot270")]))
  # Two short epochs already tell rotations apart far better than the 25% of chance.
  assert out["rotation_accuracy"] > 35.0
  assert "rotation accuracy on test" in capsys.readouterr().out


@pytest.mark.slow
def test_finetuning_copies_every_weight_but_the_head(rotation_run, tmp_path):
  d, _, _ = rotation_run
  src = pretrained.load_variables(d, "last")
  cfg = finetune_cfg(d)
  run = run_lib.setup(cfg)
  init = jax.device_get(run_lib.create_state(run, cfg.seed, pretrained=True))
  fresh = jax.device_get(run_lib.create_state(run, cfg.seed))
  p_src, p_init, p_fresh = flat(src["params"]), flat(init.params), flat(fresh.params)
  head = {k for k in p_init if "fc" in k or "linear" in k}
  assert head == {"fc/kernel", "fc/bias"} and p_init["fc/kernel"].shape == (64, 10)
  for k, v in p_init.items():
    np.testing.assert_array_equal(v, p_fresh[k] if k in head else p_src[k], err_msg=k)
  b_src, b_init = flat(src["batch_stats"]), flat(init.batch_stats)
  assert b_init and set(b_init) == set(b_src)
  for k, v in b_init.items():  # BN running statistics copied too
    np.testing.assert_array_equal(v, b_src[k], err_msg=k)
  assert not np.array_equal(b_init[next(iter(b_init))], flat(fresh.batch_stats)[next(iter(b_init))])

  # The trainer itself starts from them: a run that trains only the head (encoder in inference mode) ends with
  # exactly the pre-trained encoder and BN statistics.
  probe = finetune_cfg(d, **{"train.trainable": "^fc/", "train.frozen_bn": "eval"})
  loop.train_and_evaluate(probe, str(tmp_path / "probe"))
  after, _ = params_of(str(tmp_path / "probe"), probe)
  for k, v in flat(jax.device_get(after.params)).items():
    if k not in head:
      np.testing.assert_array_equal(v, p_src[k], err_msg=k)
  for k, v in flat(jax.device_get(after.batch_stats)).items():
    np.testing.assert_array_equal(v, b_src[k], err_msg=k)

  # Then normal fine-tuning: the whole network trains.
  res = loop.train_and_evaluate(cfg, str(tmp_path / "ft"))
  assert np.isfinite(res["best"]["top1"])
  tuned = flat(jax.device_get(params_of(str(tmp_path / "ft"), cfg)[0].params))
  encoder = sorted(set(p_src) - head)
  assert sum(not np.array_equal(tuned[k], p_src[k]) for k in encoder) == len(encoder)


@pytest.mark.slow
def test_checkpoint_of_another_architecture_or_head_is_refused(rotation_run, tmp_path):
  d, _, _ = rotation_run
  with pytest.raises(ConfigError, match=r"a 'resnet8' run.*another architecture"):
    loop.train_and_evaluate(finetune_cfg(d, **{"model.name": "resnet20"}), str(tmp_path / "a"))
  with pytest.raises(ConfigError, match=r"holds params/fc/bias with shape \(4,\), but the new model needs \(10,\)"):
    loop.train_and_evaluate(finetune_cfg(d, **{"init.exclude": ()}), str(tmp_path / "b"))
  with pytest.raises(ConfigError, match="does not exist"):
    loop.train_and_evaluate(finetune_cfg(str(tmp_path / "missing")), str(tmp_path / "c"))


@pytest.mark.slow
def test_pseudo_labelling_with_a_pretraining_run_is_refused(rotation_run, tmp_path, capsys):
  d, _, _ = rotation_run
  images, truth = digits_pool(2)
  pool = write_pool(tmp_path, images, truth)
  assert pseudolabel.main(["--workdir", d, "--pool", pool, "--out", str(tmp_path / "pl.npz")]) == 2
  assert "predicts 4 outputs" in capsys.readouterr().err
  assert not (tmp_path / "pl.npz").exists()
