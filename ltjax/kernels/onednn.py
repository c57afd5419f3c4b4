"""oneDNN convolutions for XLA:CPU, called through the XLA FFI (`onednn_conv.cc` beside this file).

XLA's CPU backend lowers convolutions to Eigen kernels that run far below what the CPU can do — above all the weight
gradient, which it turns into one convolution contracting over B·Ho·Wo (docs/BENCHMARKS_conv.md). PyTorch's CPU
convolutions are oneDNN's; these three custom calls hand JAX's NHWC / HWIO tensors to the same library:

  conv_fwd(x [N,H,W,C], w [kh,kw,C,O])            -> y  [N,Ho,Wo,O]
  conv_bwd_data(g [N,Ho,Wo,O], w, x_shape)        -> dx [N,H,W,C]
  conv_bwd_weights(x, g [N,Ho,Wo,O], w_shape)     -> dw [kh,kw,C,O]

with y[n,i,j,o] = Σ_{a,b,c} xpad[n, i·sh+a, j·sw+b, c] · w[a,b,c,o] (xpad: x zero-padded by (pt, pb), (pl, pr)),
float32 only.

The C++ source is compiled on first use with the system C++ compiler against the oneDNN that pip installs
(`onednn-cpu-gomp` + `onednn-devel-cpu-gomp`, in requirements.txt) and jaxlib's FFI headers, into
$LTJAX_CACHE_DIR (default ~/.cache/ltjax), keyed by a hash of the source, the compiler and the library paths — about
3 s once per machine. `available()` says whether that worked and `unavailable_reason()` why not; nothing here raises
at import time.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec as P

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onednn_conv.cc")
CACHE_ENV_VAR = "LTJAX_CACHE_DIR"
ROOT_ENV_VAR = "LTJAX_ONEDNN_ROOT"  # a oneDNN install prefix with include/ and lib/ (default: this Python's prefix)
INSTALL_HINT = ("pip install onednn-cpu-gomp==2023.2.0 onednn-devel-cpu-gomp==2023.2.0 (both in requirements.txt) "
                "and a C++ compiler (apt-get install g++), or set LTJAX_CONV_IMPL=chunked to use XLA's convolutions")
_TARGETS = {"fwd": "LtjaxOnednnConvFwd", "bwd_data": "LtjaxOnednnConvBwdData",
            "bwd_weights": "LtjaxOnednnConvBwdWeights"}
_OPS = {"fwd": 0, "bwd_data": 1, "bwd_weights": 2}


def _onednn_root() -> tuple[str, str]:
  """(include dir, library file) of the oneDNN to build against; raises RuntimeError naming what is missing."""
  prefixes = [os.environ[ROOT_ENV_VAR]] if os.environ.get(ROOT_ENV_VAR) else [sys.prefix, sys.base_prefix,
                                                                                  "/usr/local", "/usr"]
  for prefix in prefixes:
    inc = os.path.join(prefix, "include")
    if not os.path.exists(os.path.join(inc, "oneapi", "dnnl", "dnnl.hpp")):
      continue
    for libdir in ("lib", "lib64", os.path.join("lib", "x86_64-linux-gnu")):
      lib = os.path.join(prefix, libdir, "libdnnl.so.3")
      if os.path.exists(lib):
        return inc, lib
  raise RuntimeError(f"oneDNN headers and libdnnl.so.3 not found under {', '.join(prefixes)}")


def _compiler() -> str:
  for cxx in (os.environ.get("CXX", ""), "g++", "c++", "clang++"):
    if cxx and shutil.which(cxx):
      return shutil.which(cxx)
  raise RuntimeError("no C++ compiler found ($CXX, g++, c++, clang++)")


def _cache_dir() -> str:
  return os.environ.get(CACHE_ENV_VAR) or os.path.join(os.path.expanduser("~"), ".cache", "ltjax")


def build() -> str:
  """Compiles onednn_conv.cc (once per source/compiler/library; cached) and returns the shared library's path."""
  inc, lib = _onednn_root()
  cxx = _compiler()
  version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout
  with open(SOURCE, "rb") as f:
    src = f.read()
  digest = hashlib.sha256(b"\0".join([src, version.encode(), inc.encode(), lib.encode(),
                                      jax.ffi.include_dir().encode()])).hexdigest()[:16]
  out_dir = _cache_dir()
  out = os.path.join(out_dir, f"ltjax_onednn_conv_{digest}.so")
  if os.path.exists(out):
    return out
  os.makedirs(out_dir, exist_ok=True)
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
  os.close(fd)
  cmd = [cxx, "-O2", "-std=c++17", "-shared", "-fPIC", "-w", "-I", jax.ffi.include_dir(), "-I", inc, SOURCE, "-o",
         tmp, lib, f"-Wl,-rpath,{os.path.dirname(lib)}"]
  try:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
      raise RuntimeError(f"compiling {SOURCE} failed:\n{' '.join(cmd)}\n{r.stderr[-4000:]}")
    os.replace(tmp, out)  # atomic: concurrent builders (several processes) each install a complete file
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return out


@functools.lru_cache(maxsize=None)
def _load():
  """(ctypes library, None) once the FFI targets are registered with JAX, or (None, reason)."""
  try:
    path = build()
    lib = ctypes.cdll.LoadLibrary(path)
    for name, symbol in _TARGETS.items():
      jax.ffi.register_ffi_target(f"ltjax_onednn_conv_{name}", jax.ffi.pycapsule(getattr(lib, symbol)),
                                  platform="cpu")
    return lib, None
  except (RuntimeError, OSError, subprocess.SubprocessError) as e:
    logging.getLogger(__name__).warning(
        "oneDNN convolutions unavailable, CPU convolutions fall back to XLA's own (2-5x slower steps): %s\nFix: %s",
        e, INSTALL_HINT)
    return None, str(e)


def available() -> bool:
  """Whether the oneDNN convolutions could be built and registered here (builds them on the first call)."""
  return _load()[0] is not None


def unavailable_reason() -> str:
  """Why `available()` is False ('' when it is True)."""
  return _load()[1] or ""


def require() -> None:
  """Raises RuntimeError with the cause and the fix when the oneDNN convolutions are not available."""
  if not available():
    raise RuntimeError(f"the oneDNN convolution (LTJAX_CONV_IMPL=onednn) is not available: {unavailable_reason()}\n"
                       f"Fix: {INSTALL_HINT}")


def _attrs(strides: Sequence[int], pads: Sequence[Sequence[int]]) -> dict:
  (pt, pb), (pl, pr) = pads
  return dict(sh=np.int64(strides[0]), sw=np.int64(strides[1]), pt=np.int64(pt), pb=np.int64(pb),
              pl=np.int64(pl), pr=np.int64(pr))


def out_hw(in_hw, kernel_hw, strides, pads) -> tuple[int, int]:
  return tuple((i + p[0] + p[1] - k) // s + 1 for i, k, s, p in zip(in_hw, kernel_hw, strides, pads))


def _call(op: str, shape, a, b, strides, pads):
  require()
  out = jax.ShapeDtypeStruct(tuple(shape), a.dtype)
  return jax.ffi.ffi_call(f"ltjax_onednn_conv_{op}", out)(a, b, **_attrs(strides, pads))


# Under jit with a sharded batch, XLA's partitioner knows nothing of a custom call and would gather the whole batch
# onto every device.  `custom_partitioning` tells it instead: forward and input gradient run on each device's slice
# of the batch (kernel replicated), the weight gradient is each slice's gradient summed over the batch axes (psum).
# custom_partitioning has no vmap rule, so `custom_vmap` supplies one (MoCo's shuffle-BN groups vmap the encoder):
# a vmapped dimension is folded into the batch where the kernel is shared; otherwise (the per-group weight gradient)
# the groups run one by one as plain custom calls, which a sharded batch gathers (correct, not data-parallel: a
# group's slice of a sharded batch is not expressible on the mesh for custom_partitioning).

def _batch_axes(sharding):
  spec = getattr(sharding, "spec", None)
  return spec[0] if spec else None


def _partitioned(op: str, out_shape, strides, pads, rule: str):
  """The raw custom call `op` made batch-partitionable; out_shape(a, b) gives the output shape."""
  raw = lambda a, b: _call(op, out_shape(a, b), a, b, strides, pads)  # noqa: E731
  fn = custom_partitioning(raw)
  sums_batch = op == "bwd_weights"

  def out_sharding(mesh, arg_shapes):
    return NamedSharding(mesh, P() if sums_batch else P(_batch_axes(arg_shapes[0].sharding)))

  def partition(mesh, arg_shapes, result_shape):
    axes = _batch_axes(arg_shapes[0].sharding)
    in_shardings = (NamedSharding(mesh, P(axes)), NamedSharding(mesh, P(axes) if sums_batch else P()))

    def lower(a, b):
      out = raw(a, b)
      return jax.lax.psum(out, axes) if sums_batch and axes is not None else out

    return mesh, lower, out_sharding(mesh, arg_shapes), in_shardings

  fn.def_partition(partition=partition, sharding_rule=rule,
                   infer_sharding_from_operands=lambda mesh, arg_shapes, result_shape: out_sharding(mesh, arg_shapes))
  return fn, raw


@functools.lru_cache(maxsize=None)
def _op(op: str, strides: tuple, pads: tuple, shape: tuple):
  """The jit-, shard- and vmap-ready custom call for one convolution geometry.

  shape: the static part of the output: (H, W, C) of dx for 'bwd_data', [kh, kw, C, O] for 'bwd_weights', () for
  'fwd' (its output follows from the operands).
  """
  if op == "fwd":
    out_shape = lambda x, w: (x.shape[0], *out_hw(x.shape[1:3], w.shape[:2], strides, pads), w.shape[3])  # noqa
    rule = "n h w c, kh kw c o -> n i j o"
  elif op == "bwd_data":
    out_shape = lambda g, w: (g.shape[0], *shape)  # noqa: E731
    rule = "n i j o, kh kw c o -> n h w c"
  else:
    out_shape = lambda x, g: shape  # noqa: E731
    rule = "n h w c, n i j o -> kh kw c o"
  part, raw = _partitioned(op, out_shape, strides, pads, rule)
  fn = jax.custom_batching.custom_vmap(lambda a, b: part(a, b))

  @fn.def_vmap
  def _vmap(axis_size, in_batched, a, b):
    a_batched, b_batched = in_batched
    if a_batched and not b_batched and op != "bwd_weights":  # shared kernel: fold the groups into the batch
      out = fn(a.reshape((-1,) + a.shape[2:]), b)
      return out.reshape((axis_size, -1) + out.shape[1:]), True
    a = a if a_batched else jnp.broadcast_to(a, (axis_size,) + a.shape)
    b = b if b_batched else jnp.broadcast_to(b, (axis_size,) + b.shape)
    return jax.lax.map(lambda ab: raw(*ab), (a, b)), True

  return fn


def _key(strides, pads):
  return tuple(int(s) for s in strides), tuple((int(p[0]), int(p[1])) for p in pads)


def conv_fwd(x, w, strides, pads):
  """y [N,Ho,Wo,O] = conv(x [N,H,W,C], w [kh,kw,C,O]); equals lax.conv_general_dilated(..., ('NHWC','HWIO','NHWC'))."""
  return _op("fwd", *_key(strides, pads), ())(x, w)


def conv_bwd_data(g, w, x_shape, strides, pads):
  """dx [N,H,W,C] = the convolution's input gradient for output gradient g [N,Ho,Wo,O]."""
  return _op("bwd_data", *_key(strides, pads), tuple(x_shape[1:]))(g, w)


def conv_bwd_weights(x, g, w_shape, strides, pads):
  """dw [kh,kw,C,O] = Σ_{n,i,j} xpad[n, i·sh+a, j·sw+b, c] · g[n,i,j,o].

  An unpadded 1×1 kernel with strides > 1 only reads x[:, ::sh, ::sw]: that subsample goes to a stride-1 call.
  (oneDNN 2023.2's `jit_1x1:avx2` weight gradient is wrong for strided 1×1 convolutions with fewer than 8 input
  channels on AVX2-only CPUs — up to 100% relative error, tests/models/test_onednn.py — and the unit-stride form is exact
  everywhere.)"""
  strides, pads = _key(strides, pads)
  if tuple(w_shape[:2]) == (1, 1) and strides != (1, 1) and pads == ((0, 0), (0, 0)):
    x, strides = x[:, ::strides[0], ::strides[1]], (1, 1)
  return _op("bwd_weights", strides, pads, tuple(w_shape))(x, g)


def impl_name(op: str, x_shape, w_shape, strides=(1, 1), pads=((1, 1), (1, 1))) -> str:
  """The oneDNN implementation chosen for one convolution, e.g. 'brgconv:avx512_core' (for benchmarks/tests)."""
  require()
  n, h, w, c = x_shape
  kh, kw, _, o = w_shape
  ho, wo = out_hw((h, w), (kh, kw), strides, pads)
  key = (ctypes.c_int64 * 15)(n, h, w, c, o, kh, kw, ho, wo, strides[0], strides[1], pads[0][0], pads[0][1],
                              pads[1][0], pads[1][1])
  buf = ctypes.create_string_buffer(256)
  if _load()[0].ltjax_onednn_impl(ctypes.c_int64(_OPS[op]), key, buf, ctypes.c_int64(256)) != 0:
    raise ValueError(f"oneDNN has no convolution for x {x_shape}, w {w_shape}, strides {strides}, pads {pads}")
  return buf.value.decode()
