"""Pseudo-label an unlabeled pool with a trained run (imbalanced-semi-self `train_semi.py`, `gen_pseudolabels.py`):

  python -m ltjax.tools.pseudolabel --workdir runs/c10_002_ce --pool data/ti_80M_selected.pickle --out data/pl_c10.npz
  python -m ltjax.tools.pseudolabel --workdir runs/svhn_002_ce --pool svhn_extra --out data/pl_svhn.npz

The run's best checkpoint (`--checkpoint last` for the newest) is evaluated in eval mode over the *whole* pool with
test-time preprocessing (normalise only, the run's own mean/std), batch 200 as the official script; the pseudo
label is the arg-max class — hard labels, no confidence threshold, no filtering. The file also records the pool's
size, image shape and content hash, so a training run refuses a pseudo-label file made for another pool (format:
`ltjax.data.unlabeled`). Existing files are not overwritten unless `--overwrite`. Pools: a TinyImages selection
pickle (`ti_80M_selected.pickle`), `svhn_extra` (TFDS svhn_cropped `extra`, from the run's data dir or
`--data_dir`), an .npy/.npz array or an image folder.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import os
import sys
from typing import Optional

import numpy as np

log = logging.getLogger("ltjax")


def _softmax_max(logits: np.ndarray) -> np.ndarray:
  z = logits.astype(np.float64)
  z = z - z.max(axis=1, keepdims=True)
  p = np.exp(z)
  return (p.max(axis=1) / p.sum(axis=1)).astype(np.float32)


def pseudo_label(workdir: str, pool_spec: str, out: str, *, checkpoint: str = "best", data_dir: Optional[str] = None,
                 batch_size: int = 200, chunk: int = 50_000, overwrite: bool = False) -> dict:
  """Writes the pseudo-label file `out` for pool `pool_spec` from the run in `workdir`; returns a summary dict
  (num_images, counts per class, accuracy against the pool's own labels when it has them)."""
  from ltjax.data import unlabeled
  from ltjax.data.dataset import Split
  from ltjax.tools.open_run import open_run

  if not out.endswith(".npz"):
    raise unlabeled.PoolError(f"--out {out}: the pseudo-label file must end in .npz")
  if os.path.exists(out) and not overwrite:
    raise FileExistsError(f"{out} exists: choose another --out or pass --overwrite")
  view = open_run(workdir, checkpoint)
  run = view.run
  num_classes = run.data.num_classes
  unused = None
  if pool_spec == unlabeled.UNUSED:  # the base run's own left-out training images (same selection as its run)
    from ltjax.data import sources
    unused = sources.load(run.cfg.data, keep_unused=True).unused
  pool = unlabeled.load_pool(pool_spec, data_dir if data_dir is not None else (run.cfg.data.data_dir or None), unused)
  want = tuple(run.data.train.images.shape[1:])
  if pool.image_shape != want:
    raise unlabeled.PoolError(f"the pool '{pool_spec}' holds {pool.image_shape} images but the run in {workdir} was "
                              f"trained on {want} images ({run.data.name})")
  cfg = copy.deepcopy(run.cfg)
  cfg.train.eval_batch_size = int(batch_size)
  logits = []
  n = len(pool)
  for start in range(0, n, chunk):
    stop = min(n, start + chunk)
    split = Split(pool.images[start:stop], np.zeros(stop - start, np.int32), np.arange(start, stop, dtype=np.int64))
    r = dataclasses.replace(run, cfg=cfg, data=dataclasses.replace(run.data, test=split))
    z = r.predict(view.state, "test")["logits"]
    if z.shape[1] != num_classes:
      raise unlabeled.PoolError(f"the run in {workdir} predicts {z.shape[1]} outputs (method '{run.cfg.method}') but "
                                f"its dataset has {num_classes} classes: pseudo-label with a classifier run, not a "
                                "pre-training run")
    logits.append(z)
    log.info("pseudo-labelled %d/%d pool images", stop, n)
  z = np.concatenate(logits)
  labels = z.argmax(axis=1).astype(np.int64)
  model = {"workdir": os.path.abspath(workdir), "checkpoint": view.checkpoint, "step": view.step,
           "model": run.cfg.model.name, "dataset": run.data.name, "method": run.cfg.method,
           "loss": run.cfg.loss.name, "imb_factor": float(run.cfg.data.imb_factor)}
  unlabeled.save_pseudo_labels(out, pool, labels, _softmax_max(z), num_classes, model, overwrite=overwrite)
  summary = {"out": out, "pool": pool_spec, "num_images": int(n),
             "counts": np.bincount(labels, minlength=num_classes).tolist(), "prediction_model": model}
  if pool.truth is not None:
    summary["accuracy_vs_pool_labels"] = float(100.0 * np.mean(labels == pool.truth))
  return summary


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m ltjax.tools.pseudolabel", description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--workdir", required=True, help="the trained base run (an ltjax run directory)")
  p.add_argument("--pool", required=True, help="TinyImages .pickle | svhn_extra | unused (the training images the base run's "
                 "long-tailed subset left out) | .npy | .npz | image folder")
  p.add_argument("--out", required=True, help="pseudo-label file to write (.npz)")
  p.add_argument("--checkpoint", default="best", choices=("best", "last"))
  p.add_argument("--data_dir", default=None, help="TFDS data dir for svhn_extra (default: the run's data dir)")
  p.add_argument("--batch_size", type=int, default=200)
  p.add_argument("--overwrite", action="store_true")
  args = p.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
  for noisy in ("absl", "jax._src", "orbax", "tensorflow"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  from ltjax.errors import LtjaxError
  try:
    s = pseudo_label(args.workdir, args.pool, args.out, checkpoint=args.checkpoint, data_dir=args.data_dir,
                     batch_size=args.batch_size, overwrite=args.overwrite)
  except (LtjaxError, FileNotFoundError, FileExistsError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {s['out']}: {s['num_images']} pseudo labels, per class {s['counts']}")
  if "accuracy_vs_pool_labels" in s:
    print(f"agreement with the pool's own labels: {s['accuracy_vs_pool_labels']:.2f}%")
  return 0


if __name__ == "__main__":
  sys.exit(main())
