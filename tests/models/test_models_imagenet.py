"""ImageNet ResNets (the official ResNets): torchvision parameter counts and paths, v1.5 strides, init, bf16, Places'
frozen trunk."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ltjax.models import MODELS, create_model
from ltjax.models.heads import ProjectionHead
from ltjax.models.resnet_imagenet import Bottleneck, pytorch_default_kernel


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _shapes(name, num_classes, size=64, **kw):
  model = create_model(name, num_classes, **kw)
  return jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, size, size, 3)))


@pytest.mark.parametrize("name,count", [("resnet50", 25_557_032), ("resnet152", 60_192_808),
                                        ("resnext50_32x4d", 25_028_904)])
def test_parameter_counts_equal_torchvision(name, count):
  v = _shapes(name, 1000)
  assert _count(v["params"]) == count
  # torchvision keys: 'conv1.weight', 'layer1.0.downsample.0.weight', 'fc.weight' ... → flax paths.
  p = v["params"]
  assert p["conv1"]["kernel"].shape == (7, 7, 3, 64)
  assert p["layer1_0"]["downsample_0"]["kernel"].shape == (1, 1, 64, 256)
  assert p["fc"]["kernel"].shape == (2048, 1000) and p["fc"]["bias"].shape == (1000,)
  assert "downsample_0" not in p["layer1_1"]
  width = 256 if name == "resnext50_32x4d" else 128  # layer2: ⌊128·4/64⌋·32 = 256 for 32×4d
  groups = 32 if name == "resnext50_32x4d" else 1
  assert p["layer2_0"]["conv2"]["kernel"].shape == (3, 3, width // groups, width)
  n_blocks = sum(1 for k in p if k.startswith("layer"))
  assert n_blocks == {"resnet50": 16, "resnet152": 50, "resnext50_32x4d": 16}[name]
  # Running statistics: mean + var for every BN channel (γ/β count the same channels).
  bn_channels = sum(int(np.prod(x.shape)) for path, x in jax.tree_util.tree_leaves_with_path(p)
                    if jax.tree_util.keystr(path).endswith("['scale']"))
  assert _count(v["batch_stats"]) == 2 * bn_channels


def test_places_model_counts_and_paths():
  v = _shapes("places_resnet152", 365)
  p = v["params"]
  assert "layer4_2" not in p and "layer4_1" in p and "block" in p  # trunk minus its last block + fresh block
  assert "downsample_0" not in p["block"] and p["block"]["conv1"]["kernel"].shape == (1, 1, 2048, 512)
  # = ResNet-152 − fc(1000) − layer4.2 + block (same shape as layer4.2) + fc(365).
  assert _count(p) == 60_192_808 - (2048 * 1000 + 1000) + (2048 * 365 + 365)
  v50 = _shapes("places_resnet50", 365)
  assert "layer4_2" not in v50["params"] and _count(v50["params"]) == 25_557_032 - 2_049_000 + 2048 * 365 + 365


@pytest.fixture(scope="module")
def r50():
  model = create_model("resnet50", 10)
  x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
  variables = model.init(jax.random.key(0), x)
  return model, variables, x


@pytest.mark.slow
def test_init_distributions(r50):
  _, v, _ = r50
  p = v["params"]
  k = np.asarray(p["layer3_0"]["conv2"]["kernel"])  # [3,3,256,256]: Kaiming normal, fan_out = 9·256
  assert abs(k.std() - np.sqrt(2 / (9 * 256))) < 0.02 * np.sqrt(2 / (9 * 256))
  assert abs(k.mean()) < 1e-3
  fc = np.asarray(p["fc"]["kernel"])  # PyTorch default Linear: U(±1/√2048)
  bound = 1 / np.sqrt(2048)
  assert np.abs(fc).max() <= bound and np.abs(fc).max() > 0.95 * bound
  assert abs(fc.std() - bound / np.sqrt(3)) < 0.05 * bound
  assert np.abs(np.asarray(p["fc"]["bias"])).max() <= bound
  for blk in ("layer1_0", "layer4_2"):  # no zero-init of the last BN γ
    np.testing.assert_array_equal(np.asarray(p[blk]["bn3"]["scale"]), 1.0)
    np.testing.assert_array_equal(np.asarray(p[blk]["bn3"]["bias"]), 0.0)
  np.testing.assert_array_equal(np.asarray(v["batch_stats"]["bn1"]["var"]), 1.0)


@pytest.mark.slow
def test_forward_backward_and_v15_strides(r50):
  model, v, x = r50

  def loss(params, bs):
    out, upd = model.apply({"params": params, "batch_stats": bs}, x, train=True, mutable=["batch_stats"])
    return jnp.sum(out["logits"] ** 2), (out, upd)

  grads, (out, upd) = jax.jit(jax.grad(loss, has_aux=True))(v["params"], v["batch_stats"])
  assert out["logits"].shape == (2, 10) and out["features"].shape == (2, 2048)
  assert out["logits"].dtype == jnp.float32
  assert np.isfinite(_tree_sq(grads)) and float(jnp.abs(grads["conv1"]["kernel"]).max()) > 0
  assert float(jnp.abs(upd["batch_stats"]["layer2_0"]["bn2"]["mean"]).max()) > 0  # running stats updated
  # v1.5: in layer2_0 the 1×1 conv1 keeps the 8×8 map (32 → stem /4), the 3×3 conv2 halves it.
  _, inter = model.apply(v, x, train=False, capture_intermediates=True)
  it = inter["intermediates"]["layer2_0"]
  assert it["conv1"]["__call__"][0].shape == (2, 8, 8, 128)
  assert it["conv2"]["__call__"][0].shape == (2, 4, 4, 128)
  assert it["downsample_0"]["__call__"][0].shape == (2, 4, 4, 512)


def _tree_sq(t):
  return float(sum(jnp.sum(jnp.square(a)) for a in jax.tree.leaves(t)))


@pytest.mark.slow
def test_bfloat16_compute_float32_parameters(r50):
  _, v, x = r50
  m16 = create_model("resnet50", 10, dtype="bfloat16")
  v16 = jax.eval_shape(m16.init, jax.random.key(0), x)
  assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(v16))
  out32 = create_model("resnet50", 10).apply(v, x, train=False)
  _, inter = m16.apply(v, x, train=False, capture_intermediates=True)
  out16 = m16.apply(v, x, train=False)
  assert inter["intermediates"]["layer1_0"]["conv2"]["__call__"][0].dtype == jnp.bfloat16
  assert out16["logits"].dtype == jnp.float32 and out16["features"].dtype == jnp.float32
  rel = float(jnp.linalg.norm(out16["features"] - out32["features"]) / jnp.linalg.norm(out32["features"]))
  assert rel < 0.05


def test_grouped_bottleneck_matches_per_group_convs():
  """ResNeXt's 3×3 conv with 32 groups = 32 independent convs over channel slices (kernel [3,3,in/g,out])."""
  blk = Bottleneck(64, stride=2, groups=32, base_width=4)  # width = ⌊64·4/64⌋·32 = 128
  x = jax.random.normal(jax.random.key(2), (2, 8, 8, 64))
  v = blk.init(jax.random.key(3), x)
  _, inter = blk.apply(v, x, capture_intermediates=True)
  y1 = jax.nn.relu(inter["intermediates"]["bn1"]["__call__"][0])
  got = inter["intermediates"]["conv2"]["__call__"][0]
  k = v["params"]["conv2"]["kernel"]
  assert k.shape == (3, 3, 4, 128)
  parts = [jax.lax.conv_general_dilated(y1[..., 4 * g:4 * g + 4], k[..., 4 * g:4 * g + 4], (2, 2),
                                        ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
           for g in range(32)]
  np.testing.assert_allclose(np.asarray(got), np.asarray(jnp.concatenate(parts, -1)), rtol=1e-5, atol=1e-5)


def test_projection_head_and_cosine():
  m = create_model("resnext50_32x4d", 5, head="cosine", projection=(32, 16))
  v = jax.eval_shape(m.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  assert set(v["params"]["fc"]) == {"kernel"} and v["params"]["fc"]["kernel"].shape == (2048, 5)
  assert v["params"]["proj"]["Dense_0"]["kernel"].shape == (2048, 32)
  assert v["params"]["proj"]["Dense_1"]["kernel"].shape == (32, 16)
  # The MLP: Dense → ReLU → Dense, PyTorch default init, against numpy.
  mlp = ProjectionHead((6, 3))
  f = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
  pv = mlp.init(jax.random.key(1), f)["params"]
  w0, b0 = np.asarray(pv["Dense_0"]["kernel"]), np.asarray(pv["Dense_0"]["bias"])
  w1, b1 = np.asarray(pv["Dense_1"]["kernel"]), np.asarray(pv["Dense_1"]["bias"])
  assert np.abs(w0).max() <= 1 / np.sqrt(5) and np.abs(w1).max() <= 1 / np.sqrt(6)
  ref = np.maximum(f @ w0 + b0, 0) @ w1 + b1
  np.testing.assert_allclose(np.asarray(mlp.apply({"params": pv}, f)), ref, rtol=1e-5, atol=1e-6)


def test_pytorch_default_kernel_bound():
  k = np.asarray(pytorch_default_kernel(jax.random.key(0), (3, 3, 16, 8)))
  bound = 1 / np.sqrt(9 * 16)
  assert np.abs(k).max() <= bound and np.abs(k).max() > 0.9 * bound


@pytest.mark.slow
def test_places_trunk_is_frozen():
  """Trunk: eval-mode BN (statistics never updated) and no gradient; block + fc train (block BN in train mode)."""
  model = MODELS["places_resnet50"](num_classes=4)
  x = jax.random.normal(jax.random.key(4), (2, 32, 32, 3))
  v = model.init(jax.random.key(0), x)

  def loss(params, bs):
    out, upd = model.apply({"params": params, "batch_stats": bs}, x, train=True, mutable=["batch_stats"])
    return jnp.sum(out["logits"] ** 2), upd

  g, upd = jax.jit(jax.grad(loss, has_aux=True))(v["params"], v["batch_stats"])
  trunk = [k for k in g if k not in ("block", "fc")]
  assert trunk and all(_tree_sq(g[k]) == 0.0 for k in trunk)
  assert _tree_sq(g["block"]) > 0 and _tree_sq(g["fc"]) > 0
  for k in trunk:
    if k in v["batch_stats"]:
      jax.tree.map(np.testing.assert_array_equal, upd["batch_stats"][k], v["batch_stats"][k])
  assert float(jnp.abs(upd["batch_stats"]["block"]["bn1"]["mean"] - v["batch_stats"]["block"]["bn1"]["mean"]).max()) > 0
  # The fresh block uses PyTorch's default conv init U(±1/√fan_in).
  assert float(jnp.abs(v["params"]["block"]["conv1"]["kernel"]).max()) <= 1 / np.sqrt(2048)


def test_unknown_depth_is_an_error():
  with pytest.raises(ValueError, match="depth"):
    MODELS["resnet50"](num_classes=3, depth=34).init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
