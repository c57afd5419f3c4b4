"""metrics.jsonl on resume: the rows an earlier process logged after the resumed step are dropped, so every step is
logged once (issue 20: a run that falls back from a damaged checkpoint, or resumes after kill -9, redoes steps)."""

import json

from ltjax.train import logger


def _lines(rows):
  return "".join(json.dumps(r) + "\n" for r in rows)


ROWS = [dict(step=10, split="train", loss=2.0), dict(step=20, split="train", loss=1.5),
        dict(step=20, split="test", top1=40.0), dict(step=30, split="train", loss=1.2),
        dict(step=40, split="train", loss=1.0), dict(step=40, split="test", top1=55.0)]


def test_rows_after_the_resumed_step_and_a_cut_line_are_dropped(tmp_path):
  p = tmp_path / "metrics.jsonl"
  p.write_text(_lines(ROWS) + '{"step": 50, "split": "tr')  # the last write cut short by a kill
  assert logger.drop_rows_after(str(p), 20) == 4
  assert [json.loads(l) for l in p.read_text().splitlines()] == ROWS[:3]
  assert not (tmp_path / "metrics.jsonl.tmp").exists()


def test_nothing_to_drop_leaves_the_file_as_it_was(tmp_path):
  p = tmp_path / "metrics.jsonl"
  p.write_text(_lines(ROWS))
  before = p.stat().st_ino
  assert logger.drop_rows_after(str(p), 40) == 0
  assert p.read_text() == _lines(ROWS) and p.stat().st_ino == before
  assert logger.drop_rows_after(str(tmp_path / "absent.jsonl"), 0) == 0


def test_a_writer_resuming_at_a_step_logs_the_redone_steps_once(tmp_path):
  (tmp_path / "metrics.jsonl").write_text(_lines(ROWS))
  w = logger.MetricWriter(str(tmp_path), resume_step=20)
  w.write(30, "train", {"loss": 1.25})
  w.close()
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert rows == ROWS[:3] + [dict(step=30, split="train", loss=1.25)]


def test_a_fresh_start_in_a_directory_with_old_rows_keeps_none_after_step_0(tmp_path):
  (tmp_path / "metrics.jsonl").write_text(_lines(ROWS))
  logger.MetricWriter(str(tmp_path)).close()
  assert (tmp_path / "metrics.jsonl").read_text() == ""
