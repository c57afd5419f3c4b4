"""SBCL stage-1 view augmentation (SBCL's CIFAR transforms) against numpy ports of torchvision's semantics.
(The RandomResizedCrop window itself, `augment.rrc_window`, is tested against torchvision's loop elsewhere.)"""

import colorsys

import numpy as np
import pytest

pytestmark = pytest.mark.tensorflow
tf = pytest.importorskip("tensorflow")

from ltjax.data import augment, contrastive_views  # noqa: E402


def test_random_resized_crop_full_box_is_identity_and_seeded():
  img = np.random.default_rng(1).integers(0, 256, (16, 16, 3)).astype(np.uint8)
  out = augment.random_resized_crop(tf.constant(img), tf.constant([0, 1], tf.int64), 16, scale=(1.0, 1.0),
                                    ratio=(1.0, 1.0))
  np.testing.assert_array_equal(out.numpy(), img)
  a = augment.random_resized_crop(tf.constant(img), tf.constant([3, 4], tf.int64), 32)
  b = augment.random_resized_crop(tf.constant(img), tf.constant([3, 4], tf.int64), 32)
  assert a.shape == (32, 32, 3) and a.dtype == tf.uint8
  np.testing.assert_array_equal(a.numpy(), b.numpy())


def _np_gray(x):
  return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]  # PIL convert('L')


def _np_jitter(x, fb, fc, fs, fh, order):
  x = x.astype(np.float64)
  for k in order:
    if k == 0:
      x = np.clip(fb * x, 0, 1)
    elif k == 1:
      x = np.clip(fc * x + (1 - fc) * _np_gray(x).mean(), 0, 1)
    elif k == 2:
      x = np.clip(fs * x + (1 - fs) * _np_gray(x)[..., None], 0, 1)
    else:
      flat = x.reshape(-1, 3)
      out = []
      for r, g, b in flat:
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        out.append(colorsys.hsv_to_rgb((h + fh) % 1.0, s, v))
      x = np.clip(np.asarray(out).reshape(x.shape), 0, 1)
  return x


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (2, 0, 3, 1), (1, 3, 0, 2)])
def test_jitter_operations_match_torchvision_formulas(order):
  rng = np.random.default_rng(2)
  x = rng.uniform(size=(6, 5, 3)).astype(np.float32)
  fb, fc, fs, fh = 1.3, 0.7, 1.35, -0.08
  got = augment.apply_color_jitter(tf.constant(x), tf.constant([fb, fc, fs, fh]), tf.constant(order),
                                   [0, 1, 2, 3]).numpy()
  np.testing.assert_allclose(got, _np_jitter(x, fb, fc, fs, fh, order), atol=2e-5)
  # One-channel images: saturation and hue are identities.
  g = x[..., :1]
  got1 = augment.apply_color_jitter(tf.constant(g), tf.constant([fb, fc, 0.1, 0.3]), tf.constant(order),
                                    [0, 1, 2, 3]).numpy()
  ref1 = g.astype(np.float64)
  for k in order:
    if k == 0:
      ref1 = np.clip(fb * ref1, 0, 1)
    elif k == 1:
      ref1 = np.clip(fc * ref1 + (1 - fc) * ref1.mean(), 0, 1)
  np.testing.assert_allclose(got1, ref1, atol=1e-6)


def test_color_jitter_factor_ranges_and_order_is_a_permutation():
  """Recover b from a brightness-only probe: ColorJitter(0.4, 0, 0, 0) scales a mid-grey image by U(0.6, 1.4)."""
  x = tf.fill([2, 2, 3], 0.5)
  bs = [float(augment.color_jitter(x, tf.constant([7, s], tf.int64), 0.4, 0.0, 0.0, 0.0)[0, 0, 0]) / 0.5
        for s in range(200)]
  assert 0.6 <= min(bs) < 0.65 and 1.35 < max(bs) <= 1.4


def test_simclr_view_pipeline():
  img = np.random.default_rng(3).integers(0, 256, (32, 32, 3)).astype(np.uint8)
  mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
  f = tf.function(lambda s: contrastive_views.simclr_view(tf.constant(img), s, size=32, mean=mean, std=std))
  v = [f(tf.constant([0, s], tf.int64)).numpy() for s in range(40)]
  assert v[0].shape == (32, 32, 3) and v[0].dtype == np.float32
  np.testing.assert_array_equal(v[0], f(tf.constant([0, 0], tf.int64)).numpy())  # a function of the seed
  for s in range(3):  # graph mode (tf.data, tf.function) = eager: static channel count kept through the crop
    eager = contrastive_views.simclr_view(tf.constant(img), tf.constant([0, s], tf.int64), size=32, mean=mean, std=std)
    np.testing.assert_allclose(v[s], eager.numpy(), atol=1e-5)
  assert np.abs(v[0] - v[1]).max() > 0.1
  # Grayscale views (3 equal channels) appear at about the p = 0.2 rate (loose bounds for 40 draws); pixels stay
  # in [0, 1] before normalisation.
  raw = [x * np.asarray(std) + np.asarray(mean) for x in v]
  gray = [np.allclose(r[..., 0], r[..., 1], atol=1e-5) and np.allclose(r[..., 1], r[..., 2], atol=1e-5) for r in raw]
  assert 1 <= sum(gray) <= 20
  assert all(r.min() > -1e-5 and r.max() < 1 + 1e-5 for r in raw)
  # One-channel input (digits): shape kept, no flip when asked.
  g = np.random.default_rng(4).integers(0, 256, (8, 8, 1)).astype(np.uint8)
  out = contrastive_views.simclr_view(tf.constant(g), tf.constant([1, 2], tf.int64), size=8, mean=(0.3,), std=(0.37,),
                            flip=False)
  assert out.shape == (8, 8, 1)
