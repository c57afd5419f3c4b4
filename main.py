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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
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
    sys.exit(2)
  print(f"results in {os.path.join(FLAGS.workdir, 'results.json')}")
  for line in loop.summary_lines(results):
    print(line)


if __name__ == "__main__":
  app.run(main)
