"""MoCo v2 aug-plus views (ltjax/data/contrastive_views.py) against numpy ports of torchvision's semantics."""

import colorsys
import math

import numpy as np
import pytest

pytestmark = pytest.mark.tensorflow
tf = pytest.importorskip("tensorflow")

from ltjax.data import contrastive_views as am  # noqa: E402


def tv_box(u, H, W, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)):
  """torchvision RandomResizedCrop.get_params with its draws replaced by u [22] (rrc_window's layout: 10 area
  draws, 10 log-ratio draws, then the top and left draws of the accepted attempt)."""
  for t in range(10):
    area = H * W * (scale[0] + (scale[1] - scale[0]) * u[t])
    ar = math.exp(math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[10 + t])
    w, h = int(round(math.sqrt(area * ar))), int(round(math.sqrt(area / ar)))
    if 0 < w <= W and 0 < h <= H:
      return int(math.floor(u[20] * (H - h + 1))), int(math.floor(u[21] * (W - w + 1))), h, w
  r = W / H
  if r < ratio[0]:
    w, h = W, int(round(W / ratio[0]))
  elif r > ratio[1]:
    h, w = H, int(round(H * ratio[1]))
  else:
    w, h = W, H
  return (H - h) // 2, (W - w) // 2, h, w


@pytest.mark.parametrize("H,W", [(32, 32), (20, 44), (50, 24)])
def test_random_resized_crop_cuts_torchvision_box(H, W):
  rng = np.random.default_rng(H)
  img = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
  for s in range(20):
    seed = tf.constant([s, 3], tf.int64)
    u = tf.random.stateless_uniform([22], seed).numpy().astype(np.float64)
    i, j, h, w = tv_box(u, H, W)
    ref = tf.image.resize(img[i:i + h, j:j + w].astype(np.float32), [16, 16], method="bilinear", antialias=True)
    ref = np.clip(np.round(ref.numpy()), 0, 255).astype(np.uint8)
    got = am.random_resized_crop(tf.constant(img), seed, 16).numpy()
    np.testing.assert_array_equal(got, ref)


def np_jitter(x, fb, fc, fs, fh, order):
  def gray(v):
    return (v * np.array([0.299, 0.587, 0.114])).sum(-1, keepdims=True)

  def hue(v):
    out = np.empty_like(v)
    for a in range(v.shape[0]):
      for b in range(v.shape[1]):
        h, s, val = colorsys.rgb_to_hsv(*v[a, b])
        out[a, b] = colorsys.hsv_to_rgb((h + fh) % 1.0, s, val)
    return out

  ops = [lambda v: np.clip(fb * v, 0, 1), lambda v: np.clip(fc * v + (1 - fc) * gray(v).mean(), 0, 1),
         lambda v: np.clip(fs * v + (1 - fs) * gray(v), 0, 1), lambda v: np.clip(hue(v), 0, 1)]
  for k in order:
    x = ops[k](x)
  return x


def test_color_jitter_matches_torchvision_formulas():
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(6, 5, 3)).astype(np.float32)
  for s in range(8):
    seed = tf.constant([s, 11], tf.int64)
    u = tf.random.stateless_uniform([8], seed).numpy().astype(np.float64)
    fb, fc, fs = 0.6 + 0.8 * u[0], 0.6 + 0.8 * u[1], 0.6 + 0.8 * u[2]
    fh = -0.1 + 0.2 * u[3]
    order = np.argsort(u[4:8], kind="stable")
    got = am.color_jitter(tf.constant(x), seed).numpy()
    np.testing.assert_allclose(got, np_jitter(x.astype(np.float64), fb, fc, fs, fh, order), atol=2e-5)


def test_gaussian_blur_is_a_normalised_gaussian_with_replicated_borders():
  rng = np.random.default_rng(1)
  x = rng.uniform(size=(9, 7, 1)).astype(np.float32)
  sigma = 1.3
  r = 6
  t = np.arange(-r, r + 1)
  w = np.exp(-t ** 2 / (2 * sigma ** 2))
  w /= w.sum()
  ref = x.astype(np.float64)
  for axis in (0, 1):
    n = ref.shape[axis]
    ref = sum(w[k] * np.take(ref, np.clip(np.arange(n) + t[k], 0, n - 1), axis=axis) for k in range(2 * r + 1))
  got = am.gaussian_blur(tf.constant(x), tf.constant(sigma), 2.0).numpy()
  np.testing.assert_allclose(got, ref, atol=1e-6)


@pytest.mark.slow
def test_two_views_are_deterministic_independent_and_apply_each_op_with_its_probability():
  rng = np.random.default_rng(2)
  img = tf.constant(rng.integers(0, 256, size=(24, 24, 3), dtype=np.uint8))
  fn = tf.function(am.moco_two_views(size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)))
  a = fn(img, tf.constant([1, 2], tf.int64))
  b = fn(img, tf.constant([1, 2], tf.int64))
  assert a["image"].shape == (16, 16, 3) and a["image"].dtype == tf.float32
  np.testing.assert_array_equal(a["image"].numpy(), b["image"].numpy())
  assert not np.allclose(a["image"].numpy(), a["image_k"].numpy())
  n, gray = 300, 0
  for s in range(n):
    v = fn(img, tf.constant([s, 9], tf.int64))["image"].numpy()
    gray += np.allclose(v[..., 0], v[..., 1], atol=1e-5) and np.allclose(v[..., 1], v[..., 2], atol=1e-5)
  assert abs(gray / n - 0.2) < 0.07  # RandomGrayscale(p=0.2)
  # one-channel images: no saturation/hue/grayscale, same shape out
  one = tf.function(am.moco_two_views(size=8, mean=(0.3,), std=(0.4,)))
  out = one(tf.constant(rng.integers(0, 17, size=(8, 8, 1), dtype=np.uint8)), tf.constant([0, 0], tf.int64))
  assert out["image_k"].shape == (8, 8, 1)
