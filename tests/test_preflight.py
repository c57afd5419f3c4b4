"""The JAX-free command-line checks (ltjax/preflight.py): the schema file matches the code, every class of bad
value is one line naming the key and the fix, valid command lines pass, config-file values meet the same bounds, and
main.py refuses a bad command line without importing JAX or TensorFlow and without creating the run directory."""

import os
import subprocess
import sys

import pytest

from ltjax import preflight
from tests.cfgutil import ROOT

BASE = ["main.py", "--config", "configs/quickstart.py", "--workdir", "runs/x"]


def test_schema_file_matches_the_registries():
  from ltjax.tools import schema
  assert schema.main(["--check"]) == 0, "run `python -m ltjax.tools.schema` and commit ltjax/config_schema.json"
  s = preflight.load_schema()
  for key in list(preflight.RANGES) + list(preflight.PATHS):
    assert key in s["fields"], key  # no rule for a key that does not exist


@pytest.mark.parametrize("arg,expect", [
    ("--config.train.no_such_key=1", "unknown config key 'train.no_such_key' (config.train has no 'no_such_key')"),
    ("--config.train.epoch=3", "did you mean --config.train.epochs?"),
    ("--config.trian.epochs=3", "(config has no 'trian'): did you mean --config.train?"),
    ("--config.train.epochs=abc", "config.train.epochs must be an int, got 'abc'"),
    ("--config.train.progress_bar=maybe", "config.train.progress_bar must be a bool"),
    ("--config.optim.lr=nan", "config.optim.lr = nan is not a finite number"),
    ("--config.optim.lr=-inf", "config.optim.lr = -inf is not a finite number"),
    ("--config.optim.lr=0", "config.optim.lr = 0.0 must be > 0"),
    ("--config.train.epochs=-3", "config.train.epochs = -3 must be >= 1"),
    ("--config.train.batch_size=0", "config.train.batch_size = 0 must be >= 1"),
    ("--config.data.imb_factor=1.5", "config.data.imb_factor = 1.5 must be > 0 and <= 1"),
    ("--config.optim.momentum=1", "config.optim.momentum = 1.0 must be >= 0 and < 1"),
    ("--config.data.group_bounds=(3, 1e999)", "not finite"),
    ("--config.data.group_bounds=(3,", "must be a tuple literal"),
    ("--config.method=supervized", "is not one of"),
    ("--config.loss.name=arbb", "(did you mean 'arb'?)"),
    ("--config.loss.arb_counts=both", "config.loss.arb_counts = 'both' is not one of ['batch', 'global']"),
    ("--config.model.name=resnet33", "config.model.name = 'resnet33'"),
    ("--config.data.name=cifar1000", "or tfds:NAME"),
    ("--config.data.data_dir=/no/such/dir", "config.data.data_dir = '/no/such/dir': no such directory"),
    ("--config.data.path=/no/such.npz", "no such file"),
    ("--config.init.workdir=/no/run", "no such file or directory"),
    ("--config.train_rule=drw", "config.train_rule was renamed to config.supervised.train_rule"),
    ("--config.train", "config.train is a section"),
])
def test_bad_values_are_named_with_the_fix(arg, expect):
  msg = preflight.check(BASE + [arg])
  assert msg is not None and expect in msg, msg
  assert "\n" not in msg


def test_valid_command_lines_pass():
  for args in ([], ["--config.data.name=tfds:mnist", "--config.data.group_bounds=()"],
               ["--config.train.progress_bar=False", "--config.optim.lr=0.05", "--config.train.epochs", "3"],
               ["--config.data.unlabeled.pool=unused", "--config.model.dtype=bfloat16", "--config.train.progress_bar"],
               ["--config.optim.lr_mults=('^fc/=0.5',)", f"--config.data.data_dir={ROOT}"]):
    assert preflight.check(BASE + args) is None, args
  assert "no such config file" in preflight.check(["main.py", "--config", "configs/nope.py:x=1", "--workdir", "w"])


def test_config_file_values_meet_the_same_bounds():
  from configs import quickstart
  from ltjax import config as config_lib
  cfg = quickstart.get_config()
  cfg.optim.warmup_epochs = -1
  with pytest.raises(config_lib.ConfigError, match=r"config.optim.warmup_epochs = -1 must be >= 0"):
    config_lib.validate(cfg)


@pytest.mark.parametrize("arg", ["--config.train.no_such_key=1", "--config.optim.lr=nan", "--config.method=nope",
                                 "--config.data.data_dir=/no/such/dir"])
def test_main_refuses_before_importing_jax_or_tensorflow(tmp_path, arg):
  w = tmp_path / "w"
  r = subprocess.run([sys.executable, "-X", "importtime", "main.py", "--config", "configs/quickstart.py",
                      "--workdir", str(w), arg], cwd=ROOT, capture_output=True, text=True, timeout=120,
                     env=dict(os.environ, PYTHONPATH=ROOT))
  assert r.returncode == 2
  lines = [l for l in r.stderr.splitlines() if not l.startswith("import time:")]
  assert len(lines) == 1 and lines[0].startswith("error: ")
  imported = {l.split("|")[-1].strip() for l in r.stderr.splitlines() if l.startswith("import time:")}
  heavy = {m for m in imported if m.split(".")[0] in ("jax", "jaxlib", "flax", "optax", "orbax", "tensorflow",
                                                        "tensorflow_datasets")}
  assert not heavy, sorted(heavy)[:5]
  assert any(m == "ltjax.preflight" for m in imported)  # the check itself did run in this process
  assert not w.exists()
