"""torchvision → ltjax conversion on a fake state_dict with torchvision's key names and shapes (no torch needed)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ltjax.models import create_model
from ltjax.models.convert import ConversionError, torchvision_to_flax
from ltjax.train import pretrained


def fake_torchvision_resnet(blocks=(3, 4, 6, 3), groups=1, width_per_group=64, num_classes=1000, seed=0):
  """The state_dict of torchvision.models.resnet.ResNet(Bottleneck, blocks, …), written from torchvision's source:
  keys in its order, shapes [O, I/g, kh, kw] for convs, five BN tensors (num_batches_tracked included)."""
  rng = np.random.default_rng(seed)
  sd = {}

  def conv(name, o, i, k):
    sd[f"{name}.weight"] = rng.normal(size=(o, i, k, k)).astype(np.float32)

  def bn(name, c):
    sd[f"{name}.weight"] = rng.normal(size=c).astype(np.float32)
    sd[f"{name}.bias"] = rng.normal(size=c).astype(np.float32)
    sd[f"{name}.running_mean"] = rng.normal(size=c).astype(np.float32)
    sd[f"{name}.running_var"] = rng.random(c).astype(np.float32) + 0.5
    sd[f"{name}.num_batches_tracked"] = np.array(7, np.int64)

  conv("conv1", 64, 3, 7)
  bn("bn1", 64)
  inplanes = 64
  for li, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks), 1):
    for b in range(n):
      width = int(planes * (width_per_group / 64.0)) * groups
      p = f"layer{li}.{b}"
      conv(f"{p}.conv1", width, inplanes, 1)
      bn(f"{p}.bn1", width)
      conv(f"{p}.conv2", width, width // groups, 3)
      bn(f"{p}.bn2", width)
      conv(f"{p}.conv3", planes * 4, width, 1)
      bn(f"{p}.bn3", planes * 4)
      if b == 0:
        conv(f"{p}.downsample.0", planes * 4, inplanes, 1)
        bn(f"{p}.downsample.1", planes * 4)
      inplanes = planes * 4
  sd["fc.weight"] = rng.normal(size=(num_classes, 2048)).astype(np.float32)
  sd["fc.bias"] = rng.normal(size=num_classes).astype(np.float32)
  return sd


def _fresh(name, num_classes=1000):
  shapes = jax.eval_shape(create_model(name, num_classes).init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), dict(shapes))


@pytest.mark.parametrize("name,kw", [("resnet50", {}), ("resnext50_32x4d", {"groups": 32, "width_per_group": 4})])
def test_converted_state_dict_fills_every_leaf(name, kw):
  sd = fake_torchvision_resnet(**kw)
  assert len(sd) == 320  # torchvision resnet50 / resnext50_32x4d state_dict size
  flat = torchvision_to_flax(sd)
  assert len(flat) == 320 - 53  # num_batches_tracked of the 53 BNs dropped
  merged, report = pretrained.merge(_fresh(name), pretrained._unflatten(flat), exclude=(), strict=True)
  assert report == {"copied": len(flat), "fresh": 0}
  p, bs = merged["params"], merged["batch_stats"]
  o, i, y, x = 5, 3, 2, 1
  assert p["layer2_0"]["conv2"]["kernel"][y, x, i, o] == sd["layer2.0.conv2.weight"][o, i, y, x]
  np.testing.assert_array_equal(p["layer3_0"]["downsample_0"]["kernel"][0, 0], sd["layer3.0.downsample.0.weight"][:, :, 0, 0].T)
  np.testing.assert_array_equal(p["fc"]["kernel"], sd["fc.weight"].T)
  np.testing.assert_array_equal(p["bn1"]["scale"], sd["bn1.weight"])
  np.testing.assert_array_equal(bs["layer4_2"]["bn3"]["var"], sd["layer4.2.bn3.running_var"])
  np.testing.assert_array_equal(bs["layer1_0"]["downsample_1"]["mean"], sd["layer1.0.downsample.1.running_mean"])


def test_converted_conv_computes_torch_conv():
  """The HWIO transpose keeps PyTorch's cross-correlation: stem conv of the converted weights vs a numpy NCHW conv."""
  sd = fake_torchvision_resnet(blocks=(1, 1, 1, 1))
  k = torchvision_to_flax(sd)["params/conv1/kernel"]
  w = sd["conv1.weight"]  # [64, 3, 7, 7]
  x = np.random.default_rng(1).normal(size=(1, 3, 9, 9)).astype(np.float32)
  xp = np.pad(x, ((0, 0), (0, 0), (3, 3), (3, 3)))
  ref = np.zeros((1, 64, 5, 5), np.float32)
  for a in range(5):
    for b in range(5):
      ref[0, :, a, b] = np.einsum("oikl,ikl->o", w, xp[0, :, 2 * a:2 * a + 7, 2 * b:2 * b + 7])
  got = jax.lax.conv_general_dilated(jnp.asarray(x.transpose(0, 2, 3, 1)), jnp.asarray(k), (2, 2), ((3, 3), (3, 3)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_places_model_loads_a_converted_resnet152(tmp_path):
  """Places-LT: the ImageNet R-152 checkpoint fills the trunk (its layer4.2 and 1000-way fc are ignored / excluded),
  the fresh block and the 365-way head keep their init — via the real init.workdir .npz path."""
  sd = fake_torchvision_resnet(blocks=(3, 8, 36, 3))
  path = tmp_path / "r152.npz"
  np.savez(path, **torchvision_to_flax(sd))
  loaded = pretrained.load_variables(str(path))
  fresh = _fresh("places_resnet152", 365)
  merged, report = pretrained.merge(fresh, loaded, exclude=("^fc/", "^block/"), strict=True)
  np.testing.assert_array_equal(merged["params"]["layer4_1"]["conv3"]["kernel"][0, 0],
                                sd["layer4.1.conv3.weight"][:, :, 0, 0].T)
  assert "layer4_2" not in merged["params"]
  np.testing.assert_array_equal(merged["params"]["block"]["conv1"]["kernel"], fresh["params"]["block"]["conv1"]["kernel"])
  assert report["fresh"] == len(pretrained._flatten(fresh["params"]["block"])) + 2 + len(
      pretrained._flatten(fresh["batch_stats"]["block"]))


def test_prefixes_and_bad_keys():
  sd = {f"module.encoder_q.{k}": v for k, v in fake_torchvision_resnet(blocks=(1, 1, 1, 1)).items()}
  sd["module.queue"] = np.zeros((128, 4))
  del sd["module.encoder_q.fc.weight"], sd["module.encoder_q.fc.bias"]
  rng = np.random.default_rng(3)  # MoCo v2: fc = Linear(2048, 2048) → ReLU → Linear(2048, 128)
  mlp = {"fc.0.weight": rng.normal(size=(16, 2048)), "fc.0.bias": rng.normal(size=16),
         "fc.2.weight": rng.normal(size=(8, 16)), "fc.2.bias": rng.normal(size=8)}
  sd.update({f"module.encoder_q.{k}": v for k, v in mlp.items()})
  flat = torchvision_to_flax(sd, strip_prefix="module.encoder_q.")
  assert "params/layer1_0/conv1/kernel" in flat and not any(k.startswith("params/fc") for k in flat)
  np.testing.assert_allclose(flat["params/proj/Dense_1/kernel"], mlp["fc.2.weight"].T.astype(np.float32))
  np.testing.assert_allclose(flat["params/proj/Dense_0/bias"], mlp["fc.0.bias"].astype(np.float32))
  with pytest.raises(ConversionError, match="strip_prefix"):
    torchvision_to_flax(sd)
  with pytest.raises(ConversionError, match="matched nothing"):
    torchvision_to_flax(sd, strip_prefix="encoder_k.")
