"""The index-based input pipeline: deterministic order, exact resume, process slices, CIFAR augmentation."""

import numpy as np
import pytest

from ltjax.data import pipeline
from ltjax.data.dataset import Split


def make_split(n=50, h=6, c=3, seed=0):
  rng = np.random.RandomState(seed)
  images = rng.randint(1, 256, size=(n, h, h, c)).astype(np.uint8)  # no zeros: padding is detectable
  return Split(images=images, labels=(np.arange(n) % 5).astype(np.int32), indices=np.arange(n))


def collect(it):
  return [dict(b) for b in it]


def test_epoch_order_is_a_function_of_seed_and_epoch():
  a = pipeline.epoch_order(100, 3, 7)
  np.testing.assert_array_equal(a, pipeline.epoch_order(100, 3, 7))
  assert sorted(a.tolist()) == list(range(100))
  assert not np.array_equal(a, pipeline.epoch_order(100, 3, 8))
  assert not np.array_equal(a, pipeline.epoch_order(100, 4, 7))
  p = np.zeros(100)
  p[:10] = 0.1
  r = pipeline.epoch_order(100, 3, 7, p)
  assert len(r) == 100 and r.max() < 10  # with replacement, only from the supported examples


@pytest.mark.parametrize("n,b,dev,drop,expect_steps,expect_last", [
    (50, 16, 1, False, 4, 2), (50, 16, 4, False, 3, 0), (50, 16, 1, True, 3, 0), (64, 16, 8, False, 4, 0),
    (54, 16, 2, False, 4, 6)])
def test_batch_layout(n, b, dev, drop, expect_steps, expect_last):
  bt = pipeline.Batches(n, b, dev, drop_remainder=drop)
  assert bt.steps_per_epoch == expect_steps and bt.last_batch == expect_last
  pos = bt.local_positions()
  assert len(pos) == (n // b) * b + expect_last and np.array_equal(pos, np.arange(len(pos)))


def test_batch_not_divisible_by_devices_is_an_error():
  with pytest.raises(ValueError, match="not divisible"):
    pipeline.Batches(50, 10, 4)


def test_process_slices_tile_the_global_batch():
  g = pipeline.Batches(54, 16, 2).local_positions()
  parts = [pipeline.Batches(54, 16, 2, process_index=p, process_count=2).local_positions() for p in range(2)]
  # step s of process p holds positions [s*16 + p*8, ...): interleave per step and compare.
  steps = []
  off = [0, 0]
  for s, size in enumerate([16, 16, 16, 6]):
    for p in range(2):
      steps.append(parts[p][off[p]:off[p] + size // 2])
      off[p] += size // 2
  np.testing.assert_array_equal(np.concatenate(steps), g)


@pytest.mark.tensorflow
def test_train_input_resume_and_process_split_are_exact():
  split = make_split()
  kw = dict(seed=5, mean=(0.5,) * 3, std=(0.25,) * 3, crop_padding=2, flip=True)
  full = collect(pipeline.TrainInput(split, pipeline.Batches(50, 16), **kw).epoch(3))
  assert [len(b["label"]) for b in full] == [16, 16, 16, 2]
  again = collect(pipeline.TrainInput(split, pipeline.Batches(50, 16), **kw).epoch(3))
  resumed = collect(pipeline.TrainInput(split, pipeline.Batches(50, 16), **kw).epoch(3, start_step=2))
  for a, b in zip(full, again):
    np.testing.assert_array_equal(a["image"], b["image"])
  for a, b in zip(full[2:], resumed):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["index"], b["index"])
  # Two processes, each half of every batch, give the same examples and augmentations.
  two = [collect(pipeline.TrainInput(split, pipeline.Batches(50, 16, 2, p, 2), **kw).epoch(3)) for p in range(2)]
  for s, g in enumerate(full):
    joined = np.concatenate([two[0][s]["image"], two[1][s]["image"]])
    np.testing.assert_array_equal(joined, g["image"])
  # Another epoch differs in order.
  other = collect(pipeline.TrainInput(split, pipeline.Batches(50, 16), **kw).epoch(4))
  assert not np.array_equal(other[0]["index"], full[0]["index"])
  # Every example appears once per epoch, with its own label.
  idx = np.concatenate([b["index"] for b in full])
  assert sorted(idx.tolist()) == list(range(50))
  np.testing.assert_array_equal(np.concatenate([b["label"] for b in full]), split.labels[idx])


@pytest.mark.tensorflow
def test_crop_flip_is_a_shifted_possibly_flipped_window_of_the_padded_image():
  split = make_split(n=40, h=6, c=1)
  mean, std, pad = (0.2,), (0.5,), 2
  batches = collect(pipeline.TrainInput(split, pipeline.Batches(40, 40), seed=1, mean=mean, std=std,
                                        crop_padding=pad, flip=True).epoch(0))
  b = batches[0]
  pixels = np.rint((b["image"] * std[0] + mean[0]) * 255).astype(np.int64)
  shifts, flips = set(), 0
  for img, i in zip(pixels, b["index"]):
    padded = np.pad(split.images[i].astype(np.int64), ((pad, pad), (pad, pad), (0, 0)))
    found = None
    for dy in range(2 * pad + 1):
      for dx in range(2 * pad + 1):
        win = padded[dy:dy + 6, dx:dx + 6]
        for f in (False, True):
          if np.array_equal(img, win[:, ::-1] if f else win):
            found = (dy, dx, f)
    assert found is not None
    shifts.add(found[:2])
    flips += found[2]
  assert len(shifts) > 5 and 5 < flips < 35  # both random choices really vary


@pytest.mark.tensorflow
def test_resample_probabilities_drive_the_epoch_order():
  split = make_split()
  probs = np.where(split.labels == 0, 1.0, 0.0)
  probs /= probs.sum()
  ti = pipeline.TrainInput(split, pipeline.Batches(50, 25), seed=0, mean=(0,) * 3, std=(1,) * 3, crop_padding=0,
                           flip=False, probabilities_fn=lambda e: probs)
  labels = np.concatenate([b["label"] for b in ti.epoch(0)])
  assert len(labels) == 50 and set(labels.tolist()) == {0}


@pytest.mark.tensorflow
def test_eval_input_pads_and_masks():
  split = make_split(n=23)
  ev = pipeline.EvalInput(split, pipeline.Batches(23, 8, 2), mean=(0,) * 3, std=(1,) * 3)
  bs = collect(ev)
  assert [len(b["label"]) for b in bs] == [8, 8, 8]
  mask = np.concatenate([b["mask"] for b in bs])
  assert mask.sum() == 23 and mask[:23].all()
  np.testing.assert_array_equal(np.concatenate([b["index"] for b in bs])[:23], np.arange(23))
  np.testing.assert_allclose(bs[0]["image"][0], split.images[0] / 255.0, atol=1e-6)


def test_prefetch_thread_stops_when_the_consumer_does():
  import threading
  import time
  before = threading.active_count()
  it = pipeline.prefetch(iter(range(1000)), lambda x: x, size=2)
  assert next(it) == 0
  it.close()  # what happens when the training loop raises mid-epoch
  for _ in range(50):
    if threading.active_count() <= before:
      break
    time.sleep(0.05)
  assert threading.active_count() <= before
  assert list(pipeline.prefetch(iter(range(5)), lambda x: 2 * x)) == [0, 2, 4, 6, 8]
  with pytest.raises(ZeroDivisionError):
    list(pipeline.prefetch(iter(range(3)), lambda x: 1 // (x - 1)))
