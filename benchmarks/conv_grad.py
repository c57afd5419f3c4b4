"""Per-layer convolution timings: forward, input gradient and weight gradient, XLA native vs ltjax's formulations.

  python benchmarks/conv_grad.py                       # ResNet-32 CIFAR layer shapes, batch 128, all impls
  python benchmarks/conv_grad.py --batch 512 --impls native,chunked --chunks 8,16,32
  python benchmarks/conv_grad.py --shapes digits       # the 8x8 (digits) ResNet layer shapes
Prints one line per (shape, impl) with median milliseconds and GFLOP/s (2·B·Ho·Wo·kh·kw·Cin·Cout per pass), and a
JSON line per shape if --json.  The input gradient is XLA's transposed convolution in every impl, so it is timed
once.
"""

import argparse
import functools
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

from ltjax.models.conv import conv2d  # noqa: E402

# (H, Cin, Cout, stride, count in the network)
SHAPES = {
    "cifar": [(32, 3, 16, 1, 1), (32, 16, 16, 1, 10), (32, 16, 32, 2, 1), (16, 32, 32, 1, 9), (16, 32, 64, 2, 1),
              (8, 64, 64, 1, 9)],
    "digits": [(8, 1, 16, 1, 1), (8, 16, 16, 1, 10), (8, 16, 32, 2, 1), (4, 32, 32, 1, 9), (4, 32, 64, 2, 1),
               (2, 64, 64, 1, 9)],
}
PAD = ((1, 1), (1, 1))


def timeit(f, *args, reps):
  jf = jax.jit(f)
  jax.block_until_ready(jf(*args))
  ts = []
  for _ in range(reps):
    t = time.perf_counter()
    jax.block_until_ready(jf(*args))
    ts.append(time.perf_counter() - t)
  return float(np.median(ts))


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--shapes", default="cifar", choices=sorted(SHAPES))
  p.add_argument("--impls", default="native,chunked,taps,im2col")
  p.add_argument("--chunks", default="16", help="chunk sizes tried for impl 'chunked'")
  p.add_argument("--reps", type=int, default=10)
  p.add_argument("--json", action="store_true")
  a = p.parse_args()
  rng = np.random.RandomState(0)
  impls = []
  for impl in a.impls.split(","):
    impls += [(f"chunked{c}", impl, int(c)) for c in a.chunks.split(",")] if impl == "chunked" else [(impl, impl, 16)]
  print(f"# backend {jax.default_backend()} batch {a.batch} cpu_count {os.cpu_count()} jax {jax.__version__}")
  totals = {}
  for h, ci, co, s, count in SHAPES[a.shapes]:
    ho = (h + 2 - 3) // s + 1
    x = jnp.asarray(rng.randn(a.batch, h, h, ci), jnp.float32)
    w = jnp.asarray(rng.randn(3, 3, ci, co) * 0.1, jnp.float32)
    g = jnp.asarray(rng.randn(a.batch, ho, ho, co), jnp.float32)
    gflop = 2 * a.batch * ho * ho * 9 * ci * co / 1e9
    ref = lambda x, w: lax.conv_general_dilated(x, w, (s, s), PAD, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    t_fwd = timeit(ref, x, w, reps=a.reps)
    t_dx = timeit(lambda x, w, g: jax.vjp(lambda x: ref(x, w), x)[1](g)[0], x, w, g, reps=a.reps)
    row = {"shape": f"{h}x{h} {ci}->{co} s{s}", "count": count, "batch": a.batch, "gflop": round(gflop, 4),
           "fwd_ms": round(1e3 * t_fwd, 3), "fwd_gflops": round(gflop / t_fwd, 1), "dx_ms": round(1e3 * t_dx, 3),
           "dx_gflops": round(gflop / t_dx, 1)}
    line = f"{row['shape']:>18} x{count:<2} fwd {1e3 * t_fwd:7.2f}ms {gflop / t_fwd:5.0f}GF/s | dx {1e3 * t_dx:7.2f}ms " \
           f"{gflop / t_dx:5.0f}GF/s | dw"
    for name, impl, chunk in impls:
      f = lambda x, w, g: jax.vjp(lambda w: conv2d(x, w, (s, s), PAD, impl=impl, chunk=chunk), w)[1](g)[0]
      t = timeit(f, x, w, g, reps=a.reps)
      row[f"dw_{name}_ms"] = round(1e3 * t, 3)
      row[f"dw_{name}_gflops"] = round(gflop / t, 1)
      totals[name] = totals.get(name, 0.0) + count * t
      line += f" {name} {1e3 * t:7.2f}ms {gflop / t:4.0f}GF/s |"
    print(line, flush=True)
    if a.json:
      print(json.dumps(row), flush=True)
  print("# weight-gradient total over the network's 33 convs (ms): " +
        ", ".join(f"{k} {1e3 * v:.1f}" for k, v in totals.items()))


if __name__ == "__main__":
  main()
