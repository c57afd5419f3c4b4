"""The JAX views of the device data path (ltjax.data.device_augment, device_randaugment) compute what the host
path's TF ops compute at equal parameters — RandomResizedCrop's window and resize, ColorJitter (torchvision float
and PIL uint8 arithmetic, hue included), grayscale, Gaussian blur, the 14 RandomAugment ops — and draw their
parameters with the right frequencies."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ltjax.data import device_augment as da, device_randaugment as dra


def _image(h=32, w=32, c=3, seed=0, smooth=True):
  rng = np.random.RandomState(seed)
  if not smooth:
    return rng.randint(0, 256, (h, w, c)).astype(np.uint8)
  low = rng.rand(h // 4 + 2, w // 4 + 2, c)
  x = np.kron(low, np.ones((4, 4, 1)))[:h, :w] * 200 + rng.randint(0, 56, (h, w, c))
  return x.astype(np.uint8)


@pytest.fixture(scope="module")
def tf():
  from ltjax import optional
  return optional.tensorflow("the TF references of these tests")


# ------------------------------------------------------------------------------------------------ against TF

@pytest.mark.slow
@pytest.mark.tensorflow
@pytest.mark.parametrize("hw", [(32, 32), (8, 8), (20, 30), (5, 50), (50, 5)])
def test_rrc_window_equals_tf(tf, hw):
  from ltjax.data import augment
  h, w = hw
  u = np.random.RandomState(1).rand(200, 22).astype(np.float32)
  u[:50, :10] = 0.999  # big areas: many attempts fail, some windows fall back to the centre crop
  for scale in ((0.2, 1.0), (0.08, 1.0)):
    got = jax.vmap(lambda v: jnp.stack(da.rrc_window_from_uniforms(h, w, v, scale, (0.75, 4 / 3))))(u)
    want = [np.stack([t.numpy() for t in augment.rrc_window_from_uniforms(
        h, w, r[:10], r[10:20], r[20], r[21], scale, (0.75, 4 / 3))]) for r in u]
    np.testing.assert_array_equal(np.asarray(got), np.stack(want))


@pytest.mark.tensorflow
def test_resized_crop_equals_tf_antialiased_bilinear(tf):
  """Shrinking and enlarging windows; TF crops and resizes with antialias (PIL's BILINEAR), rounds to uint8."""
  img = _image(32, 32, 3, seed=2, smooth=False)
  rng = np.random.RandomState(3)
  worst, differ = 0, 0
  crop_fn = jax.jit(da.resized_crop, static_argnums=2)
  for _ in range(40):
    h, w = rng.randint(4, 33, 2)
    top, left = rng.randint(0, 33 - h), rng.randint(0, 33 - w)
    for size in (32, 16):
      got = np.asarray(crop_fn(jnp.asarray(img), tuple(jnp.int32(v) for v in (top, left, h, w)), size))
      crop = tf.cast(img[top:top + h, left:left + w], tf.float32)
      want = tf.cast(tf.clip_by_value(tf.round(tf.image.resize(crop, [size, size], "bilinear", antialias=True)),
                                      0.0, 255.0), tf.uint8).numpy()
      d = np.abs(got.astype(int) - want.astype(int))
      worst, differ = max(worst, d.max()), differ + (d > 0).sum()
  assert worst <= 1 and differ < 0.002 * 40 * 2 * 32 * 32 * 3  # float rounding at .5: one level, rarely


@pytest.mark.tensorflow
@pytest.mark.parametrize("dtype", ["float", "uint8"])
def test_color_jitter_equals_tf(tf, dtype):
  """Every order of the four adjustments, hue included: torchvision's float arithmetic, and PIL's (uint8)."""
  from ltjax.data import augment
  img = _image(16, 16, 3, seed=4)
  x = img.astype(np.float32) / 255.0 if dtype == "float" else img
  rng = np.random.RandomState(5)
  active = [0, 1, 2, 3]
  jitter = jax.jit(lambda x, f, o: da.apply_color_jitter(x, f, o, active))
  for _ in range(12):
    factors = np.concatenate([rng.uniform(0.6, 1.4, 3), rng.uniform(-0.1, 0.1, 1)]).astype(np.float32)
    order = rng.permutation(4).astype(np.int32)
    got = np.asarray(jitter(jnp.asarray(x), jnp.asarray(factors), jnp.asarray(order)))
    want = augment.apply_color_jitter(tf.constant(x), tf.constant(factors), tf.constant(order), active).numpy()
    if dtype == "float":
      np.testing.assert_allclose(got, want, atol=2e-5)
    else:
      d = np.abs(got.astype(int) - want.astype(int))
      assert d.max() <= 1 and (d > 0).mean() < 0.01


@pytest.mark.tensorflow
def test_grayscale_and_blur_equal_tf(tf):
  from ltjax.data import augment, contrastive_views
  img = _image(16, 16, 3, seed=6)
  np.testing.assert_array_equal(np.asarray(da.grayscale(jnp.asarray(img))), augment.grayscale(tf.constant(img)).numpy())
  x = img.astype(np.float32) / 255.0
  np.testing.assert_allclose(np.asarray(da.grayscale(jnp.asarray(x))), augment.grayscale(tf.constant(x)).numpy(),
                             atol=1e-6)
  for sigma in (0.1, 0.7, 2.0):
    np.testing.assert_allclose(np.asarray(da.gaussian_blur(jnp.asarray(x), jnp.float32(sigma))),
                               contrastive_views.gaussian_blur(tf.constant(x), tf.constant(sigma)).numpy(), atol=1e-5)


_randaugment_op = jax.jit(dra.randaugment_op)  # one compile for every op and magnitude


@pytest.mark.tensorflow
@pytest.mark.parametrize("op", range(dra.N_OPS), ids=[o[0] for o in dra.RANDAUGMENT_OPS])
def test_randaugment_ops_equal_tf(tf, op):
  from ltjax.data import randaugment
  name, lo, hi = dra.RANDAUGMENT_OPS[op]
  for seed, smooth in ((7, True), (8, False)):
    img = _image(32, 32, 3, seed=seed, smooth=smooth)
    for v in np.linspace(lo, hi, 5).astype(np.float32):
      got = np.asarray(_randaugment_op(jnp.asarray(img), jnp.int32(op), jnp.float32(v)))
      want = randaugment._randaugment_op(tf.constant(img), tf.constant(op), tf.constant(v)).numpy()
      d = np.abs(got.astype(int) - want.astype(int))
      # Geometric ops may flip a nearest-neighbour pick where a sample lands on a pixel edge in float.
      tol = 0.02 if name in ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY") else 0.0
      assert (d > 1).mean() <= tol and (d > 0).mean() <= max(tol, 0.01), (name, v, d.max(), (d > 0).mean())


# ------------------------------------------------------------------------------------------------ draws

def test_cutout_box_follows_the_formula():
  h = w = 32
  for u in np.random.RandomState(9).rand(50, 3).astype(np.float32):
    side = u[0] * 0.5 * w
    x0 = np.floor(max(0.0, 1 + (w - 1) * (1 - u[1]) - side / 2))
    y0 = np.floor(max(0.0, 1 + (h - 1) * (1 - u[2]) - side / 2))
    x1, y1 = np.floor(min(w, x0 + side)), np.floor(min(h, y0 + side))
    xs, ys = np.arange(w)[None], np.arange(h)[:, None]
    want = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1) & (side > 0)
    np.testing.assert_array_equal(np.asarray(dra.cutout_box(h, w, jnp.asarray(u))), want)


@pytest.mark.slow
def test_jitter_params_and_application_rates():
  keys = jax.random.split(jax.random.PRNGKey(0), 4000)
  f, order, active = jax.vmap(lambda k: da.jitter_params(k, (0.4, 0.4, 0.4, 0.1))[:2])(keys) + (None,)
  f, order = np.asarray(f), np.asarray(order)
  assert (f[:, :3] >= 0.6).all() and (f[:, :3] <= 1.4).all() and (np.abs(f[:, 3]) <= 0.1).all()
  assert abs(f[:, 0].mean() - 1.0) < 0.02 and abs(f[:, 3].mean()) < 0.005
  firsts = np.bincount(order[:, 0], minlength=4) / len(order)  # each adjustment first a quarter of the time
  assert np.abs(firsts - 0.25).max() < 0.03
  # RandomGrayscale (0.2) and flips (0.5) in the SupCon view: a constant-colour image shows both.
  img = jnp.asarray(np.tile(np.array([200, 40, 90], np.uint8), (16, 16, 1)))
  view = jax.vmap(lambda k: da.supcon_view(img, k, size=16, mean=(0, 0, 0), std=(1, 1, 1), jitter_p=0.0))(keys)
  gray = np.asarray(jnp.all(jnp.abs(view[..., 0] - view[..., 1]) < 1e-6, axis=(1, 2)))
  assert abs(gray.mean() - 0.2) < 0.03


@pytest.mark.slow
def test_rand_augment_draws_ops_uniformly_and_views_keep_shape():
  keys = jax.random.split(jax.random.PRNGKey(1), 8)
  img = jnp.asarray(_image(16, 16, 1, seed=10))[None].repeat(8, 0)
  out = dra.weak_strong((0.3,), (0.3,), size=16)(img, jax.vmap(lambda k: k)(keys))
  assert out["image"].shape == out["image_strong"].shape == (8, 16, 16, 1)
  assert np.isfinite(np.asarray(out["image_strong"])).all()
  ops = np.asarray(jax.vmap(lambda k: jax.random.randint(jax.random.split(k, 3)[0], (3,), 0, dra.N_OPS))(
      jax.random.split(jax.random.PRNGKey(2), 5000))).ravel()
  counts = np.bincount(ops, minlength=dra.N_OPS)
  assert counts.min() > 0.8 * len(ops) / dra.N_OPS and counts.max() < 1.2 * len(ops) / dra.N_OPS
