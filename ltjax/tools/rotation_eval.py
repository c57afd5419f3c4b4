"""Rotation accuracy of a rotation pre-training run (imbalanced-semi-self `pretrain_rot.py`;
ltjax/methods/semi_self/rotation.py):

  python -m ltjax.tools.rotation_eval --workdir runs/ss_rot_cifar10_0.01 [--checkpoint last] [--split test]

Every image of the split in each of the four rotations, test-time preprocessing; prints the accuracy and writes
RUN/rotation_eval.json ({'rotation_accuracy', 'rot0', 'rot90', 'rot180', 'rot270', 'split', 'step'}).
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def evaluate(workdir: str, checkpoint: str = "last", split: str = "test") -> dict:
  from ltjax.errors import ConfigError
  from ltjax.methods.semi_self import rotation
  from ltjax.tools.open_run import open_run
  view = open_run(workdir, checkpoint)
  if view.cfg.method != rotation.Rotation.name:
    raise ConfigError(f"{workdir} is a '{view.cfg.method}' run, not a rotation pre-training run")
  res = dict(rotation.rotation_accuracy(view.run, view.state, split), split=split, step=view.step)
  with open(os.path.join(workdir, "rotation_eval.json"), "w") as f:
    json.dump(res, f, indent=1, sort_keys=True)
  return res


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m ltjax.tools.rotation_eval", description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--checkpoint", default="last", choices=("best", "last"))
  p.add_argument("--split", default="test", choices=("test", "val", "train"))
  args = p.parse_args(argv)
  from ltjax.errors import LtjaxError
  try:
    res = evaluate(args.workdir, args.checkpoint, args.split)
  except (FileNotFoundError, LtjaxError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"rotation accuracy on {args.split} (step {res['step']}): {res['rotation_accuracy']:.2f}% "
        f"(0°/90°/180°/270°: {res['rot0']:.2f} / {res['rot90']:.2f} / {res['rot180']:.2f} / {res['rot270']:.2f})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
