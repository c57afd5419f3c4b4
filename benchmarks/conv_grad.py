"""Per-layer convolution timings: forward, input gradient and weight gradient, XLA native vs ltjax's formulations.

  python benchmarks/conv_grad.py                       # ResNet-32 CIFAR layer shapes, batch 128, all impls
  python benchmarks/conv_grad.py --batch 512 --impls native,chunked --chunks 8,16,32
  python benchmarks/conv_grad.py --shapes digits       # the 8x8 (digits) ResNet layer shapes
  python benchmarks/conv_grad.py --impls native,onednn --torch   # + PyTorch's F.conv2d (NCHW and channels_last)
Prints one line per shape with median milliseconds and GFLOP/s (2·B·Ho·Wo·kh·kw·Cin·Cout per pass), and a JSON
line per shape if --json.  Forward and input gradient are XLA's in every impl but 'onednn', so XLA's are timed
once and 'onednn' adds its own; --torch adds PyTorch's (an optional benchmark dependency) on the same shapes.
"""

import argparse
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


def torch_times(x, w, g, s, channels_last, reps):
  """PyTorch F.conv2d forward, and its input / weight gradient (torch.ops.aten.convolution_backward), seconds."""
  import torch
  fmt = torch.channels_last if channels_last else torch.contiguous_format
  tx = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
  tw = torch.from_numpy(np.array(w)).permute(3, 2, 0, 1).contiguous(memory_format=fmt)
  tg = torch.from_numpy(np.array(g)).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
  bwd = torch.ops.aten.convolution_backward
  runs = [lambda: torch.nn.functional.conv2d(tx, tw, None, s, 1),
          lambda: bwd(tg, tx, tw, None, [s, s], [1, 1], [1, 1], False, [0, 0], 1, [True, False, False]),
          lambda: bwd(tg, tx, tw, None, [s, s], [1, 1], [1, 1], False, [0, 0], 1, [False, True, False])]
  out = []
  with torch.no_grad():
    for f in runs:
      f()
      ts = []
      for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
      out.append(float(np.median(ts)))
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--shapes", default="cifar", choices=sorted(SHAPES))
  p.add_argument("--impls", default="native,chunked,taps,im2col,onednn")
  p.add_argument("--chunks", default="16", help="chunk sizes tried for impl 'chunked'")
  p.add_argument("--reps", type=int, default=10)
  p.add_argument("--json", action="store_true")
  p.add_argument("--torch", action="store_true", help="also time PyTorch's convolution on the same shapes")
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
    others = {}
    if "onednn" in a.impls.split(","):
      own = lambda x, w: conv2d(x, w, (s, s), PAD, impl="onednn")  # noqa: E731
      others["onednn"] = (timeit(own, x, w, reps=a.reps),
                          timeit(lambda x, w, g: jax.vjp(lambda x: own(x, w), x)[1](g)[0], x, w, g, reps=a.reps))
    if a.torch:
      for cl in (False, True):
        others["torch_cl" if cl else "torch"] = torch_times(x, w, g, s, cl, a.reps)
    for name, ts in others.items():
      for part, t in zip(("fwd", "dx", "dw"), ts):
        row[f"{part}_{name}_ms"] = round(1e3 * t, 3)
        totals[f"{part}_{name}"] = totals.get(f"{part}_{name}", 0.0) + count * t
      line += f" {name} fwd/dx/dw " + "/".join(f"{1e3 * t:.2f}" for t in ts) + "ms |"
    totals["fwd_xla"] = totals.get("fwd_xla", 0.0) + count * t_fwd
    totals["dx_xla"] = totals.get("dx_xla", 0.0) + count * t_dx
    print(line, flush=True)
    if a.json:
      print(json.dumps(row), flush=True)
  print("# totals over the network's 31 convs (ms; bare names are weight gradients): " +
        ", ".join(f"{k} {1e3 * v:.1f}" for k, v in totals.items()))


if __name__ == "__main__":
  main()
