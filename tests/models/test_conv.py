"""ltjax.models.conv: the fast weight-gradient paths equal XLA's native convolution; backend selection; nn.Conv parity."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from ltjax.models import conv as conv_lib
from ltjax.models.conv import Conv, conv2d, resolve_impl, select_impl

DN = ("NHWC", "HWIO", "NHWC")
FAST = ("chunked", "taps", "im2col")

# (batch, H, W, Cin, Cout, kernel, stride, padding)
CASES = [
    (5, 8, 8, 3, 4, 3, 1, ((1, 1), (1, 1))),
    (7, 9, 9, 4, 6, 3, 2, ((1, 1), (1, 1))),  # stride 2, odd size, explicit PyTorch-style padding
    (19, 8, 8, 1, 5, 3, 1, "SAME"),  # 1-channel input, batch not a multiple of the chunk
    (6, 8, 6, 2, 3, 3, 2, "SAME"),  # SAME with stride 2 pads (0, 1)
    (4, 7, 7, 3, 2, 3, 1, "VALID"),
    (3, 6, 6, 4, 8, 1, 2, "VALID"),  # 1x1 stride-2 projection
]


def _ref(x, w, stride, padding):
  pads = conv_lib._pairs(padding, w.shape[:2], (stride, stride), x.shape[1:3])
  return lax.conv_general_dilated(x, w, (stride, stride), pads, dimension_numbers=DN)


def _data(case, seed=0):
  b, h, wd, ci, co, k, s, p = case
  r = np.random.RandomState(seed)
  x = jnp.asarray(r.randn(b, h, wd, ci), jnp.float32)
  w = jnp.asarray(r.randn(k, k, ci, co) * 0.3, jnp.float32)
  return x, w, s, p


@pytest.mark.parametrize("impl", FAST)
@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_fast_paths_equal_native(case, impl):
  x, w, s, p = _data(case)
  chunk = 4
  loss_ref = lambda x, w: jnp.sum(jnp.sin(_ref(x, w, s, p)))  # noqa: E731
  loss = lambda x, w: jnp.sum(jnp.sin(conv2d(x, w, (s, s), p, impl=impl, chunk=chunk)))  # noqa: E731
  y_ref, y = _ref(x, w, s, p), jax.jit(lambda x, w: conv2d(x, w, (s, s), p, impl=impl, chunk=chunk))(x, w)
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  gx_ref, gw_ref = jax.grad(loss_ref, argnums=(0, 1))(x, w)
  gx, gw = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, w)
  np.testing.assert_allclose(gx, gx_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(gw, gw_ref, rtol=1e-5, atol=1e-4 * float(jnp.max(jnp.abs(gw_ref))))


def test_chunked_batch_smaller_than_chunk_and_float64_reference():
  x, w, s, p = _data((3, 8, 8, 2, 3, 3, 1, ((1, 1), (1, 1))), seed=1)
  g = jnp.asarray(np.random.RandomState(2).randn(3, 8, 8, 3), jnp.float32)
  _, vjp = jax.vjp(lambda w: conv2d(x, w, (1, 1), p, impl="chunked", chunk=16), w)
  # float64 numpy reference: dW[i,j,c,o] = sum_{b,h,w} xpad[b,h+i,w+j,c] g[b,h,w,o]
  xp = np.pad(np.asarray(x, np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
  ref = np.stack([np.einsum("bhwc,bhwo->co", xp[:, i:i + 8, j:j + 8], np.asarray(g, np.float64))
                  for i in range(3) for j in range(3)]).reshape(3, 3, 2, 3)
  np.testing.assert_allclose(vjp(g)[0], ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("onednn_available", [True, False])
def test_select_impl_per_backend(monkeypatch, onednn_available):
  monkeypatch.delenv(conv_lib.ENV_VAR, raising=False)
  monkeypatch.setattr(conv_lib.onednn, "available", lambda: onednn_available)
  assert select_impl("gpu") == "native"
  assert select_impl("tpu") == "native"
  assert select_impl("cuda") == "native"
  assert select_impl("cpu") == ("onednn" if onednn_available else "chunked")
  assert resolve_impl("auto", "gpu") == "native"
  assert resolve_impl("taps", "gpu") == "taps"
  monkeypatch.setenv(conv_lib.ENV_VAR, "im2col")
  assert resolve_impl("auto", "cpu") == "im2col"
  assert resolve_impl("native", "cpu") == "native"  # the module field wins over the environment
  monkeypatch.setenv(conv_lib.ENV_VAR, "bogus")
  with pytest.raises(ValueError, match="unknown conv impl"):
    resolve_impl("auto", "cpu")


def test_chunk_resolution(monkeypatch):
  monkeypatch.delenv(conv_lib.CHUNK_ENV_VAR, raising=False)
  assert conv_lib.resolve_chunk() == conv_lib.DEFAULT_CHUNK == 8
  assert conv_lib.resolve_chunk(3) == 3
  monkeypatch.setenv(conv_lib.CHUNK_ENV_VAR, "5")
  assert conv_lib.resolve_chunk() == 5
  assert conv_lib.resolve_chunk(2) == 2  # an explicit chunk wins over the environment
  for bad, msg in (("x", "not an integer"), ("0", ">= 1")):
    monkeypatch.setenv(conv_lib.CHUNK_ENV_VAR, bad)
    with pytest.raises(ValueError, match=msg):
      conv_lib.resolve_chunk()
  # The environment's chunk reaches the traced program: 19 examples in chunks of 5 -> 4 weight-gradient convs.
  monkeypatch.setenv(conv_lib.CHUNK_ENV_VAR, "5")
  x, w, s, p = _data(CASES[2])
  loss = lambda x, w: jnp.sum(jnp.sin(conv2d(x, w, (s, s), p, impl="chunked")))  # noqa: E731
  hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(x, w).as_text()
  assert hlo.count("stablehlo.convolution") == 1 + 1 + 4  # forward, input gradient, 4 chunks


@pytest.mark.parametrize("hwc,chunked", [((8, 8, 16), False), ((4, 4, 64), False), ((8, 8, 64), True),
                                         ((16, 16, 3), True)])
def test_auto_keeps_native_on_small_maps(monkeypatch, hwc, chunked):
  """'auto' on CPU without the oneDNN kernels: digits-sized maps (8×8×16 and smaller) keep XLA's conv; ResNet-32's
  8×8×64 stage and 16×16+ maps take the chunked weight gradient."""
  monkeypatch.setattr(conv_lib.onednn, "available", lambda: False)
  monkeypatch.delenv(conv_lib.ENV_VAR, raising=False)
  monkeypatch.delenv(conv_lib.CHUNK_ENV_VAR, raising=False)
  r = np.random.RandomState(0)
  x = jnp.asarray(r.randn(19, *hwc), jnp.float32)
  w = jnp.asarray(r.randn(3, 3, hwc[2], 4), jnp.float32)
  loss = lambda x, w: jnp.sum(jnp.sin(conv2d(x, w, (1, 1), "SAME", impl="auto")))  # noqa: E731
  hlo = jax.jit(jax.grad(loss, argnums=(0, 1)), backend="cpu").lower(x, w).as_text()
  # forward + input gradient + weight gradient: one conv natively, ceil(19 / 8) = 3 per-chunk convs when chunked
  assert hlo.count("stablehlo.convolution") == (5 if chunked else 3)


@pytest.mark.parametrize("kw", [
    dict(features=8, kernel_size=(3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), use_bias=False),
    dict(features=5, kernel_size=(3, 3), padding="SAME", use_bias=True),
    dict(features=4, kernel_size=(1, 1), strides=2, padding="VALID", use_bias=False),
])
@pytest.mark.parametrize("impl", ("auto", "native", "chunked", pytest.param("onednn", marks=pytest.mark.skipif(
    not conv_lib.onednn.available(), reason="oneDNN kernels unavailable"))))
def test_module_matches_nn_conv(kw, impl):
  x = jnp.asarray(np.random.RandomState(0).randn(5, 8, 8, 3), jnp.float32)
  init = nn.initializers.variance_scaling(2.0, "fan_in", "normal")
  ref_mod = nn.Conv(kernel_init=init, **kw)
  mod = Conv(kernel_init=init, impl=impl, chunk=2, **kw)
  v_ref = ref_mod.init(jax.random.PRNGKey(0), x)
  v = mod.init(jax.random.PRNGKey(0), x)
  assert jax.tree.structure(v) == jax.tree.structure(v_ref)
  assert jax.tree.map(jnp.shape, v) == jax.tree.map(jnp.shape, v_ref)
  for a, b in zip(jax.tree.leaves(v), jax.tree.leaves(v_ref)):
    np.testing.assert_array_equal(a, b)  # same initialiser, same RNG path → same parameters
  np.testing.assert_allclose(mod.apply(v_ref, x), ref_mod.apply(v_ref, x), rtol=1e-5, atol=1e-5)
  g = jax.grad(lambda v: jnp.sum(mod.apply(v, x) ** 2))(v_ref)
  g_ref = jax.grad(lambda v: jnp.sum(ref_mod.apply(v, x) ** 2))(v_ref)
  for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_module_bfloat16_and_unbatched():
  x = jnp.asarray(np.random.RandomState(0).randn(6, 6, 2), jnp.float32)
  mod = Conv(4, (3, 3), padding=((1, 1), (1, 1)), use_bias=False, dtype=jnp.bfloat16, impl="chunked", chunk=1)
  v = mod.init(jax.random.PRNGKey(0), x)
  assert v["params"]["kernel"].dtype == jnp.float32
  y = mod.apply(v, x)
  assert y.shape == (6, 6, 4) and y.dtype == jnp.bfloat16
  g = jax.grad(lambda v: jnp.sum(mod.apply(v, x[None].repeat(3, 0)).astype(jnp.float32)))(v)
  assert g["params"]["kernel"].dtype == jnp.float32 and np.isfinite(np.asarray(g["params"]["kernel"])).all()
