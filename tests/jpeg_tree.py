"""Generated image trees with split files (tests only): tiny JPEGs of random sizes, one folder per class."""

import os

import numpy as np

from ltjax.data.filelist import write_split_file


def class_image(c: int, h: int, w: int, rng) -> np.ndarray:
  """A learnable uint8 [h, w, 3] image of class c: a per-class colour with noise."""
  base = np.array([(37 * c) % 256, (91 * c + 50) % 256, (173 * c + 100) % 256], np.float32)
  img = base + rng.normal(0, 20, size=(h, w, 3))
  return np.clip(img, 0, 255).astype(np.uint8)


def write_jpeg(path: str, image: np.ndarray) -> None:
  import tensorflow as tf
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tf.io.write_file(path, tf.io.encode_jpeg(image, quality=90))


def make_tree(root: str, counts_train, test_per_class: int, *, lists=("train.txt", "test.txt"), seed: int = 0,
              size_range=(12, 28), prefix="img") -> dict:
  """Writes <root>/<prefix>/c<k>/<split>_<i>.jpg and the split files <root>/<lists[0]>, <lists[1]> with labels k.

  Returns {'train': (paths, labels), 'test': (paths, labels)}.
  """
  rng = np.random.default_rng(seed)
  out = {}
  for split, counts, list_name in (("train", counts_train, lists[0]),
                                   ("test", [test_per_class] * len(counts_train), lists[1])):
    paths, labels = [], []
    for c, n in enumerate(counts):
      for i in range(n):
        h, w = rng.integers(size_range[0], size_range[1] + 1, size=2)
        rel = f"{prefix}/c{c}/{split}_{i}.jpg"
        write_jpeg(os.path.join(root, rel), class_image(c, int(h), int(w), rng))
        paths.append(rel)
        labels.append(c)
    write_split_file(os.path.join(root, list_name), paths, labels)
    out[split] = (paths, labels)
  return out
