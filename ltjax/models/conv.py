"""A drop-in `flax.linen.Conv` whose weight gradient is fast on CPU.

XLA's CPU backend computes a convolution's weight gradient (a convolution that contracts over batch × height ×
width) far below the speed of the forward convolution; in a CIFAR ResNet-32 train step it dominates. `conv2d` is a
`jax.custom_vjp` convolution:

* forward: `lax.conv_general_dilated` (unchanged), except under 'onednn';
* input gradient: XLA's own transposed convolution (exactly what autodiff of `lax.conv_general_dilated` emits),
  except under 'onednn';
* weight gradient, by `impl`:
    'native'  - XLA's own (autodiff of lax.conv_general_dilated);
    'chunked' - the batch cut into static chunks of `chunk` examples (DEFAULT_CHUNK = 8), each chunk's weight
                gradient computed by XLA's own convolution, the partial gradients summed.  The chunks are
                *unrolled* (static slices): a `lax.scan`/`lax.map`/`fori_loop` over chunks is 20-100x slower on
                XLA:CPU, because a convolution inside a while-loop body does not get the fast Eigen kernel;
    'taps'    - im2col per kernel tap: one [B*Ho*Wo, Cin]^T @ [B*Ho*Wo, Cout] matmul per (kh, kw);
    'im2col'  - all taps concatenated: one [B*Ho*Wo, kh*kw*Cin]^T @ [B*Ho*Wo, Cout] matmul;
    'onednn'  - forward, input gradient *and* weight gradient all by oneDNN (the library behind PyTorch's CPU
                convolutions) through XLA FFI custom calls (`ltjax.kernels.onednn`); float32 only (other dtypes
                take 'chunked').

`select_impl(backend)` picks the path: on CPU 'onednn' when the kernels could be built (2-20x faster than XLA's own
per convolution, docs/BENCHMARKS_conv.md), else 'chunked' ('native' for maps too small to gain from chunks); 'native'
on GPU/TPU (cuDNN / the TPU compiler already do this well).  Override with the module field `impl` or the
environment variable `LTJAX_CONV_IMPL` (module field wins unless it is 'auto').

Only what the CIFAR/ImageNet ResNets need is supported: 2-D NHWC inputs, HWIO kernels, no dilation, one feature
group.  Parameter names and shapes equal `nn.Conv`'s ('kernel' [kh, kw, Cin, Cout], optional 'bias' [Cout]), so
checkpoints are interchangeable.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype
from jax import lax

from ltjax.kernels import onednn

IMPLS = ("native", "chunked", "taps", "im2col", "onednn")
ENV_VAR = "LTJAX_CONV_IMPL"
CHUNK_ENV_VAR = "LTJAX_CONV_CHUNK"
# Examples per chunk of the 'chunked' weight gradient.  8 measured best end to end on the AVX2 CPU machines
# (ResNet-32, batch 128, against 4 and 16; docs/BENCHMARKS_conv.md); override per run with
# $LTJAX_CONV_CHUNK or per module with Conv(chunk=...).
DEFAULT_CHUNK = 8
_DN = ("NHWC", "HWIO", "NHWC")


# 'auto' keeps XLA's native path for small maps: input H·W below MIN_CHUNKED_PIXELS *and* H·W·Cin below
# MIN_CHUNKED_ACTIVATION.  The chunked weight gradient pays off on 16×16 maps and larger and on ResNet-32's 8×8×64
# stage (docs/BENCHMARKS_conv.md); on the digits models' 8×8×16 and smaller maps no gain was measured and the
# unrolled chunks multiply the compile time.
MIN_CHUNKED_PIXELS = 16 * 16
MIN_CHUNKED_ACTIVATION = 8 * 8 * 64


def _small_map(x_shape) -> bool:
  h, w, c = x_shape[1:4]
  return h * w < MIN_CHUNKED_PIXELS and h * w * c < MIN_CHUNKED_ACTIVATION


def select_impl(backend: str | None = None, x_shape: Sequence[int] | None = None) -> str:
  """The formulation 'auto' means for a backend (and input shape [B, H, W, C], if known).

  gpu/tpu/unknown: 'native'.  cpu: 'onednn' when `ltjax.kernels.onednn` could be built here, else 'chunked' —
  or 'native' for a map too small for chunks to pay (see MIN_CHUNKED_PIXELS).
  """
  backend = (backend or jax.default_backend()).lower()
  if backend != "cpu":
    return "native"
  if onednn.available():
    return "onednn"
  if x_shape is not None and _small_map(x_shape):
    return "native"
  return "chunked"


def resolve_impl(impl: str = "auto", backend: str | None = None, x_shape: Sequence[int] | None = None) -> str:
  """`impl` unless 'auto'; then $LTJAX_CONV_IMPL unless unset/'auto'; then select_impl(backend, x_shape).

  An explicitly requested 'onednn' that cannot be built here is a RuntimeError naming the cause and the fix.
  """
  if impl == "auto":
    impl = os.environ.get(ENV_VAR, "auto") or "auto"
  if impl == "auto":
    impl = select_impl(backend, x_shape)
  if impl not in IMPLS:
    raise ValueError(f"unknown conv impl '{impl}' (known: auto, {', '.join(IMPLS)})")
  if impl == "onednn":
    onednn.require()
  return impl


def resolve_chunk(chunk: int | None = None) -> int:
  """`chunk` if given, else $LTJAX_CONV_CHUNK if set, else DEFAULT_CHUNK; a positive int."""
  if chunk is None:
    raw = os.environ.get(CHUNK_ENV_VAR, "")
    try:
      chunk = int(raw) if raw else DEFAULT_CHUNK
    except ValueError:
      raise ValueError(f"${CHUNK_ENV_VAR}='{raw}' is not an integer (examples per weight-gradient chunk)") from None
  if int(chunk) < 1:
    raise ValueError(f"conv chunk must be >= 1, got {chunk}")
  return int(chunk)


def _pairs(padding, kernel_hw, strides, in_hw) -> tuple[tuple[int, int], ...]:
  if isinstance(padding, str):
    if padding.upper() not in ("SAME", "VALID"):
      raise ValueError(f"padding '{padding}' not supported (use SAME, VALID or explicit pairs)")
    return tuple(lax.padtype_to_pads(in_hw, kernel_hw, strides, padding.upper()))
  if isinstance(padding, int):
    return ((padding, padding),) * 2
  out = []
  for p in padding:
    out.append((p, p) if isinstance(p, int) else (int(p[0]), int(p[1])))
  if len(out) != 2:
    raise ValueError(f"need 2 spatial padding entries, got {padding}")
  return tuple(out)


def _conv(x, w, strides, padding, precision=None):
  return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=_DN, precision=precision)


def _wgrad_native(x, w_shape, w_dtype, g, strides, padding, precision):
  w0 = jnp.zeros(w_shape, w_dtype)
  _, vjp = jax.vjp(lambda w: _conv(x, w, strides, padding, precision), w0)
  return vjp(g)[0]


def _wgrad_chunked(x, w_shape, w_dtype, g, strides, padding, precision, chunk):
  b = x.shape[0]
  if b <= chunk:
    return _wgrad_native(x, w_shape, w_dtype, g, strides, padding, precision)
  # Unrolled on purpose (see module docstring); partial sums in float32 for low-precision inputs.
  acc_dtype = jnp.promote_types(w_dtype, jnp.float32)
  acc = None
  for i in range(0, b, chunk):
    d = _wgrad_native(x[i:i + chunk], w_shape, w_dtype, g[i:i + chunk], strides, padding, precision)
    d = d.astype(acc_dtype)
    acc = d if acc is None else acc + d
  return acc.astype(w_dtype)


def _taps(x, w_shape, g_shape, strides, padding):
  kh, kw = w_shape[:2]
  ho, wo = g_shape[1:3]
  sh, sw = strides
  xp = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
  return [xp[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, :] for i in range(kh) for j in range(kw)]


def _wgrad_taps(x, w_shape, w_dtype, g, strides, padding, precision):
  dn = (((0, 1, 2), (0, 1, 2)), ((), ()))
  acc = jnp.promote_types(w_dtype, jnp.float32)
  cols = _taps(x, w_shape, g.shape, strides, padding)
  d = [lax.dot_general(c, g, dn, precision=precision, preferred_element_type=acc) for c in cols]
  return jnp.stack(d).reshape(w_shape).astype(w_dtype)


def _wgrad_im2col(x, w_shape, w_dtype, g, strides, padding, precision):
  kh, kw, ci, co = w_shape
  acc = jnp.promote_types(w_dtype, jnp.float32)
  cols = jnp.concatenate(_taps(x, w_shape, g.shape, strides, padding), axis=-1).reshape(-1, kh * kw * ci)
  d = lax.dot_general(cols, g.reshape(-1, co), (((0,), (0,)), ((), ())), precision=precision,
                      preferred_element_type=acc)
  return d.reshape(w_shape).astype(w_dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6))
def _conv2d(x, w, strides, padding, impl, chunk, precision):
  return _conv(x, w, strides, padding, precision)


def _conv2d_fwd(x, w, strides, padding, impl, chunk, precision):
  return _conv(x, w, strides, padding, precision), (x, w)


def _conv2d_bwd(strides, padding, impl, chunk, precision, res, g):
  x, w = res
  _, vjp_x = jax.vjp(lambda x: _conv(x, w, strides, padding, precision), x)
  dx = vjp_x(g)[0]
  args = (x, w.shape, w.dtype, g, strides, padding, precision)
  if impl == "chunked":
    dw = _wgrad_chunked(*args, chunk)
  elif impl == "taps":
    dw = _wgrad_taps(*args)
  elif impl == "im2col":
    dw = _wgrad_im2col(*args)
  else:
    dw = _wgrad_native(*args)
  return dx, dw


_conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv2d_onednn(x, w, strides, padding):
  return onednn.conv_fwd(x, w, strides, padding)


def _conv2d_onednn_fwd(x, w, strides, padding):
  return onednn.conv_fwd(x, w, strides, padding), (x, w)


def _conv2d_onednn_bwd(strides, padding, res, g):
  x, w = res
  return (onednn.conv_bwd_data(g, w, x.shape, strides, padding),
          onednn.conv_bwd_weights(x, g, w.shape, strides, padding))


_conv2d_onednn.defvjp(_conv2d_onednn_fwd, _conv2d_onednn_bwd)


def conv2d(x, w, strides: Sequence[int] = (1, 1), padding: Any = "SAME", impl: str = "auto",
           chunk: int | None = None, precision=None):
  """2-D convolution, x [B, H, W, Cin] (NHWC), w [kh, kw, Cin, Cout] (HWIO) → [B, Ho, Wo, Cout].

  Same values as `lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=('NHWC','HWIO','NHWC'))`;
  only the weight gradient's formulation differs (see module docstring). padding: 'SAME', 'VALID', an int, or
  explicit ((lo, hi), (lo, hi)) pairs as in PyTorch-style ((1, 1), (1, 1)).
  """
  strides = tuple(int(s) for s in strides)
  pads = _pairs(padding, w.shape[:2], strides, x.shape[1:3])
  impl = resolve_impl(impl, x_shape=x.shape)
  if impl == "onednn":
    if x.dtype == jnp.float32 and w.dtype == jnp.float32 and min(min(p) for p in pads) >= 0:
      return _conv2d_onednn(x, w, strides, pads)
    impl = "chunked"  # oneDNN path: float32 and non-negative padding only
  if impl == "native":
    return _conv(x, w, strides, pads, precision)
  return _conv2d(x, w, strides, pads, impl, resolve_chunk(chunk), precision)


def _tuple(v, n=2):
  return (v,) * n if isinstance(v, int) else tuple(v)


class Conv(nn.Module):
  """`nn.Conv` (2-D, NHWC) with a selectable weight-gradient formulation; same parameters as nn.Conv.

  impl: 'auto' (environment variable LTJAX_CONV_IMPL, else select_impl(jax.default_backend())), or one of IMPLS.
  chunk: batch chunk size of the 'chunked' weight gradient (None: $LTJAX_CONV_CHUNK, else DEFAULT_CHUNK).
  """

  features: int
  kernel_size: int | Sequence[int] = (3, 3)
  strides: None | int | Sequence[int] = 1
  padding: Any = "SAME"
  use_bias: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()
  impl: str = "auto"
  chunk: int | None = None

  @nn.compact
  def __call__(self, x):
    if isinstance(self.kernel_size, int):  # nn.Conv reads an int as a 1-D kernel
      raise TypeError(f"ltjax Conv is 2-D: give kernel_size as a pair, got {self.kernel_size}")
    kernel_size = tuple(self.kernel_size)
    if len(kernel_size) != 2:
      raise ValueError(f"ltjax Conv is 2-D only, got kernel_size {self.kernel_size}")
    strides = _tuple(self.strides if self.strides is not None else 1)
    unbatched = x.ndim == 3
    if unbatched:
      x = x[None]
    if x.ndim != 4:
      raise ValueError(f"ltjax Conv expects [B, H, W, C] or [H, W, C] input, got shape {x.shape}")
    kernel = self.param("kernel", self.kernel_init, kernel_size + (x.shape[-1], self.features), self.param_dtype)
    bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
    x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = conv2d(x, kernel, strides, self.padding, impl=self.impl, chunk=self.chunk, precision=self.precision)
    if bias is not None:
      y = y + bias.reshape((1, 1, 1, -1))
    return y[0] if unbatched else y
