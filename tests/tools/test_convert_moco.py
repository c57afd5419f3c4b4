"""The MoCo `.pth.tar` converter maps every key of a torchvision ResNet-50 MoCo state dict (a fake dict of numpy
arrays with the official key names and shapes) onto the ltjax parameter tree."""

import jax
import numpy as np
import pytest

from ltjax.models import MODELS, create_model
from ltjax.models.convert import ConversionError
from ltjax.tools import convert_moco


def fake_moco_resnet50(rng=None, dtype=np.float32):
  """torchvision resnet50 key names/shapes under module.encoder_q. and module.encoder_k., MLP fc.0/fc.2, queue."""
  sd = {}

  def bn(p, c):
    sd[p + ".weight"] = np.ones(c, dtype)
    sd[p + ".bias"] = np.zeros(c, dtype)
    sd[p + ".running_mean"] = np.zeros(c, dtype)
    sd[p + ".running_var"] = np.ones(c, dtype)
    sd[p + ".num_batches_tracked"] = np.array(7, np.int64)

  def conv(p, o, i, k):
    sd[p + ".weight"] = np.zeros((o, i, k, k), dtype)

  conv("conv1", 64, 3, 7)
  bn("bn1", 64)
  inp = 64
  for L, (planes, n) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=1):
    for b in range(n):
      p = f"layer{L}.{b}"
      conv(p + ".conv1", planes, inp, 1)
      bn(p + ".bn1", planes)
      conv(p + ".conv2", planes, planes, 3)
      bn(p + ".bn2", planes)
      conv(p + ".conv3", 4 * planes, planes, 1)
      bn(p + ".bn3", 4 * planes)
      if b == 0:
        conv(p + ".downsample.0", 4 * planes, inp, 1)
        bn(p + ".downsample.1", 4 * planes)
      inp = 4 * planes
  sd["fc.0.weight"] = np.zeros((2048, 2048), dtype)
  sd["fc.0.bias"] = np.zeros(2048, dtype)
  sd["fc.2.weight"] = np.zeros((128, 2048), dtype)
  sd["fc.2.bias"] = np.zeros(128, dtype)
  full = {}
  for k, v in sd.items():
    full["module.encoder_q." + k] = v
    full["module.encoder_k." + k] = v
  full["module.queue"] = np.zeros((128, 16), dtype)
  full["module.queue_ptr"] = np.zeros(1, np.int64)
  return full, sd


def test_every_key_maps_with_the_right_layout():
  full, sd = fake_moco_resnet50()
  rng = np.random.default_rng(0)
  w = rng.normal(size=(64, 3, 7, 7)).astype(np.float32)
  full["module.encoder_q.conv1.weight"] = w
  full["module.encoder_q.layer2.0.downsample.1.running_var"] = np.arange(512, dtype=np.float32)
  full["module.encoder_q.fc.2.weight"] = rng.normal(size=(128, 2048)).astype(np.float32)
  out = convert_moco.convert_state_dict(full)
  # every encoder_q entry except fc and num_batches_tracked has exactly one ltjax key
  expected = [k for k in sd if not k.startswith("fc.") and not k.endswith("num_batches_tracked")]
  assert len(out) == len(expected) == 265  # 53 convs + 53 BNs × 4 (torchvision: 320 keys with fc and the 53 counters)
  assert not any("proj" in k or k.startswith("params/fc") for k in out)
  np.testing.assert_array_equal(out["params/conv1/kernel"], w.transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(out["batch_stats/layer2_0/downsample_1/var"], np.arange(512))
  assert out["params/layer3_5/conv2/kernel"].shape == (3, 3, 256, 256)
  assert out["params/layer4_2/bn3/scale"].shape == (2048,)
  assert out["batch_stats/bn1/mean"].shape == (64,)
  with_proj = convert_moco.convert_state_dict(full, keep_projection=True)
  assert len(with_proj) == 269
  np.testing.assert_array_equal(with_proj["params/proj/Dense_1/kernel"], full["module.encoder_q.fc.2.weight"].T)
  assert with_proj["params/proj/Dense_0/bias"].shape == (2048,)


@pytest.mark.skipif("resnet50" not in MODELS, reason="model 'resnet50' (large helper) is not in the registry")
def test_converted_tree_equals_the_ltjax_resnet50_tree(tmp_path):
  full, _ = fake_moco_resnet50()
  out = convert_moco.convert_state_dict(full, keep_projection=True)
  model = create_model("resnet50", 1000, projection=(2048, 128))
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), np.zeros((1, 64, 64, 3), np.float32)))
  flat = {"/".join(str(getattr(k, "key", k)) for k in path): v.shape
          for path, v in jax.tree_util.tree_flatten_with_path(dict(shapes))[0]}
  flat = {k: v for k, v in flat.items() if not k.startswith("params/fc/")}
  assert set(out) == set(flat)
  for k, v in out.items():
    assert v.shape == flat[k], k


def test_bad_inputs_are_named():
  with pytest.raises(ConversionError, match="no state-dict key starts with 'module.encoder_q.'"):
    convert_moco.convert_state_dict({"conv1.weight": np.zeros((1, 1, 1, 1))})
  with pytest.raises(ConversionError, match="'odd.thing' is not part of a torchvision ResNet"):
    convert_moco.convert_state_dict({"module.encoder_q.odd.thing": np.zeros(3)})


def test_npz_initialises_a_resnet_through_init_workdir(tmp_path):
  """The converted file is what `init.workdir` reads: load it with the trainer's loader (a CIFAR-size check of the
  layout on the real ResNet-50 is above; here the loader's path handling)."""
  from ltjax.train import pretrained
  full, _ = fake_moco_resnet50()
  arrays = convert_moco.convert_state_dict(full)
  path = tmp_path / "moco.npz"
  np.savez(path, **arrays)
  v = pretrained.load_variables(str(path), "last")
  assert v["params"]["layer4_2"]["conv3"]["kernel"].shape == (1, 1, 512, 2048)
  assert v["batch_stats"]["layer1_0"]["downsample_1"]["mean"].shape == (256,)
