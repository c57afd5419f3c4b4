"""RECORDS weak/strong views (RECORDS' transforms): every RandomAugment op against PIL itself, Cutout, the resized crop,
determinism by seed."""

import numpy as np
import pytest

pytestmark = pytest.mark.tensorflow
tf = pytest.importorskip("tensorflow")
PIL = pytest.importorskip("PIL")
from PIL import Image, ImageEnhance, ImageOps  # noqa: E402

from ltjax.data import augment  # noqa: E402
from ltjax.data import randaugment as ra  # noqa: E402


def _img(seed, h=32, w=32):
  r = np.random.RandomState(seed)
  # smooth-ish content so that the histogram ops see a real image, plus noise
  base = np.linspace(0, 200, w)[None, :, None] + np.linspace(0, 50, h)[:, None, None]
  x = base + r.randint(0, 56, (h, w, 3))
  return np.clip(x, 0, 255).astype(np.uint8)


def _tf_op(x, name, v):
  op = [o[0] for o in ra.RANDAUGMENT_OPS].index(name)
  return ra._randaugment_op(tf.constant(x), tf.constant(op), tf.constant(float(v), tf.float32)).numpy()


PIL_OPS = {
    "AutoContrast": lambda im, v: ImageOps.autocontrast(im),
    "Equalize": lambda im, v: ImageOps.equalize(im),
    "Identity": lambda im, v: im,
    "Posterize": lambda im, v: ImageOps.posterize(im, int(v)),
    "Solarize": lambda im, v: ImageOps.solarize(im, v),
    "Brightness": lambda im, v: ImageEnhance.Brightness(im).enhance(v),
    "Color": lambda im, v: ImageEnhance.Color(im).enhance(v),
    "Contrast": lambda im, v: ImageEnhance.Contrast(im).enhance(v),
    "ShearX": lambda im, v: im.transform(im.size, Image.AFFINE, (1, v, 0, 0, 1, 0)),
    "ShearY": lambda im, v: im.transform(im.size, Image.AFFINE, (1, 0, 0, v, 1, 0)),
    "TranslateX": lambda im, v: im.transform(im.size, Image.AFFINE, (1, 0, v * im.size[0], 0, 1, 0)),
    "TranslateY": lambda im, v: im.transform(im.size, Image.AFFINE, (1, 0, 0, 0, 1, v * im.size[1])),
    "Rotate": lambda im, v: im.rotate(v),
    "Sharpness": lambda im, v: ImageEnhance.Sharpness(im).enhance(v),
}
CASES = [("AutoContrast", 0), ("Equalize", 0), ("Identity", 0), ("Posterize", 4.7), ("Posterize", 7.2),
         ("Solarize", 97.3), ("Brightness", 0.31), ("Color", 0.12), ("Color", 0.88), ("Contrast", 0.27),
         ("ShearX", 0.23), ("ShearX", -0.17), ("ShearY", 0.29), ("TranslateX", -0.21), ("TranslateY", 0.26),
         ("Rotate", 17.0), ("Rotate", -28.5), ("Sharpness", 0.4)]


@pytest.mark.parametrize("name,v", CASES)
def test_randaugment_op_matches_pil(name, v):
  x = _img(1)
  ref = np.asarray(PIL_OPS[name](Image.fromarray(x), v))
  got = _tf_op(x, name, v)
  assert got.shape == x.shape and got.dtype == np.uint8
  diff = np.abs(got.astype(int) - ref.astype(int))
  if name == "Rotate":  # nearest sampling: coordinates that land within float error of a pixel edge may differ
    assert (diff.max(-1) > 0).mean() < 0.02, (diff.max(-1) > 0).mean()
  elif name == "Sharpness":  # PIL rounds the smoothed image in fixed point
    assert diff.max() <= 1
  else:
    np.testing.assert_array_equal(got, ref)


def test_autocontrast_and_equalize_on_flat_channels():
  x = np.full((8, 8, 3), 77, np.uint8)
  np.testing.assert_array_equal(_tf_op(x, "AutoContrast", 0), np.asarray(ImageOps.autocontrast(Image.fromarray(x))))
  np.testing.assert_array_equal(_tf_op(x, "Equalize", 0), np.asarray(ImageOps.equalize(Image.fromarray(x))))


def test_luma_is_pil_convert_l():
  x = _img(2)
  np.testing.assert_array_equal(augment.pil_luma(tf.constant(x)).numpy(), np.asarray(Image.fromarray(x).convert("L")))


PIL_JITTER = [lambda im, f: ImageEnhance.Brightness(im).enhance(f), lambda im, f: ImageEnhance.Contrast(im).enhance(f),
              lambda im, f: ImageEnhance.Color(im).enhance(f)]


def _ref_hue(x, fh):
  """The documented uint8 hue: tf.image.adjust_hue on x/255, rounded back to uint8."""
  h = tf.image.adjust_hue(tf.constant(x, tf.float32) / 255.0, fh).numpy()
  return np.clip(np.round(h * 255.0), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1), (1, 2, 0), (0, 1, 2, 3), (3, 2, 1, 0), (2, 3, 0, 1),
                                   (1, 0, 3, 2)])
def test_uint8_color_jitter_is_pil_enhance_in_order(order):
  """The shared ColorJitter on uint8 images (the RECORDS weak view) = PIL's ImageEnhance ops applied in `order`,
  pixel for pixel (hue: the documented adjust_hue + rounding, at its position in the order)."""
  x = _img(11)
  f = [1.31, 0.66, 1.22, -0.07]
  active = sorted(order)
  got = augment.apply_color_jitter(tf.constant(x), tf.constant(f[:len(order)]), tf.constant(order), active).numpy()
  ref = x
  for k in order:
    ref = _ref_hue(ref, f[3]) if k == 3 else np.asarray(PIL_JITTER[k](Image.fromarray(ref), f[k]))
  assert got.dtype == np.uint8
  np.testing.assert_array_equal(got, ref)


def test_uint8_hue_within_a_level_of_hsv_rotation():
  import colorsys
  x = _img(12, 8, 8)
  got = augment.apply_color_jitter(tf.constant(x), tf.constant([1.0, 1.0, 1.0, 0.09]), tf.constant([0]), [3]).numpy()
  ref = np.array([[colorsys.hsv_to_rgb((colorsys.rgb_to_hsv(*(p / 255.0))[0] + 0.09) % 1.0,
                                       *colorsys.rgb_to_hsv(*(p / 255.0))[1:]) for p in row] for row in x]) * 255
  assert np.abs(got - ref).max() <= 1.0


def test_grayscale_uint8_is_pil_convert_l_replicated():
  x = _img(13)
  g = augment.grayscale(tf.constant(x)).numpy()
  assert g.dtype == np.uint8 and g.shape == x.shape
  np.testing.assert_array_equal(g, np.asarray(Image.fromarray(x).convert("L").convert("RGB")))


def test_cutout_box_and_fill():
  x = _img(3)
  sizes = []
  for s in range(60):
    out = ra.cutout(tf.constant(x), tf.constant([s, 7], tf.int64)).numpy()
    box = np.all(out == np.array(ra.CUTOUT_FILL, np.uint8), -1) & np.any(out != x, -1)
    if box.any():
      ys, xs = np.nonzero(box)
      assert ys.max() - ys.min() == xs.max() - xs.min() or ys.min() == 0 or xs.min() == 0 or \
          ys.max() == 31 or xs.max() == 31  # square unless clipped at a border
      sizes.append(xs.max() - xs.min() + 1)
    np.testing.assert_array_equal(out[~box], x[~box])
  assert sizes and max(sizes) <= 17  # side ≤ 0.5·32 (+1 for the inclusive corner)


def test_resized_crop_identity_and_range():
  x = _img(4)
  same = augment.random_resized_crop(tf.constant(x), tf.constant([1, 2], tf.int64), 32, scale=(1.0, 1.0),
                                ratio=(1.0, 1.0)).numpy()
  np.testing.assert_array_equal(same, x)
  out = augment.random_resized_crop(tf.constant(x), tf.constant([3, 4], tf.int64), 32).numpy()
  assert out.shape == (32, 32, 3) and out.dtype == np.uint8


def test_views_deterministic_by_seed_and_normalised():
  fn = ra.weak_strong((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), size=32)
  x = tf.constant(_img(5))
  a = fn(x, tf.constant([9, 1], tf.int64))
  b = fn(x, tf.constant([9, 1], tf.int64))
  c = fn(x, tf.constant([9, 2], tf.int64))
  for k in ("image", "image_strong"):
    assert a[k].shape == (32, 32, 3) and a[k].dtype == tf.float32
    np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())
    assert not np.array_equal(a[k].numpy(), c[k].numpy())
  assert not np.array_equal(a["image"].numpy(), a["image_strong"].numpy())
  # values are (uint8/255 − mean)/std
  v = a["image"].numpy() * 0.25 + 0.5
  np.testing.assert_allclose(v * 255, np.round(v * 255), atol=1e-3)
  plain = ra.weak_strong((0.5,), (0.25,), size=8, views="plain")(tf.constant(_img(6, 8, 8)[..., :1]),
                                                                    tf.constant([1, 1], tf.int64))
  np.testing.assert_array_equal(plain["image"].numpy(), plain["image_strong"].numpy())
  gray = ra.weak_strong((0.5,), (0.25,), size=8)(tf.constant(_img(6, 8, 8)[..., :1]), tf.constant([1, 1], tf.int64))
  assert gray["image"].shape == (8, 8, 1) and gray["image_strong"].shape == (8, 8, 1)


def test_randaugment_draws_ops_with_replacement_uniformly():
  """3 ops per image, uniformly from 14 (with replacement): count op indices over many seeds."""
  counts = np.zeros(ra.N_OPS)
  for s in range(300):
    s_ops, _, _ = tf.unstack(tf.random.experimental.stateless_split(tf.constant([s, 0], tf.int64), 3))
    ops = tf.random.stateless_uniform([3], seed=s_ops, minval=0, maxval=ra.N_OPS, dtype=tf.int32).numpy()
    np.add.at(counts, ops, 1)
  assert counts.sum() == 900 and counts.min() > 900 / 14 * 0.5
