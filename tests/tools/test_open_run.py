"""Inspection: the Python API on a tiny run, the report and comparison command, and the notebook top to bottom."""

import json
import os

import numpy as np
import pytest

from tests.train.test_train import tiny

from ltjax import metrics
from ltjax.tools.open_run import open_run
from ltjax.train import loop

from tests.cfgutil import ROOT  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  base = tmp_path_factory.mktemp("runs")
  out = {}
  for name in ("ce", "arb"):
    out[name] = str(base / name)
    loop.train_and_evaluate(tiny(**{"loss.name": name, "train.epochs": 2, "train.diagnostics_every": 1}), out[name])
  return out


@pytest.mark.slow
def test_diagnostics_are_logged_during_training(runs):
  lines = [json.loads(l) for l in open(os.path.join(runs["ce"], "metrics.jsonl"))]
  diag = [l for l in lines if l["split"] == "diagnostics"]
  assert [d["epoch"] for d in diag] == [0, 1]
  for k in ("nc1", "nc3", "mean_cos_avg", "classifier_cos_avg", "attraction_mean", "repulsion_mean"):
    assert np.isfinite(diag[-1][k]), k


@pytest.mark.slow
def test_open_run_reproduces_the_recorded_results(runs):
  r = open_run(runs["arb"])
  res = json.load(open(os.path.join(runs["arb"], "results.json")))
  ev = r.evaluate("test")
  assert ev["top1"] == pytest.approx(res["best"]["top1"]) and ev["ece"] == pytest.approx(res["best"]["ece"])
  o = r.outputs("test")
  assert o["logits"].shape == (300, 10) and o["features"].shape == (300, 64)
  np.testing.assert_array_equal(np.sort(o["index"]), np.arange(300))
  assert r.classifier().shape == (64, 10)
  conf = r.confusion("test")
  assert conf.sum() == 300 and np.trace(conf) == round(ev["top1"] * 3)
  g = r.gradient_components("test")
  assert g.shape == (10, 10) and np.all(np.isfinite(g))
  geo = r.geometry("test")
  assert geo["etf_cos"] == pytest.approx(-1 / 9) and geo["nc1"] > 0
  np.testing.assert_allclose(metrics.evaluate(o["logits"], o["labels"], r.stats)["top1"], ev["top1"])


@pytest.mark.slow
def test_report_and_comparison_write_the_expected_files(runs, tmp_path):
  from ltjax.tools import report
  report.main([runs["arb"], "--out", str(tmp_path / "one")])
  for f in ("learning_curves.png", "per_class_accuracy.png", "confusion.png", "reliability.png", "classifier_norms.png", "geometry.png",
            "gradient_components.png", "results.md", "results.json"):
    assert (tmp_path / "one" / f).stat().st_size > 0, f
  res = json.loads((tmp_path / "one" / "results.json").read_text())
  assert res["run"] == "arb" and "nc1" in res["geometry"] and res["attraction_mean"] > 0
  report.main([runs["ce"], runs["arb"], "--out", str(tmp_path / "cmp")])
  rows = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
  assert [r["run"] for r in rows] == ["ce", "arb"]
  md = (tmp_path / "cmp" / "comparison.md").read_text()
  assert "| ce |" in md and "| arb |" in md and "few" in md
  for f in ("per_class_comparison.png", "comparison.png", "curves_comparison.png"):
    assert (tmp_path / "cmp" / f).stat().st_size > 0, f


@pytest.mark.slow
def test_notebook_executes_top_to_bottom(runs, monkeypatch, tmp_path):
  """In a kernel where `import tensorflow` fails: inspection needs no TensorFlow (device evaluation)."""
  nbclient = pytest.importorskip("nbclient", reason="the notebook runner (requirements.txt) is not installed")
  nbformat = pytest.importorskip("nbformat", reason="nbformat (requirements.txt) is not installed")

  from tests import notf
  nb = nbformat.read(os.path.join(ROOT, "notebooks", "inspect_checkpoint.ipynb"), as_version=4)
  monkeypatch.setenv("LTJAX_RUN_DIR", runs["arb"])
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [notf.blocker(tmp_path), ROOT,
                                                                  os.environ.get("PYTHONPATH")])))
  client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                   resources={"metadata": {"path": os.path.join(ROOT, "notebooks")}})
  client.execute()
  outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
  assert not [o for o in outputs if o.get("output_type") == "error"]
  text = "".join(o.get("text", "") for o in outputs)
  assert "| arb |" in text and "attraction / repulsion" in text
  assert sum("image/png" in o.get("data", {}) for o in outputs) >= 6
