"""The Markdown summary of a GPU check (benchmarks/gpu/check.sh): its $OUT folder's env.json, results.jsonl and
pytest.log as tables ready for docs/BENCHMARKS.md, with issue 16's targets judged.

  python benchmarks/gpu/summary.py OUT_DIR

Model-FLOP utilisation = model FLOPs per training image (benchmarks/common.py model_flops: 3 × the forward pass's
convolution and matrix-product FLOPs, one count for ltjax and PyTorch) × images/s ÷ the GPU's dense peak: on an
H100 or H200 (SXM) 989 TFLOP/s for bf16 and 495 TFLOP/s for float32, whose convolutions both frameworks run in
TF32 by default (JAX's default precision; PyTorch's cudnn.allow_tf32). Elsewhere the peak is unknown and MFU is
left out.
"""

import json
import os
import sys

PEAKS = {"bfloat16": 989e12, "float32": 495e12}  # H100/H200 SXM dense: bf16, and TF32 for float32 convolutions
TARGETS = {"headline_s": 120, "r32_vs_eager": 1.5, "r50_vs_eager": 1.2, "r50_mfu": 0.35}


def _load(out):
  rows = []
  path = os.path.join(out, "results.jsonl")
  if os.path.exists(path):
    for line in open(path):
      line = line.strip()
      if line.startswith("{"):
        try:
          rows.append(json.loads(line))
        except ValueError:
          pass
  env = {}
  path = os.path.join(out, "env.json")
  if os.path.exists(path):
    for line in open(path):
      if line.strip().startswith("{"):
        env.update(json.loads(line))
  return rows, env


def _fmt(v, spec=".0f", none="–"):
  return none if v is None else format(v, spec)


def _ratio(v):
  return "–" if v is None else f"{v:.2f}×"


def _tail(path, n=3):
  if not os.path.exists(path):
    return []
  return [line.rstrip() for line in open(path).read().strip().splitlines()[-n:]]


def main(out):
  rows, env = _load(out)
  kind = str(env.get("device_kind", env.get("nvidia_smi", "")))
  hopper = any(k in kind for k in ("H100", "H200"))
  lines = ["# GPU check", ""]
  lines.append(f"- device: {env.get('nvidia_smi') or kind or '?'}; backend {env.get('backend', '?')}; "
               f"{env.get('cpu_count', '?')} CPU cores")
  lines.append("- versions: " + ", ".join(f"{k} {env[k]}" for k in ("python", "jax", "jaxlib", "flax", "optax",
                                                                      "orbax.checkpoint", "ml_collections",
                                                                      "tensorboardX", "numpy", "torch", "triton")
                                           if k in env))
  lines.append(f"- TensorFlow installed: {env.get('tensorflow_installed', '?')}")
  verdicts = []

  path = os.path.join(out, "pytest.log")
  if os.path.exists(path):
    log = open(path).read().splitlines()
    counts = {k: sum(1 for line in log if f" {k} " in f" {line} " and "::" in line)
              for k in ("PASSED", "FAILED", "ERROR", "SKIPPED")}
    failed = sorted({line.split(" - ")[0].replace("FAILED ", "").replace("ERROR ", "").strip()
                     for line in log if line.startswith(("FAILED ", "ERROR "))})
    lines += ["", "## Tests without TensorFlow on the device", "",
              "- per-test lines: " + ", ".join(f"{v} {k.lower()}" for k, v in counts.items()),
              *[f"- last line: `{t}`" for t in _tail(path, 2)], *[f"- failed: `{f}`" for f in failed[:30]]]

  prec = [r for r in rows if r.get("bench") == "precision"]
  if prec:
    lines += ["", "## bf16 against float32, every method's step (first step judged)", "",
              "| case | status | loss f32 | loss bf16 | rel. diff step 1 | rel. diff last step |", "|---|---|---|---|---|---|"]
    for r in prec:
      if "loss_f32" in r:
        lines.append(f"| {r['case']} | {r['status']} | {r['loss_f32'][0]:.5f} | {r['loss_bf16'][0]:.5f} | "
                     f"{r['rel_diff'][0]:.2e} | {r['rel_diff'][-1]:.2e} |")
      else:
        lines.append(f"| {r['case']} | {r['status']} | {r.get('error', '')[:90]} | | | |")

  fam = [r for r in rows if r.get("bench") == "family"]
  if fam:
    lines += ["", "## A digits run of every family (main.py end to end)", "",
              "| family | config | wall s | best top-1 | run at once with |", "|---|---|---|---|---|"]
    for r in fam:
      state = "timed out" if r.get("timed_out") else (f"exit {r.get('returncode')}" if r.get("returncode") else "")
      lines.append(f"| {r['family']} | `{r['config']}` | {_fmt(r.get('wall_s'), '.1f')} {state} | "
                   f"{_fmt(r.get('best_top1'), '.2f')} | {r.get('concurrent', 1) - 1} other runs |")

  ours = [r for r in rows if r.get("bench") == "train_step"]
  torch = [r for r in rows if r.get("framework") == "torch" and "images_per_sec" in r]
  if ours or torch:
    lines += ["", "## Train step, images/s (MFU; peak device memory MiB)", "",
              "| model | batch | dtype | ltjax | torch eager NCHW | torch eager channels_last | torch.compile "
              "channels_last | ltjax ÷ best eager | ltjax ÷ compile |", "|---|---|---|---|---|---|---|---|---|"]
    per_image = {r["model"]: r.get("model_gflop_per_image", 0) * 1e9 for r in ours}
    keys = sorted({(r["model"], r["batch"], r["dtype"]) for r in ours} |
                  {(r["model"], r["batch"], "bfloat16" if r.get("bf16") else "float32") for r in torch})
    for model, batch, dtype in keys:
      def cell(ips, mem):
        if ips is None:
          return "–"
        mfu = (f"{per_image[model] * ips / PEAKS[dtype]:.0%}"
               if hopper and per_image.get(model) else None)
        extra = ", ".join(x for x in (mfu, f"{mem:.0f} MiB" if mem else None) if x)
        return f"{ips:,.0f}" + (f" ({extra})" if extra else "")

      mine = next((r for r in ours if (r["model"], r["batch"], r["dtype"]) == (model, batch, dtype)), None)
      pick = lambda mode, cl: next((r for r in torch if (r["model"], r["batch"], bool(r.get("bf16")), r["mode"],  # noqa: E731
                                                         bool(r.get("channels_last"))) ==
                                    (model, batch, dtype == "bfloat16", mode, cl)), None)
      e_nchw, e_cl, comp = pick("eager", False), pick("eager", True), pick("compile", True)
      ips = lambda r: r["images_per_sec"] if r else None  # noqa: E731
      mine_ips = mine["images_per_sec"] if mine else None
      best_eager = max([v for v in (ips(e_nchw), ips(e_cl)) if v], default=None)
      r_eager = mine_ips / best_eager if mine_ips and best_eager else None
      r_comp = mine_ips / ips(comp) if mine_ips and comp else None
      lines.append(f"| {model} | {batch} | {dtype} | {cell(mine_ips, mine and mine.get('device_peak_mb'))} | "
                   f"{cell(ips(e_nchw), e_nchw and e_nchw.get('device_peak_mb'))} | "
                   f"{cell(ips(e_cl), e_cl and e_cl.get('device_peak_mb'))} | "
                   f"{cell(ips(comp), comp and comp.get('device_peak_mb'))} | {_ratio(r_eager)} | {_ratio(r_comp)} |")
      if model == "resnet32" and r_eager is not None:
        verdicts.append(f"ResNet-32 b{batch} {dtype}: {r_eager:.2f}× best PyTorch eager (target ≥ "
                        f"{TARGETS['r32_vs_eager']}×) — {'met' if r_eager >= TARGETS['r32_vs_eager'] else 'MISSED'}"
                        + (f"; {r_comp:.2f}× torch.compile (target > 1) — {'met' if r_comp > 1 else 'MISSED'}"
                           if r_comp is not None else "; torch.compile not measured"))
      if model == "resnet50" and dtype == "bfloat16" and mine_ips:
        mfu = per_image.get(model, 0) * mine_ips / PEAKS[dtype] if hopper else None
        verdicts.append(
            f"ResNet-50 b{batch} bf16: " + (f"{r_eager:.2f}× channels_last AMP eager (target ≥ "
                                            f"{TARGETS['r50_vs_eager']}×)" if r_eager else "no PyTorch eager figure")
            + (f", {r_comp:.2f}× torch.compile (target ≥ 1)" if r_comp else ", torch.compile not measured")
            + (f", MFU {mfu:.0%} (target ≥ {TARGETS['r50_mfu']:.0%})" if mfu is not None else ""))
    errors = [r for r in rows if r.get("framework") == "torch" and "error" in r]
    for r in errors:
      lines.append(f"\ntorch {r.get('mode')} batch {r.get('batch')}: {r['error'][:200]}")

  head = [r for r in rows if r.get("bench") == "headline"]
  for r in head:
    lines += ["", "## Headline: configs/arb_cifar100.py, 200 epochs, generated CIFAR-100-LT-shaped data, device path",
              ""]
    lines.append(f"- wall {r.get('wall_s')} s for {r.get('epochs_done')} of {r.get('epochs')} epochs"
                 + (f" (stopped; projected {r.get('projected_wall_s')} s)" if r.get("timed_out") else "")
                 + f"; compile {r.get('compile_s')} s; training {_fmt(r.get('train_img_s'))} img/s; "
                 f"{r.get('train_images')} training images; best test top-1 {_fmt(r.get('best_test_top1'), '.2f')}"
                 + (f"; error: {r['error']}" if r.get("error") else ""))
    total = r.get("projected_wall_s") if r.get("timed_out") else r.get("wall_s")
    if total is not None and r.get("epochs") == 200:
      verdicts.append(f"headline: {total} s (target ≤ {TARGETS['headline_s']} s) — "
                      f"{'met' if total <= TARGETS['headline_s'] else 'MISSED'}"
                      + (" (projected)" if r.get("timed_out") else ""))

  if verdicts:
    lines += ["", "## Targets", "", *[f"- {v}" for v in verdicts]]
  print("\n".join(lines))


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT", "/tmp/ltjax_gpu_check"))
