"""Models: architecture arithmetic, PyTorch-faithful init / BatchNorm / padding / heads, bf16 under jit."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ltjax.models import MODELS, create_model
from ltjax.models.heads import CosineHead, LinearHead
from ltjax.models.layers import BatchNorm, kaiming_normal_fan_in, kaiming_normal_fan_out, pytorch_linear_bias
from ltjax.models.resnet_cifar import PAD1, ResNetCifar, option_a_shortcut


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _expected_resnet_cifar_params(depth, num_classes, in_ch=3, widths=(16, 32, 64)):
  """By hand: 3×3 convs without bias, BN = γ+β per channel, option-A shortcuts are parameter-free, Linear(64, C)."""
  n = (depth - 2) // 6
  conv = lambda cin, cout: 9 * cin * cout
  bn = lambda c: 2 * c
  total = conv(in_ch, widths[0]) + bn(widths[0])
  cin = widths[0]
  for w in widths:
    for _ in range(n):
      total += conv(cin, w) + bn(w) + conv(w, w) + bn(w)
      cin = w
  return total + widths[-1] * num_classes + num_classes


@pytest.fixture(scope="module")
def resnet32():
  model = create_model("resnet32", 10)
  variables = model.init(jax.random.key(0), jnp.zeros((2, 32, 32, 3)))
  return model, variables


def test_resnet32_parameter_count(resnet32):
  _, variables = resnet32
  assert _expected_resnet_cifar_params(32, 10) == 464_154  # the well-known ResNet-32 / CIFAR-10 figure
  assert _count(variables["params"]) == 464_154
  assert _count(variables["batch_stats"]) == 2 * (16 + 2 * 5 * (16 + 32 + 64))
  # Classifier under 'fc/' for both heads (cRT-style freezing selects it by path).
  assert set(variables["params"]["fc"]) == {"kernel", "bias"}
  cos = jax.eval_shape(ResNetCifar(num_classes=7, depth=20, head="cosine").init, jax.random.key(1),
                       jnp.zeros((1, 8, 8, 1)))
  assert set(cos["params"]["fc"]) == {"kernel"}
  assert _count(cos["params"]) == _expected_resnet_cifar_params(20, 7, in_ch=1) - 7


@pytest.mark.slow
def test_output_shapes_and_train_mode(resnet32):
  model, variables = resnet32
  x = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
  out = model.apply(variables, x, train=False)
  assert out["logits"].shape == (4, 10) and out["features"].shape == (4, 64)
  out, upd = model.apply(variables, x, train=True, mutable=["batch_stats"])
  assert out["logits"].dtype == jnp.float32 and out["features"].dtype == jnp.float32
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), upd["batch_stats"], variables["batch_stats"])
  assert all(jax.tree.leaves(changed))
  # Grayscale 8×8 (digits): spatial 8 → 4 → 2; every registered depth builds.
  for name in ("resnet20", "resnet8"):
    m = MODELS[name](num_classes=5)
    v = m.init(jax.random.key(2), jnp.zeros((3, 8, 8, 1)))
    o = m.apply(v, jnp.ones((3, 8, 8, 1)), train=False)
    assert o["logits"].shape == (3, 5) and o["features"].shape == (3, 64)
    assert v["params"]["Conv_0"]["kernel"].shape == (3, 3, 1, 16)


def test_registry_and_errors():
  assert {"resnet20", "resnet32", "resnet44", "resnet56", "resnet110"} <= set(MODELS)
  assert MODELS["resnet110"].keywords["depth"] == 110
  with pytest.raises(ValueError, match="resnet32"):
    create_model("resnet33", 10)
  with pytest.raises(ValueError, match="bfloat16"):
    create_model("resnet32", 10, dtype="float16")
  assert create_model("resnet32", 10, dtype="bfloat16").dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="6n"):
    ResNetCifar(num_classes=3, depth=30).init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  with pytest.raises(ValueError, match="cosine"):
    ResNetCifar(num_classes=3, depth=8, head="mlp").init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))


def test_option_a_shortcut_matches_numpy():
  x = np.random.default_rng(0).normal(size=(2, 9, 8, 16)).astype(np.float32)
  ref = np.zeros((2, 5, 4, 32), np.float32)
  for i in range(5):
    for j in range(4):
      ref[:, i, j, 8:24] = x[:, 2 * i, 2 * j, :]
  np.testing.assert_array_equal(np.asarray(option_a_shortcut(jnp.asarray(x), 32)), ref)
  with pytest.raises(ValueError):
    option_a_shortcut(jnp.asarray(x), 64)


def test_kaiming_init_statistics():
  key = jax.random.key(3)
  w = np.asarray(kaiming_normal_fan_in(key, (3, 3, 256, 512)), np.float64)  # fan_in = 2304, 1.18M samples
  std = np.sqrt(2 / 2304)
  assert abs(w.std() / std - 1) < 0.005 and abs(w.mean()) < 0.005 * std
  # Untruncated normal: P(|w| > 2σ) = 4.55% and some beyond 4σ (truncated normal at ±2σ would have none).
  frac = np.mean(np.abs(w) > 2 * std)
  assert 0.043 < frac < 0.048 and np.abs(w).max() > 4 * std
  wo = np.asarray(kaiming_normal_fan_out(key, (3, 3, 64, 1024)), np.float64)  # fan_out = 9216
  assert abs(wo.std() / np.sqrt(2 / 9216) - 1) < 0.01
  wd = np.asarray(kaiming_normal_fan_in(key, (400, 1000)), np.float64)  # Dense: fan_in = 400
  assert abs(wd.std() / np.sqrt(2 / 400) - 1) < 0.01
  b = np.asarray(pytorch_linear_bias(64)(key, (20000,)))
  assert np.all(np.abs(b) <= 1 / 8) and np.abs(b).max() > 0.99 / 8 and abs(b.std() - 1 / 8 / np.sqrt(3)) < 2e-3


def test_model_init_uses_pytorch_initialisers(resnet32):
  _, variables = resnet32
  p = variables["params"]
  k = np.asarray(p["BasicBlock_14"]["Conv_1"]["kernel"])  # 3×3×64×64, fan_in 576
  assert abs(k.std() / np.sqrt(2 / 576) - 1) < 0.03
  assert abs(np.asarray(p["fc"]["kernel"]).std() / np.sqrt(2 / 64) - 1) < 0.15
  assert np.all(np.abs(np.asarray(p["fc"]["bias"])) <= 1 / 8)
  bn = p["BatchNorm_0"]
  np.testing.assert_array_equal(bn["scale"], 1.0)
  np.testing.assert_array_equal(bn["bias"], 0.0)
  np.testing.assert_array_equal(variables["batch_stats"]["BatchNorm_0"]["mean"], 0.0)
  np.testing.assert_array_equal(variables["batch_stats"]["BatchNorm_0"]["var"], 1.0)


def _bn_reference(x, gamma, beta, rm, rv, eps=1e-5, momentum=0.1):
  """PyTorch BatchNorm2d train mode, float64 numpy (channel-last)."""
  x = x.astype(np.float64)
  axes = tuple(range(x.ndim - 1))
  n = x.size // x.shape[-1]
  mu = x.mean(axes)
  var_b = ((x - mu) ** 2).mean(axes)
  y = (x - mu) / np.sqrt(var_b + eps) * gamma + beta
  new_rm = (1 - momentum) * rm + momentum * mu
  new_rv = (1 - momentum) * rv + momentum * var_b * n / (n - 1)
  return y, new_rm, new_rv


@pytest.fixture(params=["one_pass", "two_pass"])
def bn_variance(request, monkeypatch):
  """Runs a test under each train-mode BatchNorm variance formula (LTJAX_BN_VARIANCE)."""
  monkeypatch.setenv("LTJAX_BN_VARIANCE", request.param)
  return request.param


def test_batchnorm_matches_pytorch_formulas(bn_variance):
  rng = np.random.default_rng(4)
  x = (rng.normal(size=(3, 5, 4, 6)) * rng.uniform(0.5, 3, 6) + rng.normal(size=6)).astype(np.float32)
  bn = BatchNorm()
  v = bn.init(jax.random.key(0), x, use_running_average=False)
  gamma, beta = rng.normal(size=6), rng.normal(size=6)
  rm, rv = rng.normal(size=6), rng.uniform(0.5, 2, 6)
  v = {"params": {"scale": jnp.asarray(gamma, jnp.float32), "bias": jnp.asarray(beta, jnp.float32)},
       "batch_stats": {"mean": jnp.asarray(rm, jnp.float32), "var": jnp.asarray(rv, jnp.float32)}}
  y, upd = bn.apply(v, x, use_running_average=False, mutable=["batch_stats"])
  ry, rrm, rrv = _bn_reference(x, gamma, beta, rm, rv)
  np.testing.assert_allclose(y, ry, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(upd["batch_stats"]["mean"], rrm, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(upd["batch_stats"]["var"], rrv, rtol=1e-6, atol=1e-6)
  # n = 60 values per channel: the biased update would differ from the reference by 0.1·σ²/59.
  assert not np.allclose(upd["batch_stats"]["var"], 0.9 * rv + 0.1 * x.astype(np.float64).var((0, 1, 2)), rtol=1e-5)
  # Eval mode (and `frozen` in train mode): running statistics, nothing updated.
  ey = (x - rm) / np.sqrt(rv + 1e-5) * gamma + beta
  np.testing.assert_allclose(bn.apply(v, x, use_running_average=True), ey, rtol=1e-5, atol=1e-5)
  fy, fupd = BatchNorm(frozen=True).apply(v, x, use_running_average=False, mutable=["batch_stats"])
  np.testing.assert_allclose(fy, ey, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(fupd["batch_stats"]["var"], v["batch_stats"]["var"])
  # Field form like flax.linen.BatchNorm; bf16 input → bf16 output with float32 statistics.
  yb, updb = BatchNorm(use_running_average=False, dtype=jnp.bfloat16).apply(
      v, jnp.asarray(x, jnp.bfloat16), mutable=["batch_stats"])
  assert yb.dtype == jnp.bfloat16 and updb["batch_stats"]["var"].dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(yb, np.float32), ry, atol=0.1)


@pytest.mark.multidevice
@pytest.mark.slow
def test_batchnorm_train_gradient_matches_float64_autodiff_and_numpy(bn_variance):
  """batch_norm_train's hand-written backward (all three cotangents: y, μ, σ²) against jax autodiff of the plain
  formula in float64 and against the textbook BatchNorm input gradient in numpy; also sharded over 8 devices."""
  from jax.sharding import NamedSharding, PartitionSpec as P
  from ltjax.models.layers import batch_norm_train
  rng = np.random.default_rng(7)
  x = (rng.normal(size=(8, 5, 4, 6)) * rng.uniform(0.5, 3, 6) + rng.normal(size=6)).astype(np.float32)
  gamma, beta = rng.normal(size=6).astype(np.float32), rng.normal(size=6).astype(np.float32)
  cy = rng.normal(size=x.shape).astype(np.float32)
  cm, cv = rng.normal(size=6).astype(np.float32), rng.normal(size=6).astype(np.float32)

  def loss(bn):
    return lambda x, g, b: jnp.sum(bn(x, g, b)[0] * cy) + jnp.sum(bn(x, g, b)[1] * cm) + jnp.sum(bn(x, g, b)[2] * cv)

  def plain(x, g, b, eps=1e-5):
    m = jnp.mean(x, (0, 1, 2))
    v = jnp.mean(jnp.square(x - m), (0, 1, 2))
    return (x - m) / jnp.sqrt(v + eps) * g + b, m, v

  with jax.enable_x64():
    ref = jax.grad(loss(plain), argnums=(0, 1, 2))(*(np.asarray(a, np.float64) for a in (x, gamma, beta)))
  ours = jax.jit(jax.grad(loss(batch_norm_train), argnums=(0, 1, 2)))(x, gamma, beta)
  for a, b in zip(ours, ref):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  # Textbook input gradient for the y cotangent alone (μ̄ = σ̄² = 0), float64 numpy.
  xd, n = x.astype(np.float64), x.size // 6
  xhat = (xd - xd.mean((0, 1, 2))) / np.sqrt(xd.var((0, 1, 2)) + 1e-5)
  dx_ref = gamma / np.sqrt(xd.var((0, 1, 2)) + 1e-5) / n * (
      n * cy - cy.sum((0, 1, 2)) - xhat * (cy * xhat).sum((0, 1, 2)))
  _, vjp = jax.vjp(lambda x: batch_norm_train(x, gamma, beta)[0], x)
  np.testing.assert_allclose(vjp(jnp.asarray(cy))[0], dx_ref, rtol=1e-4, atol=1e-5)
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  xs = jax.device_put(x, NamedSharding(mesh, P("data")))
  sharded = jax.jit(jax.grad(loss(batch_norm_train), argnums=(0, 1, 2)))(xs, gamma, beta)
  for a, b in zip(sharded, ref):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_batchnorm_variance_formulas_against_float64(monkeypatch):
  """Both formulas give float64's σ² (and y) for activation-like channels (|μ| ≤ 10σ: one_pass within about 1e-5
  relative, two_pass 1e-8); far off-centre (|μ| = 1000σ) one_pass loses digits (measured 4e-3) and two_pass does not."""
  from ltjax.models.layers import batch_norm_train
  rng = np.random.default_rng(11)
  sd = np.array([1.0, 1.0, 0.5, 2.0, 1e-3, 1.0])
  mu = np.array([0.0, 1.0, 5.0, -20.0, 0.01, 1000.0])  # |μ|/σ = 0, 1, 10, 10, 10, 1000
  x = (rng.normal(size=(64, 8, 8, 6)) * sd + mu).astype(np.float32)
  xd = x.astype(np.float64)
  var = xd.var((0, 1, 2))
  one = np.ones(6, np.float32)
  rel = {}
  for formula in ("one_pass", "two_pass"):
    monkeypatch.setenv("LTJAX_BN_VARIANCE", formula)
    y, m, v = jax.jit(lambda *a: batch_norm_train(*a))(x, one, 0 * one)  # a fresh trace reads the variable
    rel[formula] = np.abs(np.asarray(v, np.float64) - var) / var
    np.testing.assert_allclose(m, xd.mean((0, 1, 2)), rtol=1e-6, atol=1e-6 * np.abs(mu).max())
    assert rel[formula][:5].max() < 5e-5, (formula, rel[formula])
    yref = (xd - xd.mean((0, 1, 2))) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(np.asarray(y)[..., :4], yref[..., :4], atol=2e-4)
  assert rel["two_pass"].max() < 1e-6 and 1e-4 < rel["one_pass"][5] < 0.1
  monkeypatch.setenv("LTJAX_BN_VARIANCE", "welford")
  with pytest.raises(ValueError, match="LTJAX_BN_VARIANCE='welford'.*one_pass, two_pass"):
    batch_norm_train(x, one, 0 * one)


def test_cosine_head_matches_numpy_and_handles_zero_features():
  head = CosineHead(5)
  f = np.random.default_rng(5).normal(size=(4, 16)).astype(np.float32)
  f[2] = 0.0
  f[3] *= 1e-14 / np.linalg.norm(f[3])  # ‖f‖ < 1e-12: F.normalize divides by 1e-12, giving norm 0.01
  v = head.init(jax.random.key(0), jnp.asarray(f))
  V = np.asarray(v["params"]["kernel"], np.float64)
  np.testing.assert_allclose(np.linalg.norm(V, axis=0), 1.0, rtol=1e-6)
  assert np.abs(V).max() <= 1.0
  # Non-unit columns at apply time are normalised too.
  V2 = V * np.arange(1, 6)
  z = np.asarray(head.apply({"params": {"kernel": jnp.asarray(V2, jnp.float32)}}, jnp.asarray(f)))
  fn = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
  Vn = V2 / np.maximum(np.linalg.norm(V2, axis=0, keepdims=True), 1e-12)
  np.testing.assert_allclose(z, fn @ Vn, rtol=1e-5, atol=1e-6)
  assert np.all(np.abs(z) <= 1 + 1e-6) and np.all(z[2] == 0.0) and np.abs(z[3]).max() > 1e-4
  g = jax.grad(lambda f: head.apply(v, f).sum())(jnp.asarray(f))
  assert np.all(np.isfinite(np.asarray(g)))


def test_linear_head_init_and_output():
  head = LinearHead(10)
  f = np.random.default_rng(6).normal(size=(3, 64)).astype(np.float32)
  v = head.init(jax.random.key(0), jnp.asarray(f))
  W, b = np.asarray(v["params"]["kernel"]), np.asarray(v["params"]["bias"])
  assert W.shape == (64, 10) and b.shape == (10,) and np.all(np.abs(b) <= 1 / 8)
  np.testing.assert_allclose(head.apply(v, jnp.asarray(f)), f @ W + b, rtol=1e-5, atol=1e-5)


def test_stride2_conv_uses_pytorch_padding():
  rng = np.random.default_rng(7)
  x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
  w = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
  conv = nn.Conv(4, (3, 3), strides=(2, 2), padding=PAD1, use_bias=False)
  y = np.asarray(conv.apply({"params": {"kernel": jnp.asarray(w)}}, jnp.asarray(x)))
  # numpy: zero-pad 1 on every side, output (i, j) reads the window starting at (2i, 2j) of the padded input.
  xp = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
  ref = np.zeros((2, 4, 4, 4))
  for i in range(4):
    for j in range(4):
      ref[:, i, j] = np.einsum("bhwc,hwco->bo", xp[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3], w)
  np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
  lax_ref = jax.lax.conv_general_dilated(jnp.asarray(x), jnp.asarray(w), (2, 2), ((1, 1), (1, 1)),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(y, np.asarray(lax_ref), rtol=1e-5, atol=1e-5)
  same = nn.Conv(4, (3, 3), strides=(2, 2), padding="SAME", use_bias=False)
  ys = np.asarray(same.apply({"params": {"kernel": jnp.asarray(w)}}, jnp.asarray(x)))
  assert not np.allclose(ys, ref, atol=1e-3)  # 'SAME' pads (0, 1): a different function
  # The model's convs really receive PAD1: a recording factory sees every call.
  seen = []

  def recording_conv(*args, **kw):
    seen.append((kw.get("strides"), kw.get("padding"), kw.get("use_bias")))
    return nn.Conv(*args, **kw)

  ResNetCifar(num_classes=2, depth=8, conv=recording_conv).init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  assert len(seen) == 7 and all(p == PAD1 and b is False for _, p, b in seen)
  assert sorted(s for s, _, _ in seen).count((2, 2)) == 2


@pytest.mark.slow
def test_bf16_forward_and_grad_under_jit():
  model = create_model("resnet8", 10, dtype="bfloat16", head="cosine")
  x = jax.random.normal(jax.random.key(8), (4, 8, 8, 3))
  v = model.init(jax.random.key(0), x)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(v))

  @jax.jit
  def loss_and_grad(params, stats, x):
    def loss(params):
      out, upd = model.apply({"params": params, "batch_stats": stats}, x, train=True, mutable=["batch_stats"])
      return jnp.mean(jax.nn.logsumexp(out["logits"], -1) - out["logits"][:, 0]), (out, upd)
    return jax.value_and_grad(loss, has_aux=True)(params)

  (l, (out, upd)), g = loss_and_grad(v["params"], v["batch_stats"], x)
  assert out["logits"].dtype == jnp.float32 and out["features"].dtype == jnp.float32
  assert all(t.dtype == jnp.float32 for t in jax.tree.leaves(g) + jax.tree.leaves(upd))
  assert np.isfinite(float(l)) and all(np.all(np.isfinite(np.asarray(t))) for t in jax.tree.leaves(g))
  assert float(jnp.abs(g["Conv_0"]["kernel"]).sum()) > 0
  # bf16 compute is close to, but not the same as, float32 compute.
  z16 = np.asarray(model.apply(v, x, train=False)["logits"])
  z32 = np.asarray(ResNetCifar(num_classes=10, depth=8, head="cosine").apply(v, x, train=False)["logits"])
  np.testing.assert_allclose(z16, z32, atol=0.05)
  assert not np.array_equal(z16, z32)
