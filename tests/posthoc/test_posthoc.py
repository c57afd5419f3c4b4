"""Post-hoc logit adjustment and τ-normalisation against references written from the papers' formulas, and the
tool end to end on a digits run."""

import json
import math

import numpy as np
import pytest

from ltjax import posthoc


def test_logit_adjust_against_the_formula():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(5, 4))
  n = np.array([50, 20, 5, 1])
  for tau in (0.0, 0.5, 1.0, 2.0):
    got = posthoc.logit_adjust(z, n, tau)
    for i in range(5):
      for c in range(4):
        want = z[i, c] - tau * math.log(n[c] / 76.0)
        assert got[i, c] == pytest.approx(want, rel=1e-6, abs=1e-6)
  # τ = 1 turns a model of the training distribution p(y|x) ∝ π_y·q(y|x) back into the balanced q's argmax.
  q = rng.dirichlet(np.ones(4), size=200)
  pi = n / n.sum()
  z_train = np.log(q * pi)
  np.testing.assert_array_equal(posthoc.logit_adjust(z_train, n, 1.0).argmax(1), q.argmax(1))


def test_logit_adjust_refuses_an_empty_class():
  with pytest.raises(ValueError, match="positive"):
    posthoc.logit_adjust(np.zeros((2, 3)), [3, 0, 1], 1.0)


def test_tau_normalize_against_the_formula():
  rng = np.random.default_rng(1)
  f = rng.normal(size=(6, 3))
  w = rng.normal(size=(3, 4)) * np.array([3.0, 1.0, 0.5, 0.1])
  b = rng.normal(size=4)
  for tau in (0.0, 0.7, 1.0):
    got = posthoc.tau_normalize(f, w, tau)
    got_b = posthoc.tau_normalize(f, w, tau, bias=b)
    for i in range(6):
      for c in range(4):
        norm = math.sqrt(sum(w[d, c] ** 2 for d in range(3)))
        want = sum(f[i, d] * w[d, c] for d in range(3)) / norm ** tau
        assert got[i, c] == pytest.approx(want, rel=1e-5, abs=1e-6)
        assert got_b[i, c] == pytest.approx(want + b[c], rel=1e-5, abs=1e-6)


def test_sweep_selects_on_one_split_and_reports_on_another():
  calls = []

  def adjust(split, tau):
    return np.array([[tau, split == "val"]], np.float32)

  def evaluate(z, split):
    calls.append((split, float(z[0, 0])))
    top1 = {"val": {0.0: 50.0, 0.5: 70.0, 1.0: 70.0}, "test": {0.0: 40.0, 0.5: 65.0}}[split][float(z[0, 0])]
    return {"top1": top1, "ece": 1.0}

  out = posthoc.sweep(adjust, [0.0, 0.5, 1.0], evaluate, "val", "test")
  assert out["best_tau"] == 0.5  # the smallest τ of the tie
  assert out["report"]["top1"] == 65.0 and out["report_tau0"]["top1"] == 40.0
  assert [r["top1"] for r in out["sweep"]] == [50.0, 70.0, 70.0]
  assert calls[:3] == [("val", 0.0), ("val", 0.5), ("val", 1.0)]


def test_parse_taus():
  from ltjax.tools.posthoc import parse_taus
  np.testing.assert_allclose(parse_taus("0:1:0.25"), [0, 0.25, 0.5, 0.75, 1.0])
  np.testing.assert_allclose(parse_taus("0.5,1"), [0.5, 1.0])
  with pytest.raises(SystemExit, match="start:stop:step"):
    parse_taus("1:0:0.5")


@pytest.mark.slow
def test_tool_on_a_digits_run(tmp_path, capsys):
  """A CE run on digits-LT (ρ = 0.1): the tool's τ = 0 equals the run's own evaluation, its τ = 1 the reference
  adjustment of the same logits, τ-norm at τ = 0 the classifier without its bias; the JSON is written."""
  from ltjax.tools import posthoc as tool
  from ltjax.tools.open_run import open_run
  from ltjax.train import loop
  from ltjax import metrics
  from tests.train.test_train import tiny
  w = tmp_path / "ce"
  loop.train_and_evaluate(tiny(**{"loss.name": "ce", "train.epochs": 3, "data.val_per_class": 4,
                                  "train.select_on": "val"}), str(w))
  assert tool.main(["--workdir", str(w), "--adjust", "la", "--taus", "0,1"]) == 0
  out = json.loads((w / "posthoc_la.json").read_text())
  assert out["select_on"] == "val" and out["report_on"] == "test"
  r = open_run(str(w))
  o = r.outputs("test")
  assert out["report_tau0"]["top1"] == pytest.approx(r.evaluate("test")["top1"])
  ref = o["logits"] - np.log(r.stats.counts / r.stats.counts.sum())[None, :]
  if out["best_tau"] == 1.0:
    assert out["report"]["top1"] == pytest.approx(metrics.evaluate(ref, o["labels"], r.stats)["top1"])
  assert "τ chosen on val" in capsys.readouterr().out
  assert tool.main(["--workdir", str(w), "--adjust", "tau_norm", "--taus", "0", "--select-on", "test"]) == 0
  out = json.loads((w / "posthoc_tau_norm.json").read_text())
  k = np.asarray(r.state.params["fc"]["kernel"])
  want = metrics.evaluate(o["features"] @ k, o["labels"], r.stats)["top1"]
  assert out["report"]["top1"] == pytest.approx(want)
  assert tool.main(["--workdir", str(tmp_path / "nothing"), "--adjust", "la"]) == 2


@pytest.mark.slow
def test_corr_plus_oracle_la_on_a_partial_label_digits_run(tmp_path):
  """RECORDS' "CORR + Oracle-LA": post-hoc LA with τ = 1 and the prior of the TRUE training labels (the run's class
  counts; the method itself only saw candidate sets) on a CORR run."""
  from configs import records_digits
  from ltjax import metrics
  from ltjax.tools import posthoc as tool
  from ltjax.tools.open_run import open_run
  from ltjax.train import loop
  from tests.cfgutil import override
  cfg = override(records_digits.get_config("row=corr"), **{"train.epochs": 2, "train.eval_every": 1,
                                                           "train.progress_bar": False})
  w = tmp_path / "corr"
  loop.train_and_evaluate(cfg, str(w))
  assert tool.main(["--workdir", str(w), "--adjust", "la", "--taus", "1"]) == 0
  out = json.loads((w / "posthoc_la.json").read_text())
  r = open_run(str(w))
  true_counts = np.bincount(r.run.data.train.labels, minlength=10)
  np.testing.assert_array_equal(r.stats.counts, true_counts)
  o = r.outputs("test")
  ref = metrics.evaluate(o["logits"] - np.log(true_counts / true_counts.sum())[None, :], o["labels"], r.stats)
  assert out["best_tau"] == 1.0 and out["report"]["top1"] == pytest.approx(ref["top1"])
