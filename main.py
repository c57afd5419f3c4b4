"""Train a long-tailed classifier: python main.py --config configs/arb_cifar100.py --workdir runs/x

Every config field can be overridden (`--config.train.epochs=5`); unknown keys are errors. Rerunning with the
same --workdir resumes the run where it stopped.
"""

import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Before jax or TensorFlow start a thread: with LTJAX_MALLOC_TUNING=1, XLA:CPU's per-step buffers are reused
# (ltjax/host_memory.py).
from ltjax import host_memory  # noqa: E402

host_memory.configure()

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py[:args]).", lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory: config, metrics, checkpoints, results.")
flags.mark_flags_as_required(["config", "workdir"])


def _explain(argv, error) -> str:
  """One line for a command line that flag parsing refused: an unknown `--config.KEY` (with the closest valid key),
  or else the parser's own first line."""
  import difflib
  import re
  from ltjax import config as config_lib
  schema = config_lib.schema()
  for arg in argv[1:]:
    m = re.match(r"--config\.([\w.]+)(?:=|$)", arg)
    if not m:
      continue
    node, done = schema, []
    for part in m.group(1).split("."):
      if not hasattr(node, "keys") or part not in node:
        options = list(node.keys()) if hasattr(node, "keys") else []
        close = difflib.get_close_matches(part, options, n=1)
        where = "config" + "".join("." + d for d in done)
        hint = f": did you mean --config.{'.'.join(done + [close[0]])}?" if close else ""
        return f"unknown config key '{m.group(1)}' ({where} has no '{part}'){hint}"
      node, done = node[part], done + [part]
  return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _parse_flags(argv):
  """absl's flag parsing, with a refused command line reported in one line (exit 2) instead of a traceback. The
  command line is first checked without importing JAX or TensorFlow (ltjax/preflight.py): unknown keys, types,
  non-finite and out-of-range numbers, choices and missing paths answer in well under a second."""
  from ltjax import preflight
  problem = preflight.check(argv)
  if problem:
    print(f"error: {problem}", file=sys.stderr)
    sys.exit(2)
  try:
    return FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    print(f"error: {_explain(argv, e)}", file=sys.stderr)
    sys.exit(2)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # One short line per message ("11:25:10 data digits: …") instead of absl's thread-id and file prefix.
  from absl import logging as absl_logging
  absl_logging.get_absl_handler().setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
  absl_logging.set_verbosity(absl_logging.INFO)
  for noisy in ("absl", "jax._src", "orbax", "tensorflow"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  # Multi-process jobs: jax.distributed.initialize before anything touches a device (ltjax/distributed.py).
  from ltjax import distributed
  try:
    distributed.initialize(FLAGS.config)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  from ltjax.errors import LtjaxError, Preempted
  from ltjax.train import loop
  try:
    results = loop.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except Preempted as e:
    print(f"preempted: {e}", file=sys.stderr)
    sys.exit(143)
  except LtjaxError as e:  # every user-facing error (ltjax/errors.py): one line, no traceback
    print(f"error: {e}", file=sys.stderr)
    # Exit now: after a failed write, the interpreter's shutdown would print the checkpoint library's abandoned
    # coroutines as warnings under the one line. Nothing is pending: every save is synchronous.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(2)
  print(f"results in {os.path.join(FLAGS.workdir, 'results.json')}")
  for line in loop.summary_lines(results):
    print(line)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
