"""Learning curves and comparison figures: the series read from metrics.jsonl (resumed steps, non-finite values, a
line cut by a kill), and the PNGs written and non-empty, read back as images."""

import json
import os

import numpy as np
import pytest

from ltjax.tools import curves, report, table


def _metrics(workdir, steps_per_epoch=10, epochs=4, eval_from=1, resume_at=None):
  os.makedirs(workdir, exist_ok=True)
  lines = []
  for e in range(epochs):
    for s in sorted(set(range(5, steps_per_epoch, 5)) | {steps_per_epoch}):  # the loop flushes at each epoch's end
      step = e * steps_per_epoch + s
      lines.append({"step": step, "split": "train", "epoch": e, "loss": 2.0 / (step + 1), "lr": 0.1 * (1 - step / 40),
                    "accuracy": min(0.2 + 0.02 * step, 1.0)})
    if e >= eval_from:
      lines.append({"step": (e + 1) * steps_per_epoch, "split": "test", "epoch": e, "top1": 50.0 + 10 * e,
                    "many_thr": 90.0, "medium_thr": None, "few_thr": 20.0 + 5 * e})
  if resume_at is not None:  # a resumed run logs the steps after its checkpoint again, with other values
    lines += [dict(l, loss=9.0) for l in lines if l["split"] == "train" and l["step"] > resume_at]
  with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
    f.write("".join(json.dumps(l) + "\n" for l in lines))
    f.write('{"step": 99, "split": "tr')  # cut by kill -9 mid-write
  return lines


def _png(path):
  import matplotlib.image as mpimg
  assert os.path.getsize(path) > 0, path
  img = mpimg.imread(path)
  assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
  assert float(np.std(img[..., :3])) > 0.01, f"{path} is blank"  # something was drawn
  return img


def test_series_are_read_per_epoch_with_resumed_steps_replaced(tmp_path):
  w = str(tmp_path / "run")
  _metrics(w, resume_at=25)
  m = curves.read_metrics(w)
  assert set(m) == {"train", "test"} and len(m["train"]) == 8 and len(m["test"]) == 3
  assert curves.steps_per_epoch(m) == pytest.approx(10)
  x, loss = curves.series(m, "train", "loss")
  np.testing.assert_allclose(x, [0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4])
  np.testing.assert_allclose(loss[:5], [2 / 6, 2 / 11, 2 / 16, 2 / 21, 2 / 26])
  np.testing.assert_allclose(loss[5:], 9.0)  # the lines written after the resume win
  x, top1 = curves.series(m, "test", "top1")
  np.testing.assert_allclose(x, [2, 3, 4]) and np.testing.assert_allclose(top1, [60, 70, 80])
  x, med = curves.series(m, "test", "medium_thr")
  assert np.all(np.isnan(med))  # an empty group stays missing, never 0
  assert curves.series(m, "val", "top1")[0].size == 0


def test_steps_per_epoch_without_evaluation_comes_from_the_train_lines(tmp_path):
  w = str(tmp_path / "ssl")
  _metrics(w, steps_per_epoch=8, epochs=3, eval_from=99)
  assert curves.steps_per_epoch(curves.read_metrics(w)) == pytest.approx(8)


def test_learning_curves_and_table_figures_are_written(tmp_path, capsys):
  w = str(tmp_path / "run")
  _metrics(w)
  report.main([w, "--curves-only"])
  _png(os.path.join(w, "report", "learning_curves.png"))
  w2 = str(tmp_path / "ssl")
  _metrics(w2, eval_from=99)
  report.main([w, w2, "--curves-only", "--out", str(tmp_path / "both")])
  _png(str(tmp_path / "both" / "ssl" / "learning_curves.png"))
  with pytest.raises(SystemExit, match="metrics.jsonl"):
    report.write_learning_curves(str(tmp_path / "nothing"), str(tmp_path / "x"))
  entries = [{"row": "ce", "n": 2, "top1": (80.0, 1.0), "many_thr": (95.0, 0.5), "medium_thr": (None, None),
              "few_thr": (40.0, 3.0), "published": {"top1": 78.0, "source": "s"}, "diff": 2.0},
             {"row": "arb", "n": 1, "top1": (85.0, 0.0), "many_thr": (93.0, 0.0), "medium_thr": (None, None),
              "few_thr": (60.0, 0.0), "published": None, "diff": None}]
  table.plot(entries, str(tmp_path / "table.png"), "t")
  _png(str(tmp_path / "table.png"))
