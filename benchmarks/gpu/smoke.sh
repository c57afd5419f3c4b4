#!/usr/bin/env bash
# GPU smoke run, for the accelerator machine (an NVIDIA H200 lent through the device tool; no TensorFlow, no
# network). Prepared on CPU; run it from the repository root there, with the wheels of benchmarks/gpu/wheels.sh:
#
#   device run, carry [".whl"], timeout_s 420:
#     bash benchmarks/gpu/smoke.sh
#
# It installs the carried pure-Python wheels, records every version, checks that TensorFlow is absent, trains the
# README's digits quickstart on the device data path, and times the whole training loop on generated CIFAR-shaped
# arrays (ResNet-32, batch 128, device path) and each family's views. Logs and JSON go to $OUT (the device tool
# brings them back). SMOKE_IMAGES / SMOKE_EPOCHS shrink the loop measurement (a CPU dry run).
set -uo pipefail
OUT=${OUT:-/tmp/ltjax_gpu_smoke}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 - <<'PY' | tee "$OUT/env.json"
import importlib, importlib.util, json, platform, subprocess
out = {"python": platform.python_version(), "machine": platform.machine()}
for m in ("jax", "jaxlib", "flax", "optax", "orbax.checkpoint", "ml_collections", "tensorboardX", "numpy", "absl",
          "sklearn", "torch"):
  try:
    out[m] = getattr(importlib.import_module(m), "__version__", "?")
  except Exception as e:  # noqa: BLE001
    out[m] = f"missing: {type(e).__name__}"
out["tensorflow_installed"] = importlib.util.find_spec("tensorflow") is not None
import jax
out["backend"], out["devices"] = jax.default_backend(), [str(d) for d in jax.devices()]
try:
  out["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                      "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
except OSError:
  pass
print(json.dumps(out))
PY
status=0
start=$(date +%s.%N)
python3 main.py --config configs/quickstart.py --workdir /tmp/ltjax_quickstart --config.train.progress_bar=False \
  2>&1 | tee "$OUT/quickstart.log" || status=1
end=$(date +%s.%N)
cp /tmp/ltjax_quickstart/results.json "$OUT/quickstart_results.json" 2>/dev/null || status=1
python3 -c "import json; print(json.dumps({'quickstart_wall_s': round($end - $start, 1)}))" | tee -a "$OUT/env.json"
python3 benchmarks/input_paths.py --paths device --images "${SMOKE_IMAGES:-10847}" --epochs "${SMOKE_EPOCHS:-3}" --eval \
  --out "$OUT/input_paths.jsonl" 2>&1 | tail -n 5 || status=1
python3 benchmarks/views.py --paths device --batch 512 --out "$OUT/views.jsonl" 2>&1 | tail -n 4 || status=1
exit $status
