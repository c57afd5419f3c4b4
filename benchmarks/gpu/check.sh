#!/usr/bin/env bash
# The GPU check of issue 16, for the accelerator machine (one NVIDIA H100 or H200 lent through the device tool: JAX
# with CUDA, Flax, Optax, Orbax and PyTorch; no TensorFlow, no network). Prepared and dry-run on CPU
# (CHECK_QUICK=1 shrinks every part). On the device, from the repository root, with the wheels of
# benchmarks/gpu/wheels.sh:
#
#   device run, carry [".whl"], timeout_s 600:
#     bash benchmarks/gpu/check.sh
#
# Parts, in this order, each under its own time cap (140, 120, 130 s; the headline gets the rest) so that the whole
# stays inside CHECK_BUDGET seconds (540):
#   env       carried wheels installed, every version recorded, TensorFlow absent, the GPU's name
#   correct   at once: the test suite without TensorFlow on the GPU (pytest -m "not tensorflow and not slow",
#             multi-device tests skipped, float32 matmuls at full precision), bf16 against float32 for every
#             method's step (benchmarks/precision.py), and a digits run of every family (benchmarks/families.py)
#   ltjax     train-step throughput: ResNet-32 at batch 128 and 512 in float32 and bf16, ResNet-50 224² at
#             batch 256 in bf16 (benchmarks/resnet50_step.py)
#   torch     the same steps in PyTorch: eager NCHW and channels_last, AMP for bf16, and torch.compile
#   headline  configs/arb_cifar100.py, 200 epochs on generated CIFAR-100-LT-shaped data, end to end
# CHECK_PARTS="env ltjax" runs some. Everything lands in $OUT: env.json, results.jsonl (one JSON line per
# measurement), pytest.log, runs.log, summary.md (benchmarks/gpu/summary.py; also printed last).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/ltjax_gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
PY=${PYTHON:-python3}
QUICK=${CHECK_QUICK:-0}
BUDGET=${CHECK_BUDGET:-540}
PARTS=${CHECK_PARTS:-env correct ltjax torch headline}
START=$(date +%s)
R="$OUT/results.jsonl"
LOG="$OUT/runs.log"
: >"$LOG"

PART_END=$((START + BUDGET))
left() { echo $((BUDGET - ($(date +%s) - START))); }
part() {  # part NAME SECONDS: a part's own deadline, inside the whole budget
  PART_END=$(($(date +%s) + $2)); [ "$PART_END" -gt $((START + BUDGET)) ] && PART_END=$((START + BUDGET))
  note "$1 (until +$((PART_END - START)) s)"
}
cap() {  # the smaller of a command's cap and what is left of its part (at least 10 s)
  local l=$((PART_END - $(date +%s))); local c=$1; [ "$l" -lt "$c" ] && c=$l; [ "$c" -lt 10 ] && c=10; echo "$c"
}
note() { echo "[$(($(date +%s) - START)) s] $*" | tee -a "$LOG"; }
has() { [[ " $PARTS " == *" $1 "* ]]; }

if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

if [ "$QUICK" = 1 ]; then  # a CPU dry run: every part, tiny
  STEPS32=3; STEPS50=1; BATCHES="16 32"; B50=4; TEST_SEL="tests/test_metrics.py tests/losses/test_losses.py"
  PREC_CASES=ce,sbcl_s1; FAM_ONLY=arb,cdb; FAM_SET="--set train.epochs=1"; HL_EPOCHS=1; TORCH_STEPS=2; WORKERS=2
else
  STEPS32=100; STEPS50=30; BATCHES="128 512"; B50=256; TEST_SEL="tests"; PREC_CASES=""; FAM_ONLY=""; FAM_SET=""
  HL_EPOCHS=200; TORCH_STEPS=50; WORKERS=8
fi

if has env; then
  note "env"
  "$PY" - <<'PY' | tee "$OUT/env.json"
import importlib, importlib.util, json, os, platform, subprocess
out = {"python": platform.python_version(), "machine": platform.machine(), "cpu_count": os.cpu_count()}
for m in ("jax", "jaxlib", "flax", "optax", "orbax.checkpoint", "ml_collections", "tensorboardX", "numpy", "absl",
          "sklearn", "torch", "triton", "pytest", "xdist"):
  try:
    out[m] = getattr(importlib.import_module(m), "__version__", "?")
  except Exception as e:  # noqa: BLE001
    out[m] = f"missing: {type(e).__name__}"
out["tensorflow_installed"] = importlib.util.find_spec("tensorflow") is not None
import jax
out["backend"], out["devices"] = jax.default_backend(), [str(d) for d in jax.devices()]
out["device_kind"] = jax.devices()[0].device_kind
try:
  out["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                                      "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
except OSError:
  pass
print(json.dumps(out))
PY
fi

if has correct; then
  part "correct: tests, precision, families (at once)" 140
  C=$(cap 140)
  TEST_XLA=""
  if [ "$QUICK" != 1 ]; then  # deterministic GPU kernels for the bitwise tests, if this XLA knows the flag
    if XLA_FLAGS=--xla_gpu_deterministic_ops=true timeout 60 "$PY" -c "
import jax, jax.numpy as jnp
f = lambda x: jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), 'SAME').sum()
print(jax.grad(f)(jnp.ones((2, 8, 8, 3))).sum())" >>"$LOG" 2>&1; then
      TEST_XLA=--xla_gpu_deterministic_ops=true
    fi
    note "test XLA_FLAGS: '${TEST_XLA}'"
  fi
  export_platform=$([ "$QUICK" = 1 ] && echo cpu || echo cuda)
  ( JAX_PLATFORMS=$export_platform XLA_FLAGS="$TEST_XLA" XLA_PYTHON_CLIENT_PREALLOCATE=false \
    JAX_DEFAULT_MATMUL_PRECISION=highest timeout "$C" "$PY" -m pytest -v -rfE -m "not tensorflow and not slow" \
    -n "$WORKERS" -p no:cacheprovider $TEST_SEL >"$OUT/pytest.log" 2>&1; echo "pytest exit $?" >>"$OUT/pytest.log" ) &
  P1=$!
  ( XLA_PYTHON_CLIENT_PREALLOCATE=false timeout "$C" "$PY" benchmarks/precision.py --steps 2 \
    ${PREC_CASES:+--cases $PREC_CASES} --out "$R" >>"$LOG" 2>&1; echo "precision exit $?" >>"$LOG" ) &
  P2=$!
  ( XLA_PYTHON_CLIENT_PREALLOCATE=false "$PY" benchmarks/families.py --parallel 6 --timeout "$((C - 5))" \
    ${FAM_ONLY:+--only $FAM_ONLY} $FAM_SET --out "$R" >>"$LOG" 2>&1; echo "families exit $?" >>"$LOG" ) &
  P3=$!
  wait $P1 $P2 $P3
  tail -n 3 "$OUT/pytest.log" | tee -a "$LOG"
fi

if has ltjax; then
  part "ltjax train steps" 120
  for dt in float32 bfloat16; do
    for b in $BATCHES; do
      timeout "$(cap 40)" "$PY" benchmarks/resnet50_step.py --model resnet32 --size 32 --classes 100 --batch "$b" \
        --dtype "$dt" --steps "$STEPS32" --warmup 3 --out "$R" >>"$LOG" 2>&1 || note "resnet32 $dt $b failed"
    done
  done
  timeout "$(cap 60)" "$PY" benchmarks/resnet50_step.py --model resnet50 --batch "$B50" --dtype bfloat16 \
    --steps "$STEPS50" --warmup 3 --out "$R" >>"$LOG" 2>&1 || note "resnet50 bf16 failed"
fi

if has torch; then
  part "torch train steps" 130
  DEV=$([ "$QUICK" = 1 ] && echo cpu || echo cuda)
  TS="--steps $TORCH_STEPS --warmup 3 --device $DEV --out $R"
  # eager first (seconds), then torch.compile in order of importance (each compile is tens of seconds)
  timeout "$(cap 40)" "$PY" benchmarks/torch_reference.py --model resnet32 --batch $BATCHES --modes eager $TS >>"$LOG" 2>&1
  timeout "$(cap 40)" "$PY" benchmarks/torch_reference.py --model resnet32 --batch $BATCHES --modes eager \
    --channels-last $TS >>"$LOG" 2>&1
  timeout "$(cap 40)" "$PY" benchmarks/torch_reference.py --model resnet32 --batch $BATCHES --modes eager --bf16 \
    --channels-last $TS >>"$LOG" 2>&1
  timeout "$(cap 120)" "$PY" benchmarks/torch_reference.py --model resnet50 --batch "$B50" --modes eager,compile \
    --bf16 --channels-last $TS >>"$LOG" 2>&1 || note "torch resnet50 stopped"
  timeout "$(cap 90)" "$PY" benchmarks/torch_reference.py --model resnet32 --batch $BATCHES --modes compile \
    --bf16 --channels-last $TS >>"$LOG" 2>&1 || note "torch resnet32 bf16 compile stopped"
  timeout "$(cap 90)" "$PY" benchmarks/torch_reference.py --model resnet32 --batch $BATCHES --modes compile \
    --channels-last $TS >>"$LOG" 2>&1 || note "torch resnet32 float32 compile stopped"
fi

if has headline; then
  part "headline run" "$(left)"
  L=$(left); [ "$L" -lt 30 ] && L=30
  "$PY" benchmarks/headline.py --epochs "$HL_EPOCHS" --timeout "$((L - 10))" --log "$OUT/headline.log" --out "$R" \
    >>"$LOG" 2>&1 || note "headline failed"
fi

note "done"
"$PY" benchmarks/gpu/summary.py "$OUT" | tee "$OUT/summary.md"
