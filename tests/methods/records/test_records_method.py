"""RECORDS / CORR / SoLar methods (RECORDS (Hong et al., ICLR 2023; official code)): candidate sets of the long-tailed
subset on the
official stream, one training step (loss, gradients, table/feature-mean/queue updates) against float64 numpy
references through a linear model, evaluation figures, schedules, the ResNet-18, configs and bad input."""

import copy
import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import records_cifar, records_digits
from tests.cfgutil import labels_dataset
from tests.methods.records.test_records import _corr_grad_ref, _corr_ref, _sinkhorn_ref, _softmax

from ltjax import config as config_lib
from ltjax.data import imbalance, sources
from ltjax.data.stats import ClassStats
from ltjax.methods import records as mr
from ltjax.train import optim


# ------------------------------------------------------------------------------------- candidates of the LT subset
def test_candidates_continue_the_selection_stream():
  cfg = records_digits.get_config("row=corr")
  data = sources.load(cfg.data)
  raw = sources.REGISTRY["digits"](cfg.data)
  counts = imbalance.class_counts(raw.n_full, 10, "exp", cfg.data.imb_factor)
  rng = np.random.RandomState(cfg.data.rand_number)
  sel = imbalance.select_long_tailed(raw.train.labels, counts, rng=rng)
  labels = raw.train.labels[sel]
  np.testing.assert_array_equal(data.train.labels, labels)
  u = rng.uniform(0, 1, size=(len(labels), 10))  # upstream: np.random.uniform right after the class shuffles
  ref = (u < 0.3).astype(np.float32)
  ref[np.arange(len(labels)), labels] = 1
  m = mr.Records(cfg, data, ClassStats.from_labels(labels, 10))
  np.testing.assert_array_equal(m.candidates, ref)
  m = mr.Records(cfg, data, ClassStats.from_labels(labels, 10))  # idempotent: the dataset's RandomState is not advanced
  np.testing.assert_array_equal(m.candidates, ref)
  st = m.init_state(None)
  np.testing.assert_allclose(st["confidence"], ref / ref.sum(1, keepdims=True))
  assert abs(ref.sum(1).mean() - 3.7) < 0.2


def test_count_shuffle_is_python_random():
  cfg = records_digits.get_config("row=corr")
  cfg.data.count_shuffle_seed = 123
  data = sources.load(cfg.data)
  raw = sources.REGISTRY["digits"](cfg.data)
  counts = list(imbalance.class_counts(raw.n_full, 10, "exp", cfg.data.imb_factor))
  state = random.getstate()
  try:
    random.seed(123)
    random.shuffle(counts)  # upstream: random.seed(args.seed) … random.shuffle(img_num_per_cls)
  finally:
    random.setstate(state)
  np.testing.assert_array_equal(np.bincount(data.train.labels, minlength=10), counts)
  assert counts != sorted(counts, reverse=True)


# ------------------------------------------------------------------------------------------- one step, references
class Linear:
  """apply(variables, x) = {'logits': x K + b, 'features': x}: the step's maths without a network."""

  @staticmethod
  def apply(variables, x, train=True, mutable=()):
    p = variables["params"]["fc"]
    out = {"logits": x @ p["kernel"] + p["bias"], "features": x}
    return (out, {"batch_stats": variables["batch_stats"]}) if mutable else out


def _method(cls, section, num_classes, cand, feature_dim=None, batch_size=8):
  cfg = config_lib.default()
  cfg.method = cls.name
  cfg.train.batch_size = batch_size
  cfg.data.drop_remainder = True
  cfg[cls.name] = section
  labels = np.argmax(cand, 1)
  m = cls(cfg, labels_dataset(labels, num_classes), ClassStats.from_labels(labels, num_classes))
  m.candidates = cand.astype(np.float32)
  m.feature_dim = feature_dim
  return m


def _problem(seed, n=20, c=4, d=5, b=8):
  r = np.random.RandomState(seed)
  cand = (r.rand(n, c) < 0.5).astype(np.float64)
  y = r.randint(0, c, n)
  cand[np.arange(n), y] = 1
  params = {"fc": {"kernel": r.randn(d, c) * 0.7, "bias": r.randn(c) * 0.3}}
  idx = r.permutation(n)[:b]
  batch = {"image": r.randn(b, d), "image_strong": r.randn(b, d), "index": idx, "label": y[idx]}
  return cand, y, params, batch


def _f32(tree):
  return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32) if np.asarray(x).dtype.kind == "f" else jnp.asarray(x),
                      tree)


@pytest.mark.parametrize("debias,mixup,update", [(False, False, True), (True, False, True), (True, True, True),
                                                 (True, True, False), (False, False, False)])
def test_records_step_matches_reference(debias, mixup, update):
  cand, y, params, batch = _problem(0)
  sec = mr.Records.config_defaults()
  sec.debias, sec.mixup, sec.alpha, sec.momentum = debias, mixup, 0.7, 0.9
  m = _method(mr.Records, sec, 4, cand, feature_dim=5)
  state = jax.tree.map(np.asarray, m.init_state(None))
  conf0 = state["confidence"].astype(np.float64).copy()
  conf0[batch["index"][0], np.flatnonzero(cand[batch["index"][0]])[0]] = 0.0  # a candidate fallen to 0
  conf0 /= conf0.sum(1, keepdims=True)
  state["confidence"] = conf0
  if debias:
    state["feat_mean"] = np.abs(np.random.RandomState(1).randn(5))
  rng = jax.random.PRNGKey(3)
  hp = {"update": np.asarray(update)}

  def loss_fn(p):
    return m.loss(Linear.apply, p, {}, _f32(state), _f32(batch), hp, rng)

  (loss, (_, new_state, metrics)), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(_f32(params))

  # float64 reference
  K, bias = params["fc"]["kernel"], params["fc"]["bias"]
  xw, xs, idx = batch["image"], batch["image_strong"], batch["index"]
  w = conf0[idx]
  ow, os_ = xw @ K + bias, xs @ K + bias
  ref = _corr_ref(ow, os_, w)
  gk = xw.T @ _corr_grad_ref(ow, w) + xs.T @ _corr_grad_ref(os_, w)
  gb = _corr_grad_ref(ow, w).sum(0) + _corr_grad_ref(os_, w).sum(0)
  if mixup:
    k_beta, k_perm = jax.random.split(rng)
    beta = float(jax.random.beta(k_beta, 4.0, 4.0))
    lam = max(beta, 1 - beta)
    perm = np.asarray(jax.random.permutation(k_perm, 8))
    xwm, xsm = lam * xw + (1 - lam) * xw[perm], lam * xs + (1 - lam) * xs[perm]
    wm = lam * w + (1 - lam) * w[perm]
    owm, osm = xwm @ K + bias, xsm @ K + bias
    if update:
      ref += 0.7 * _corr_ref(owm, osm, wm)
      gk += 0.7 * (xwm.T @ _corr_grad_ref(owm, wm) + xsm.T @ _corr_grad_ref(osm, wm))
      gb += 0.7 * (_corr_grad_ref(owm, wm).sum(0) + _corr_grad_ref(osm, wm).sum(0))
  np.testing.assert_allclose(float(loss), ref, rtol=1e-5)
  np.testing.assert_allclose(grads["fc"]["kernel"], gk, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(grads["fc"]["bias"], gb, rtol=1e-4, atol=1e-6)

  new = conf0.copy()
  if debias:
    fbar = 0.9 * state["feat_mean"] + 0.1 * ((xw + xs) / 2).mean(0)
    np.testing.assert_allclose(new_state["feat_mean"], fbar, rtol=1e-5)
    prior = _softmax(fbar @ K + bias)
    q, qs = _softmax(ow - np.log(prior + 1e-9)), _softmax(os_ - np.log(prior + 1e-9))
    v = cand[idx] * q * qs
    v = v / (v.sum(1, keepdims=True) + 1e-9)
    v = np.sqrt(v)
    rows = v / (v.sum(1, keepdims=True) + 1e-9)
    # test time: o − log(π + 1e-9) with the stored f̄ and the current fc
    logits = np.random.RandomState(2).randn(3, 4)
    adj = m.eval_logits({"logits": jnp.asarray(logits, jnp.float32)}, _f32(new_state), params=_f32(params))
    np.testing.assert_allclose(adj, logits - np.log(prior + 1e-9), rtol=1e-4, atol=1e-5)
  else:
    u = (w > 0) * np.sqrt(_softmax(ow) * _softmax(os_))
    rows = u / (u.sum(1, keepdims=True) + 1e-9)
    logits = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(m.eval_logits({"logits": logits}, new_state, None), logits)
  if update:
    new[idx] = rows
  np.testing.assert_allclose(new_state["confidence"], new, rtol=1e-4, atol=1e-7)
  np.testing.assert_array_equal(new_state["candidates"], cand)
  assert float(metrics["mean_max_confidence"]) == pytest.approx(new.max(1).mean(), rel=1e-5)
  assert float(metrics["accuracy"]) == pytest.approx(np.mean(np.argmax(ow, 1) == batch["label"]))


def _solar_reference(state, params, batch, hp, rng, s):
  K, bias = params["fc"]["kernel"], params["fc"]["bias"]
  xw, xs, idx = batch["image"], batch["image_strong"], batch["index"]
  b = len(idx)
  cand, w = state["candidates"][idx], state["confidence"][idx]
  ow, os_ = xw @ K + bias, xs @ K + bias
  logp_w = np.log(_softmax(ow))
  rn = -(w * logp_w).sum(1)
  p = _softmax(ow)
  mm = p * cand
  conf_rn = mm / mm.sum(1, keepdims=True)
  queue = state["queue"]
  scores = np.concatenate([queue, mm]) if np.any(queue[-1] != 0) else mm
  qfull, _ = _sinkhorn_ref(scores, s.lamd, state["prior"])
  q = qfull[-b:]
  ps = -(q * logp_w).sum(1)
  cls = q.argmax(1)
  sel = np.zeros(b, bool)
  for j in range(q.shape[1]):  # upstream loop
    ind = np.where(cls == j)[0]
    if len(ind) == 0:
      continue
    part = max(min(int(np.ceil(b * state["prior"][j] * hp["rho"])), len(ind)), 1)
    sel[ind[np.argsort(ps[ind], kind="stable")[:part]]] = True
  sel |= (q * p).sum(1) > s.tau
  chosen, unchosen = np.where(sel)[0], np.where(~sel)[0]
  if hp["first"] or len(chosen) == 0:
    loss = rn.mean()
  else:
    l_unrel = rn[unchosen].mean() if len(unchosen) else 0.0
    l_sin = ps[chosen].mean()
    l_cons = -(q[chosen] * np.log(_softmax(os_[chosen]))).sum(1).mean()
    k_beta, k_perm = jax.random.split(rng)
    beta = float(jax.random.beta(k_beta, 4.0, 4.0))
    lam = max(beta, 1 - beta)
    u = np.asarray(jax.random.uniform(k_perm, (b,)))
    partner = np.argsort(np.where(sel, u, 2.0), kind="stable")[:len(chosen)]  # a random permutation of `chosen`
    xm = lam * xw[chosen] + (1 - lam) * xw[partner]
    qm = lam * q[chosen] + (1 - lam) * q[partner]
    l_mix = -(qm * np.log(_softmax(xm @ K + bias))).sum(1).mean()
    loss = hp["eta"] * (l_sin + l_mix + l_cons) + (1 - hp["eta"]) * l_unrel
  new_queue = np.concatenate([mm, queue[:-b]])
  conf = state["confidence"].copy()
  conf[idx] = conf_rn
  return loss, new_queue, conf, sel


@pytest.mark.slow
@pytest.mark.parametrize("full_queue,first", [(False, False), (True, False), (True, True)])
def test_solar_step_matches_reference(full_queue, first):
  cand, y, params, batch = _problem(5, n=24, c=4, d=5, b=8)
  s = mr.SoLar.config_defaults()
  s.queue_length = 2
  s.tau = 0.6  # lets the high-confidence rule select something on this tiny problem
  m = _method(mr.SoLar, s, 4, cand, batch_size=8)
  state = jax.tree.map(np.asarray, m.init_state(None, prior=np.array([0.4, 0.3, 0.2, 0.1])))
  state = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in state.items()}
  if full_queue:
    state["queue"] = np.random.RandomState(6).rand(16, 4) * (np.random.RandomState(7).rand(16, 4) < 0.7)
  hp = {"eta": 0.45, "rho": 0.35, "first": first}
  rng = jax.random.PRNGKey(11)
  hp_j = {"eta": np.float32(0.45), "rho": np.float32(0.35), "first": np.asarray(first)}
  (loss, (_, ns, metrics)) = jax.jit(lambda p: m.loss(Linear.apply, p, {}, _f32(state), _f32(batch), hp_j, rng))(
      _f32(params))
  ref_loss, ref_queue, ref_conf, sel = _solar_reference(state, params, batch, hp, rng, s)
  assert 0 < sel.sum() < 8
  np.testing.assert_allclose(float(loss), ref_loss, rtol=2e-4)
  np.testing.assert_allclose(ns["queue"], ref_queue, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(ns["confidence"], ref_conf, rtol=1e-5, atol=1e-7)
  assert float(metrics["selected_fraction"]) == pytest.approx(sel.mean())
  # the gradient flows through the three forwards
  g = jax.grad(lambda p: m.loss(Linear.apply, p, {}, _f32(state), _f32(batch), hp_j, rng)[0])(_f32(params))
  h = 1e-3
  e = np.zeros_like(params["fc"]["kernel"])
  e[1, 2] = h
  pp = copy.deepcopy(params)
  pm = copy.deepcopy(params)
  pp["fc"]["kernel"] = params["fc"]["kernel"] + e
  pm["fc"]["kernel"] = params["fc"]["kernel"] - e
  fd = (_solar_reference(state, pp, batch, hp, rng, s)[0] - _solar_reference(state, pm, batch, hp, rng, s)[0]) / (2 * h)
  np.testing.assert_allclose(float(g["fc"]["kernel"][1, 2]), fd, rtol=2e-2, atol=1e-4)


def test_solar_selection_quota():
  q = jnp.asarray(np.eye(3)[[0, 0, 0, 0, 1, 1, 2, 0]] * 0.9 + 0.0333, jnp.float32)
  ps = jnp.asarray([0.5, 0.1, 0.3, 0.2, 0.4, 0.6, 0.9, 0.05], jnp.float32)
  sel = mr.solar_selection(q, ps, jnp.asarray([0.5, 0.3, 0.2]), 0.5, 8)
  # class 0: 5 samples, quota ⌈8·0.5·0.5⌉ = 2 → the two smallest ps (7, 1); class 1: ⌈1.2⌉ = 2 → both; class 2: 1
  np.testing.assert_array_equal(np.asarray(sel), [False, True, False, False, True, True, True, True])


# ------------------------------------------------------------------------------------------- evaluation figures
def test_batch_mean_top1_and_rank_groups():
  labels = np.arange(10) % 2
  logits = np.stack([1 - labels, labels], 1).astype(float)
  logits[[0, 8, 9]] = logits[[0, 8, 9]][:, ::-1]  # three wrong: one in batch 1, two in the last batch of 2
  assert mr.batch_mean_top1(logits, labels, 4) == pytest.approx(100 * np.mean([3 / 4, 4 / 4, 0 / 2]))
  c10 = imbalance.class_counts(5000, 10, "exp", 0.01)
  g = mr.rank_groups(c10, 3)
  assert sorted(c10[g["many"]].tolist()) == [1796, 2997, 5000] and sorted(c10[g["few"]].tolist()) == [50, 83, 139]
  c100 = imbalance.class_counts(500, 100, "exp", 0.01)
  g = mr.rank_groups(c100, 33)
  assert g["many"].sum() == 33 and c100[g["many"]].min() > 107 and g["few"].sum() == 33 and c100[g["few"]].max() < 23
  np.testing.assert_array_equal(np.flatnonzero(g["many"]), np.arange(33))  # = group_bounds (33, 67) unshuffled
  np.testing.assert_array_equal(np.flatnonzero(g["few"]), np.arange(67, 100))


# ----------------------------------------------------------------------------------------------- schedules, model
def test_records_schedules():
  t = optim.lr_table("records_cosine", 0.01, 800)
  e = np.arange(800)
  eta_min = 0.01 * 0.1 ** 3
  np.testing.assert_allclose(t, eta_min + (0.01 - eta_min) * (1 + np.cos(np.pi * e / 800)) / 2, rtol=1e-12)
  t2 = optim.lr_table("records_cosine", 0.01, 900, restart_epoch=100)  # SoLar: est 100 + 800
  np.testing.assert_allclose(t2[:100], t[:100])
  np.testing.assert_allclose(t2[100:], t)
  s = optim.lr_table("records_step", 0.02, 1000)
  assert s[700] == 0.02 and s[701] == pytest.approx(0.002) and s[801] == pytest.approx(2e-4)
  c = records_cifar.get_config("row=solar")
  np.testing.assert_allclose(optim.lr_table_from_config(c), t2)


@pytest.mark.slow
def test_resnet18_cifar():
  from ltjax.models import create_model
  m = create_model("resnet18_cifar", 10)
  x = jnp.asarray(np.random.RandomState(0).randn(2, 32, 32, 3), jnp.float32)
  v = m.init(jax.random.PRNGKey(0), x)
  assert sum(a.size for a in jax.tree.leaves(v["params"])) == 11173962
  out = m.apply(v, x)
  assert out["logits"].shape == (2, 10) and out["features"].shape == (2, 512) and np.all(out["features"] >= 0)
  p = v["params"]
  k = np.asarray(p["fc"]["kernel"])
  assert np.abs(k).max() <= 1 / np.sqrt(512) and np.abs(np.asarray(p["fc"]["bias"])).max() <= 1 / np.sqrt(512)
  stem = np.asarray(p["Conv_0"]["kernel"])  # Kaiming normal, fan_out = 3·3·64
  assert stem.shape == (3, 3, 3, 64) and abs(stem.std() - np.sqrt(2 / (9 * 64))) < 0.01
  assert "Conv_2" in p["BasicBlockB_2"]  # first block of stage 2: 1×1 projection shortcut (option B)
  assert "Conv_2" not in p["BasicBlockB_1"]
  with pytest.raises(ValueError, match="linear"):
    create_model("resnet18_cifar", 10, head="cosine").init(jax.random.PRNGKey(0), x)


# ------------------------------------------------------------------------------------------------ configs, errors
@pytest.mark.parametrize("q", [-0.1, 1.5, float("nan")])
def test_bad_partial_rate(q):
  c = records_digits.get_config("row=corr")
  c.records.partial_rate = q
  with pytest.raises(config_lib.ConfigError, match="partial_rate"):
    config_lib.validate(c)


def test_bad_settings():
  c = records_cifar.get_config("dataset=cifar100,q=0.03,row=corr_records,nu=1")
  config_lib.validate(c)
  c.data.count_shuffle_seed = -1
  with pytest.raises(config_lib.ConfigError, match="count_shuffle_seed"):
    config_lib.validate(c)
  c = records_digits.get_config("row=corr")
  c.records.mixup = True
  with pytest.raises(config_lib.ConfigError, match="debias"):
    config_lib.validate(c)
  c = records_digits.get_config("row=solar")
  c.optim.restart_epoch = 0
  with pytest.raises(config_lib.ConfigError, match="restart_epoch"):
    config_lib.validate(c)
  c = records_digits.get_config("row=solar")
  c.train.epochs = c.solar.est_epochs
  with pytest.raises(config_lib.ConfigError, match="est_epochs"):
    config_lib.validate(c)
  with pytest.raises(ValueError, match="nu=1"):
    records_cifar.get_config("dataset=cifar10,nu=1")


def test_candidates_must_hold_the_true_label():
  with pytest.raises(ValueError, match="example 1 excludes its true label"):
    from ltjax.methods.records import candidates as pl
    pl.check_candidates(np.array([[1, 0], [1, 0]]), np.array([0, 1]))


# ----------------------------------------------------------------------------------------------------------- VOC
def test_voc_reader(tmp_path):
  from PIL import Image

  from ltjax.data import voc_pll
  root = tmp_path / "PLL"
  (root / "train_var" / "images").mkdir(parents=True)
  (root / "test" / "images").mkdir(parents=True)
  Image.fromarray(np.full((30, 50, 3), 200, np.uint8)).save(root / "train_var" / "images" / "a.jpg")
  Image.fromarray(np.full((40, 20, 3), 100, np.uint8)).save(root / "train_var" / "images" / "b.png")
  (root / "train_var" / "images_PLL.csv").write_text(
      "name,label,label set\na.jpg,dog,dog cat person\nb.png,tvmonitor,tvmonitor\n")
  images, t = voc_pll.load(str(root), "train")
  assert images.shape == (2, 128, 128, 3)
  np.testing.assert_array_equal(t.labels, [11, 19])
  np.testing.assert_array_equal(np.flatnonzero(t.candidates[0]), [7, 11, 14])
  # 30×50 padded to 50×50: 10 rows of zeros on top and bottom (→ 25.6 rows at 128), content in the middle
  assert images[0, 5, 64].max() == 0 and images[0, 64, 64].min() > 150 and images[0, 125, 64].max() == 0
  assert voc_pll.pad_to_square(np.ones((3, 6, 1), np.uint8))[:, :, 0].tolist() == [
      [0] * 6, [1] * 6, [1] * 6, [1] * 6, [0] * 6, [0] * 6]
  bad = root / "train_var" / "images_PLL.csv"
  for text, match in [("name,label\na.jpg,dog\n", "lacks column"),
                      ("name,label,label set\na.jpg,dog,dog\nb.png,robot,robot\n", r"images_PLL.csv:3: unknown class"),
                      ("name,label,label set\na.jpg,dog,cat person\n", r":2: the label set .* excludes the true"),
                      ("name,label,label set\na.jpg,dog,\n", ":2: empty candidate"),
                      ("name,label,label set\na.jpg,dog,dog bat\n", r":2: unknown class\(es\) \['bat'\]")]:
    bad.write_text(text)
    with pytest.raises(voc_pll.VOCFormatError, match=match):
      voc_pll.load(str(root), "train", images=False)
  with pytest.raises(FileNotFoundError, match="images_uniform.csv"):
    voc_pll.load(str(root), "test")
