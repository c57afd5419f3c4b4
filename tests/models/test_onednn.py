"""ltjax.kernels.onednn: the oneDNN convolution custom calls equal XLA's convolution (values and gradients) on one
device, on a sharded batch over 8 devices and under vmap; 'auto' picks them on CPU only; clear errors without them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from .test_conv import CASES, _data, _ref
from ltjax.kernels import onednn
from ltjax.models import conv as conv_lib
from ltjax.models.conv import conv2d

pytestmark = pytest.mark.skipif(not onednn.available(), reason=f"oneDNN kernels unavailable: "
                                f"{onednn.unavailable_reason()}")

# ResNet shapes beyond test_conv's small cases: the ImageNet stem (7x7 stride 2, pad 3), a CIFAR stage-1 layer,
# asymmetric padding, a 1x1 stride-2 projection; strided 1x1 kernels on few input channels (1-5: the case whose
# weight gradient oneDNN's jit_1x1:avx2 gets wrong on AVX2-only CPUs, routed through a unit-stride subsample).
MORE = [
    (2, 20, 20, 3, 8, 7, 2, ((3, 3), (3, 3))),
    (4, 16, 16, 16, 16, 3, 1, ((1, 1), (1, 1))),
    (3, 9, 10, 5, 6, 3, 2, ((0, 1), (2, 0))),
    (4, 8, 8, 16, 32, 1, 2, ((0, 0), (0, 0))),
    (5, 8, 8, 3, 4, 1, 2, ((0, 0), (0, 0))),
    (8, 8, 8, 4, 4, 1, 2, ((0, 0), (0, 0))),
    (8, 9, 7, 1, 4, 1, 3, ((0, 0), (0, 0))),
    (8, 32, 32, 5, 4, 1, 2, ((0, 0), (0, 0))),
]


def _loss(conv):
  return lambda x, w: jnp.sum(jnp.sin(conv(x, w)) * jnp.cos(jnp.arange(7.0).sum()))


@pytest.mark.parametrize("case", CASES + MORE, ids=[str(i) for i in range(len(CASES + MORE))])
def test_values_and_gradients_equal_xla(case):
  x, w, s, p = _data(case)
  ours = lambda x, w: conv2d(x, w, (s, s), p, impl="onednn")  # noqa: E731
  ref = lambda x, w: _ref(x, w, s, p)  # noqa: E731
  np.testing.assert_allclose(jax.jit(ours)(x, w), ref(x, w), rtol=1e-5, atol=1e-5)
  gx, gw = jax.jit(jax.grad(_loss(ours), argnums=(0, 1)))(x, w)
  gx_ref, gw_ref = jax.grad(_loss(ref), argnums=(0, 1))(x, w)
  np.testing.assert_allclose(gx, gx_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(gw, gw_ref, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(gw_ref))))


def test_kernels_against_float64_numpy():
  """Each custom call against the formulas of onednn_conv.cc, in float64 numpy (stride 2, asymmetric padding)."""
  r = np.random.RandomState(3)
  x = r.randn(3, 9, 10, 4).astype(np.float32)
  w = r.randn(3, 3, 4, 5).astype(np.float32)
  (pt, pb), (pl, pr) = pads = ((0, 1), (2, 0))
  s = 2
  xp = np.pad(x.astype(np.float64), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
  ho, wo = onednn.out_hw((9, 10), (3, 3), (s, s), pads)
  taps = {(a, b): xp[:, a:a + s * (ho - 1) + 1:s, b:b + s * (wo - 1) + 1:s] for a in range(3) for b in range(3)}
  y_ref = sum(np.einsum("nijc,co->nijo", taps[a, b], w[a, b].astype(np.float64)) for a, b in taps)
  g = r.randn(*y_ref.shape).astype(np.float32)
  dw_ref = np.stack([np.einsum("nijc,nijo->co", taps[a, b], g.astype(np.float64)) for a, b in sorted(taps)])
  dxp = np.zeros_like(xp)
  for a, b in taps:
    dxp[:, a:a + s * (ho - 1) + 1:s, b:b + s * (wo - 1) + 1:s] += np.einsum("nijo,co->nijc", g, w[a, b])
  dx_ref = dxp[:, pt:pt + 9, pl:pl + 10]
  y = jax.jit(lambda x, w: onednn.conv_fwd(x, w, (s, s), pads))(x, w)
  dx = jax.jit(lambda g, w: onednn.conv_bwd_data(g, w, x.shape, (s, s), pads))(g, w)
  dw = jax.jit(lambda x, g: onednn.conv_bwd_weights(x, g, w.shape, (s, s), pads))(x, g)
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dw, dw_ref.reshape(w.shape), rtol=1e-5, atol=1e-5)


def _sharded_grad(fn, x, w):
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  rep, dat = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
  f = jax.jit(jax.grad(fn, argnums=(0, 1)), in_shardings=(dat, rep))
  xs = jax.device_put(x, dat)
  return f(xs, w), f.lower(xs, w).compile().as_text()


def test_sharded_batch_runs_per_device_and_equals_one_device():
  assert jax.device_count() == 8
  x, w, s, p = _data((16, 8, 8, 4, 6, 3, 1, ((1, 1), (1, 1))))
  loss = _loss(lambda x, w: conv2d(x, w, (s, s), p, impl="onednn"))
  (gx, gw), hlo = _sharded_grad(loss, x, w)
  gx1, gw1 = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, w)
  np.testing.assert_allclose(gx, gx1, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(gw, gw1, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(gw1))))
  # Data-parallel: each device convolves its 2 examples (no all-gather of the batch), dW is summed by an all-reduce.
  assert "all-gather" not in hlo
  assert "f32[2,8,8,6]{3,2,1,0} custom-call(" in hlo and 'custom_call_target="ltjax_onednn_conv_fwd"' in hlo
  assert "all-reduce(" in hlo


@pytest.mark.slow
def test_vmapped_groups_equal_xla():
  """MoCo's shuffle-BN groups vmap the encoder: folded forward/input gradient, per-group weight gradients."""
  x, w, s, p = _data((16, 8, 8, 3, 4, 3, 1, ((1, 1), (1, 1))), seed=5)

  def grouped(conv, shared):  # shared=False: a kernel per group too (the sequential branch)
    def f(x, w):
      ws = w if shared else jnp.stack([w, 2 * w, -w, w + 1])
      y = jax.vmap(lambda xi, wi: conv(xi, wi), in_axes=(0, None if shared else 0))(x.reshape(4, 4, 8, 8, 3), ws)
      return jnp.sum(jnp.sin(y) * jnp.arange(4.0).reshape(4, 1, 1, 1, 1))
    return f

  for shared in (True, False):
    ours = grouped(lambda x, w: conv2d(x, w, (s, s), p, impl="onednn"), shared)
    ref = grouped(lambda x, w: _ref(x, w, s, p), shared)
    g, g_ref = jax.jit(jax.grad(ours, argnums=(0, 1)))(x, w), jax.grad(ref, argnums=(0, 1))(x, w)
    for a, b in zip(g, g_ref):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(b))))
    gs, _ = _sharded_grad(ours, x, w)
    for a, b in zip(gs, g_ref):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(b))))


def test_auto_selects_onednn_on_cpu_only(monkeypatch):
  monkeypatch.delenv(conv_lib.ENV_VAR, raising=False)
  assert conv_lib.select_impl("cpu") == "onednn"
  assert conv_lib.select_impl("gpu") == conv_lib.select_impl("tpu") == conv_lib.select_impl("cuda") == "native"
  x, w, s, p = _data(CASES[0])
  hlo = jax.jit(jax.grad(_loss(lambda x, w: conv2d(x, w, (s, s), p)), argnums=(0, 1))).lower(x, w).as_text()
  assert "stablehlo.convolution" not in hlo
  for op in ("fwd", "bwd_data", "bwd_weights"):
    assert f"ltjax_onednn_conv_{op}" in hlo


def test_non_float32_takes_chunked():
  x, w, s, p = _data(CASES[0])
  f = lambda x, w: conv2d(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), (s, s), p, impl="onednn")  # noqa
  hlo = jax.jit(jax.grad(lambda x, w: jnp.sum(f(x, w).astype(jnp.float32)), argnums=(0, 1))).lower(x, w).as_text()
  assert "ltjax_onednn" not in hlo and "stablehlo.convolution" in hlo


def test_impl_name_reports_oneDNN_choice():
  name = onednn.impl_name("fwd", (8, 16, 16, 16), (3, 3, 16, 16))
  assert isinstance(name, str) and name
  with pytest.raises(ValueError, match="oneDNN has no convolution"):
    onednn.impl_name("fwd", (8, 4, 4, 16), (9, 9, 16, 16), pads=((0, 0), (0, 0)))  # kernel larger than the map


def test_unavailable_is_a_clear_error_and_auto_falls_back(monkeypatch):
  monkeypatch.setattr(onednn, "_load", lambda: (None, "no C++ compiler found ($CXX, g++, c++, clang++)"))
  monkeypatch.delenv(conv_lib.ENV_VAR, raising=False)
  assert conv_lib.select_impl("cpu", (8, 32, 32, 16)) == "chunked"
  assert conv_lib.select_impl("cpu", (8, 8, 8, 16)) == "native"  # small maps keep XLA's conv
  with pytest.raises(RuntimeError, match=r"not available: no C\+\+ compiler.*\n.*pip install onednn-cpu-gomp"):
    conv_lib.resolve_impl("onednn", "cpu")
  monkeypatch.setenv(conv_lib.ENV_VAR, "onednn")
  x, w, s, p = _data(CASES[0])
  with pytest.raises(RuntimeError, match="LTJAX_CONV_IMPL=chunked"):
    conv2d(x, w, (s, s), p)


def test_build_failure_names_the_command(monkeypatch, tmp_path):
  bad = tmp_path / "bad-cxx"
  bad.write_text("#!/bin/sh\necho 'fake compiler 1.0'\n[ \"$1\" = --version ] && exit 0\necho broken >&2\nexit 1\n")
  bad.chmod(0o755)
  monkeypatch.setenv("CXX", str(bad))
  monkeypatch.setenv(onednn.CACHE_ENV_VAR, str(tmp_path / "cache"))
  with pytest.raises(RuntimeError, match=r"compiling .*onednn_conv.cc failed:(.|\n)*broken"):
    onednn.build()
  assert not [f for f in (tmp_path / "cache").iterdir() if f.suffix == ".so"]  # no half-written library left
  monkeypatch.setenv(onednn.ROOT_ENV_VAR, str(tmp_path))
  with pytest.raises(RuntimeError, match="oneDNN headers and libdnnl.so.3 not found under"):
    onednn.build()
