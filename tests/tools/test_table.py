"""The table runner: aggregation against hand-computed means and sample standard deviations, '–' for empty groups,
published numbers and differences, and two digits rows × two seeds end to end."""

import csv
import json
import math
import os

import pytest

from ltjax.tools import table


def _write(workdir, row, seed, best):
  d = os.path.join(workdir, row, f"seed_{seed}")
  os.makedirs(d, exist_ok=True)
  with open(os.path.join(d, "results.json"), "w") as f:
    json.dump({"best": best, "final": best}, f)


def test_gather_means_stds_empty_groups_and_published(tmp_path):
  w = str(tmp_path)
  _write(w, "a", 0, {"top1": 80.0, "many_thr": 90.0, "medium_thr": None, "few_thr": 50.0})
  _write(w, "a", 1, {"top1": 84.0, "many_thr": 92.0, "medium_thr": None, "few_thr": 60.0})
  _write(w, "b", 0, {"top1": 70.0, "many_thr": 95.0, "medium_thr": 70.0, "few_thr": 30.0})
  pub = lambda args: {"top1": 81.5, "source": "paper T1"} if args["row"] == "a" else None  # noqa: E731
  e = table.gather(w, ["a", "b", "c"], [0, 1], published=pub)
  a, b, c = e
  assert a["n"] == 2 and a["top1"][0] == pytest.approx(82.0)
  assert a["top1"][1] == pytest.approx(math.sqrt(((80 - 82) ** 2 + (84 - 82) ** 2) / 1))  # sample std (n − 1)
  assert a["medium_thr"] == (None, None) and a["diff"] == pytest.approx(0.5)
  assert b["n"] == 1 and b["top1"] == (70.0, 0.0) and b["published"] is None
  assert c["n"] == 0 and c["top1"] == (None, None)
  md = table.markdown(e, "t")
  line_a = [l for l in md.splitlines() if l.startswith("| a |")][0]
  assert "82.00 ± 2.83" in line_a and "| – |" in line_a and "+0.50" in line_a and "paper T1" in line_a
  table.write_csv(e, str(tmp_path / "t.csv"))
  rows = list(csv.DictReader(open(tmp_path / "t.csv")))
  assert rows[0]["medium_thr_mean"] == "" and float(rows[0]["top1_mean"]) == 82.0 and rows[2]["seeds"] == "0"


def test_cifar_lt_published_numbers_are_read_from_one_place():
  from configs import cifar_lt
  got = cifar_lt.published({"dataset": "cifar10", "imb": "0.01", "row": "ldam_drw"})
  assert got["top1"] == pytest.approx(100 - 22.97) and "Cao" in got["source"]
  arb = cifar_lt.published({"dataset": "cifar100", "imb": "0.01", "row": "arb"})
  assert arb["top1"] is None and "missing" in arb["source"] and "2204.08735" in arb["source"]
  assert cifar_lt.published({"dataset": "cifar100", "imb": "0.01", "row": "focal"}) is None
  from configs import arb_cifar100, sbcl_cifar, ss_finetune
  assert arb_cifar100.published() == arb and "missing" in arb_cifar100.__doc__
  assert "UNVERIFIED" in sbcl_cifar.published({"dataset": "cifar100", "imb": "0.02", "stage": "2"})["source"]
  assert sbcl_cifar.published({"stage": "1"}) is None
  assert "unverified" in cifar_lt.published({"dataset": "cifar10", "imb": "0.01", "row": "la_loss"})["source"]
  assert ss_finetune.published({"dataset": "cifar100", "imb": "0.02", "row": "ce_balanced"})["top1"] == 47.09


def test_missing_and_per_group_published_cells(tmp_path):
  w = str(tmp_path)
  _write(w, "arb", 0, {"top1": 40.0, "many_thr": 60.0, "medium_thr": 40.0, "few_thr": 10.0})
  pub = {"arb": {"top1": None, "source": "paper: missing"}, "x": {"top1": 41.0, "source": "p", "few": 12.5}}
  _write(w, "x", 0, {"top1": 42.0, "many_thr": 60.0, "medium_thr": 40.0, "few_thr": 10.0})
  e = table.gather(w, ["arb", "x"], [0], published=lambda a: pub[a["row"]])
  assert e[0]["diff"] is None and e[1]["diff"] == pytest.approx(1.0)
  md = table.markdown(e, "t").splitlines()
  assert "| missing | – | paper: missing |" in md[4]
  assert "10.00 ± 0.00 (paper 12.50, -2.50)" in md[5]
  table.write_csv(e, str(tmp_path / "t.csv"))
  rows = list(csv.DictReader(open(tmp_path / "t.csv")))
  assert rows[0]["published_top1"] == "" and rows[1]["published_few"] == "12.5"


def test_print_commands_and_unknown_rows(tmp_path, capsys):
  assert table.main(["configs/digits_lt.py", "--rows", "ce,arb", "--seeds", "0,3", "--workdir", str(tmp_path),
                     "--print-commands", "--set", "train.epochs=2"]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 4 and "configs/digits_lt.py:row=arb" in lines[3] and "--config.seed=3" in lines[3]
  assert lines[0].endswith("--config.train.epochs=2") and f"{tmp_path}/ce/seed_0" in lines[0]
  assert table.main(["configs/digits_lt.py", "--rows", "ce,nope", "--workdir", str(tmp_path)]) == 2
  assert "no row(s) ['nope']" in capsys.readouterr().err


@pytest.mark.slow
def test_two_digits_rows_two_seeds_end_to_end(tmp_path, capsys):
  w = str(tmp_path / "tab")
  argv = ["configs/digits_lt.py", "--rows", "ce,balanced_softmax", "--seeds", "0,1", "--workdir", w,
          "--set", "train.epochs=2", "--set", "model.name=resnet8", "--set", "train.eval_every=1"]
  assert table.main(argv) == 0
  for row in ("ce", "balanced_softmax"):
    res = [json.load(open(os.path.join(w, row, f"seed_{s}", "results.json")))["best"] for s in (0, 1)]
    want = sum(r["top1"] for r in res) / 2
    got = [r for r in csv.DictReader(open(os.path.join(w, "table.csv"))) if r["row"] == row][0]
    assert float(got["top1_mean"]) == pytest.approx(want, abs=1e-4)
    assert float(got["top1_std"]) == pytest.approx(abs(res[0]["top1"] - res[1]["top1"]) / math.sqrt(2), abs=1e-4)
  assert res[0]["top1"] != res[1]["top1"] or res[0]["per_class"] != res[1]["per_class"]  # the seeds differ
  capsys.readouterr()
  assert table.main(argv) == 0  # a second call runs nothing
  assert capsys.readouterr().out.count("done already") == 4


def test_records_published_cells_follow_the_runner_convention():
  from configs import records_cifar
  assert records_cifar.published({"dataset": "cifar10", "imb": "0.01", "q": "0.3", "row": "corr"}) == {
      "top1": 66.38, "source": "RECORDS README"}
  assert records_cifar.published({"dataset": "cifar100", "imb": "0.01", "q": "0.03", "row": "corr", "nu": "1"}) is None
