"""bfloat16 against float32, for every method's training step: the same digits config, the same initial parameters
and the same batches, `--steps` real train steps (the trainer's own compiled step, device data path) in each dtype.

  python benchmarks/precision.py                      # every case below
  python benchmarks/precision.py --cases ce,sbcl_s1   # some

A case passes when every loss of both runs is finite and the first step's bf16 loss is within `--rtol` (relative,
floor `--atol`) of the float32 one: same parameters, same batch, so the two differ by bf16 rounding of the
activations only (`model.dtype = bfloat16` computes the network in bf16 and keeps parameters, optimizer state and
the loss in float32; ltjax.models). Later steps are reported, not judged: from the first update on, the two runs
follow different parameters, and at the recipes' first learning rates the gap grows fast (CE on digits: 0.2% at
step 1, 15% at step 3 on CPU). Prints one JSON line per case and a table; exit status 1 if any case fails.
"""

import argparse
import importlib
import math
import os
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import emit  # noqa: E402
from tests.cfgutil import override  # noqa: E402  (dotted keys, as --config.a.b=value)

# name → (config module, argument, overrides, what it exercises). Every registered method and supervised loss
# (tests/test_benchmarks.py checks this). The two-stage recipes (cRT, MiSLAS stage 2) start here from a random
# trunk instead of a trained one: the step and its precision are the same. Methods first, then the other losses
# (a time-capped run checks the most distinct steps first).
CASES = {
    "ce": ("digits_lt", "row=ce", {}, "supervised, softmax CE"),
    "arb": ("digits_lt", "row=arb", {}, "supervised, ARB-Loss (cosine head)"),
    "ldam_drw": ("digits_lt", "row=ldam_drw", {"_epoch": 24}, "LDAM + DRW weights (s·cos head), epoch 24"),
    "sbcl_s1": ("sbcl_digits", "stage=1", {}, "SBCL stage 1: two views, SupCon warm-up"),
    "moco": ("moco_digits", "stage=moco", {}, "MoCo v2 with queue, shuffle-BN"),
    "sbcl_moco": ("moco_digits", "stage=sbcl", {}, "SBCL-MoCo: KCL with queue"),
    "corr_records_mixup": ("records_digits", "row=corr_records_mixup", {}, "CORR + RECORDS + mixup (partial labels)"),
    "solar": ("records_digits", "row=solar", {}, "SoLar (Sinkhorn pseudo-targets)"),
    "rotation": ("ss_digits", "stage=rotation", {}, "rotation pre-training (4 views)"),
    "cdb": ("cdb_digits", "", {}, "CDB-CE class weights"),
    "crt": ("crt_cifar", "dataset=digits,imb=0.1", {"init.required": False},
            "cRT: class-balanced classifier re-training, frozen trunk"),
    "mislas_s2": ("mislas_stage2", "dataset=digits,imb=0.1", {"init.required": False},
                  "MiSLAS stage 2: LAS, shift learning, frozen trunk"),
    "mixup": ("digits_lt", "row=ce", {"supervised.mixup_alpha": 1.0}, "CE with mixup (MiSLAS stage 1)"),
    "balanced_softmax": ("digits_lt", "row=balanced_softmax", {}, "Balanced Softmax"),
    "focal": ("digits_lt", "row=focal", {}, "focal loss"),
    "la_loss": ("digits_lt", "row=la_loss", {}, "logit-adjusted loss"),
    "warb": ("digits_lt", "row=arb", {"loss.name": "warb"}, "weighted ARB-Loss"),
    "arb_focal": ("digits_lt", "row=arb", {"loss.name": "arb_focal"}, "ARB-Loss with a focal term"),
    "las": ("digits_lt", "row=ce", {"loss.name": "las"}, "label-aware smoothing (MiSLAS)"),
}


def run_case(name, dtype, steps, seed=0):
  """Losses of the first `steps` train steps of case `name` in `dtype` (a list of floats)."""
  import jax
  from ltjax.train import loop, run as run_lib, step as step_lib
  module, arg, over, _ = CASES[name]
  cfg = importlib.import_module(f"configs.{module}").get_config(arg)
  epoch = over.get("_epoch", 0)  # the epoch whose hyper-parameters (LR, DRW weights, stage) the steps use
  override(cfg, **{k: v for k, v in over.items() if not k.startswith("_")})
  cfg.model.dtype = dtype
  cfg.train.steps_per_call = 1
  cfg.seed = seed
  run = run_lib.setup(cfg)
  state = run_lib.create_state(run, seed)
  stepper = loop._Stepper(run)  # the trainer's own compiled steps and feeds
  hp = jax.device_put(run.method.epoch_hparams(epoch), step_lib.replicated(run.mesh))
  losses = []
  for fn, args, count, _, _ in stepper.calls(epoch, 0, steps, hp):
    state, metrics = fn(state, *args)
    losses.append(float(jax.device_get(metrics["loss"])))
    if len(losses) >= steps:
      break
  return losses


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--cases", default=",".join(CASES))
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--rtol", type=float, default=2e-2)
  p.add_argument("--atol", type=float, default=1e-2, help="floor of the denominator of the relative difference")
  p.add_argument("--out", default="")
  a = p.parse_args()
  import jax
  rows, failed = [], 0
  for name in [c for c in a.cases.split(",") if c]:
    if name not in CASES:
      raise SystemExit(f"unknown case {name!r}: one of {', '.join(CASES)}")
    t0 = time.perf_counter()
    res = {"bench": "precision", "case": name, "what": CASES[name][3], "backend": jax.default_backend(),
           "steps": a.steps}
    try:
      f32 = run_case(name, "float32", a.steps)
      bf16 = run_case(name, "bfloat16", a.steps)
    except Exception as e:  # noqa: BLE001  (one case's failure is reported, the others still run)
      msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      res.update(status="error", error=f"{type(e).__name__}: {msg}")
      failed += 1
      res["sec"] = round(time.perf_counter() - t0, 1)
      emit(res, a.out)
      rows.append(res)
      continue
    rel = [abs(b - f) / max(abs(f), a.atol) for f, b in zip(f32, bf16)]
    ok = all(math.isfinite(v) for v in f32 + bf16) and rel[0] <= a.rtol
    failed += not ok
    res.update(status="ok" if ok else "FAIL", loss_f32=f32, loss_bf16=bf16, rel_diff=rel,
               sec=round(time.perf_counter() - t0, 1))
    emit(res, a.out)
    rows.append(res)
  print(f"\n{'case':22s} {'status':8s} {'loss f32 (step 1)':>18s} {'bf16':>10s} {'rel diff':>9s} "
        f"{'rel diff, last step':>20s}")
  for r in rows:
    if "loss_f32" in r:
      print(f"{r['case']:22s} {r['status']:8s} {r['loss_f32'][0]:18.5f} {r['loss_bf16'][0]:10.5f} "
            f"{r['rel_diff'][0]:9.2e} {r['rel_diff'][-1]:20.2e}")
    else:
      print(f"{r['case']:22s} {r['status']:8s} {r.get('error', '')[:80]}")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
