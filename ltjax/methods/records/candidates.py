"""Partial-label (candidate-set) generation for long-tailed PLL (RECORDS' candidate-set generation, RECORDS' pipeline).

Host side, numpy. One uniform matrix `U ∈ [0,1)^{N×C}` is drawn in a single call `rng.uniform(0, 1, size=(N, C))`
(row-major, legacy `np.random.RandomState` stream: upstream uses the global `np.random` stream seeded with 0 by the
dataset constructor and already advanced by the long-tailed class shuffles, so pass the *same* RandomState that
`ltjax.data.imbalance.select_long_tailed` consumed, or a seed for a fresh stream). Then

    j ∈ S_i  ⇔  j = y_i  or  U_ij < T_{y_i, j}          (strict <; T_{y,y} = 1 so the true label is always in S_i)

* uniform:       T_{y,j} = q                                      (CIFAR-10-LT, CIFAR-100-LT)
* hierarchical:  T_{y,j} = 8q if j ≠ y shares y's CIFAR-100 superclass (4 such j), q otherwise (CIFAR-100-LT-NU)

The candidate matrix is float32 `[N, C]` of {0, 1} (upstream keeps a float tensor). The confidence table starts
uniform over candidates, `w_ij = [j ∈ S_i] / |S_i|` (RECORDS' pipeline).
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

# CIFAR-100 fine label names, index = TFDS / CIFAR `fine_label` (alphabetical, as the dataset's `fine_label_names`).
CIFAR100_FINE_NAMES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
    "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)

# The 20 standard CIFAR-100 superclasses as lists of 5 fine names (as the upstream code hard-codes them); the key
# order is the alphabetical coarse-name order = TFDS / CIFAR `coarse_label` index.
CIFAR100_SUPERCLASSES = (
    ("aquatic_mammals", ("beaver", "dolphin", "otter", "seal", "whale")),
    ("fish", ("aquarium_fish", "flatfish", "ray", "shark", "trout")),
    ("flowers", ("orchid", "poppy", "rose", "sunflower", "tulip")),
    ("food_containers", ("bottle", "bowl", "can", "cup", "plate")),
    ("fruit_and_vegetables", ("apple", "mushroom", "orange", "pear", "sweet_pepper")),
    ("household_electrical_devices", ("clock", "keyboard", "lamp", "telephone", "television")),
    ("household_furniture", ("bed", "chair", "couch", "table", "wardrobe")),
    ("insects", ("bee", "beetle", "butterfly", "caterpillar", "cockroach")),
    ("large_carnivores", ("bear", "leopard", "lion", "tiger", "wolf")),
    ("large_man-made_outdoor_things", ("bridge", "castle", "house", "road", "skyscraper")),
    ("large_natural_outdoor_scenes", ("cloud", "forest", "mountain", "plain", "sea")),
    ("large_omnivores_and_herbivores", ("camel", "cattle", "chimpanzee", "elephant", "kangaroo")),
    ("medium_mammals", ("fox", "porcupine", "possum", "raccoon", "skunk")),
    ("non-insect_invertebrates", ("crab", "lobster", "snail", "spider", "worm")),
    ("people", ("baby", "boy", "girl", "man", "woman")),
    ("reptiles", ("crocodile", "dinosaur", "lizard", "snake", "turtle")),
    ("small_mammals", ("hamster", "mouse", "rabbit", "shrew", "squirrel")),
    ("trees", ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree")),
    ("vehicles_1", ("bicycle", "bus", "motorcycle", "pickup_truck", "train")),
    ("vehicles_2", ("lawn_mower", "rocket", "streetcar", "tank", "tractor")),
)


def cifar100_fine_to_coarse() -> np.ndarray:
  """int64 `[100]`: coarse (superclass) index of each fine label, derived from the name lists above via the
  alphabetical fine names (the upstream route); equals TFDS cifar100's `coarse_label` for each `label`."""
  index = {name: i for i, name in enumerate(CIFAR100_FINE_NAMES)}
  table = np.full(100, -1, np.int64)
  for k, (_, names) in enumerate(CIFAR100_SUPERCLASSES):
    for name in names:
      table[index[name]] = k
  return table


def _check_q(q: float, name: str = "q") -> float:
  q = float(q)
  if not (0.0 <= q <= 1.0):  # NaN fails too
    raise ValueError(f"partial rate {name} must lie in [0, 1], got {name}={q!r}")
  return q


def _check_labels(labels, num_classes: int) -> np.ndarray:
  labels = np.asarray(labels)
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"labels must be a 1-D integer array, got shape {labels.shape} dtype {labels.dtype}")
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    bad = int(np.flatnonzero((labels < 0) | (labels >= num_classes))[0])
    raise ValueError(f"label {labels[bad]} of example {bad} is outside [0, {num_classes})")
  return labels.astype(np.int64)


def _rng(rng: Union[None, int, np.random.RandomState]) -> np.random.RandomState:
  if isinstance(rng, np.random.RandomState):
    return rng
  return np.random.RandomState(0 if rng is None else int(rng))


def uniform_transition(num_classes: int, q: float) -> np.ndarray:
  """T `[C, C]` float64: T_{y,y} = 1, T_{y,j} = q for j ≠ y (RECORDS' candidate-set generation uniform)."""
  q = _check_q(q)
  t = np.full((num_classes, num_classes), q, np.float64)
  np.fill_diagonal(t, 1.0)
  return t


def hierarchical_transition(q: float, fine_to_coarse: Optional[np.ndarray] = None) -> np.ndarray:
  """T `[100, 100]` float64 for CIFAR-100-LT-NU (RECORDS' candidate-set generation): T_{y,y} = 1, T_{y,j} = 8q when j ≠
  y is in y's superclass,
  q otherwise. With q > 1/8 the in-superclass entries exceed 1 and those labels are always candidates (as upstream:
  no clipping is needed for `U < T`)."""
  q = _check_q(q)
  f2c = cifar100_fine_to_coarse() if fine_to_coarse is None else np.asarray(fine_to_coarse)
  same = f2c[:, None] == f2c[None, :]
  t = np.where(same, 8.0 * q, q)
  np.fill_diagonal(t, 1.0)
  return t


def candidates_from_transition(labels, transition: np.ndarray,
                               rng: Union[None, int, np.random.RandomState] = None) -> np.ndarray:
  """S `[N, C]` float32 {0,1}: S_ij = [U_ij < T_{y_i, j}], U = rng.uniform(0, 1, size=(N, C)) drawn in one call."""
  transition = np.asarray(transition, np.float64)
  num_classes = transition.shape[0]
  labels = _check_labels(labels, num_classes)
  u = _rng(rng).uniform(0, 1, size=(labels.shape[0], num_classes))
  s = u < transition[labels]
  s[np.arange(labels.shape[0]), labels] = True  # T_{y,y} = 1 > U already; explicit for clarity
  return s.astype(np.float32)


def uniform_candidates(labels, num_classes: int, q: float,
                       rng: Union[None, int, np.random.RandomState] = None) -> np.ndarray:
  """Uniform candidate sets (RECORDS' candidate-set generation): labels `[N]` int, q ∈ [0, 1] → `[N, C]` float32 {0,1};
  E|S_i| = 1 + q(C − 1). `rng`: the shared legacy RandomState (advanced in place), a seed, or None (seed 0).
  Upstream derives C as max(label) − min(label) + 1; here C is explicit (the same when every class occurs)."""
  return candidates_from_transition(labels, uniform_transition(num_classes, q), rng)


def hierarchical_candidates(labels, q: float, rng: Union[None, int, np.random.RandomState] = None,
                            fine_to_coarse: Optional[np.ndarray] = None) -> np.ndarray:
  """CIFAR-100 superclass-aware candidate sets (RECORDS' candidate-set generation, `--hierarchical`): labels `[N]` fine
  labels → `[N, 100]`
  float32 {0,1}; E|S_i| = 1 + 4·8q + 95q. Only for CIFAR-100 (CIFAR-10 ignores `--hierarchical` here)."""
  return candidates_from_transition(labels, hierarchical_transition(q, fine_to_coarse), rng)


def check_candidates(candidates, labels, require_true: bool = True) -> np.ndarray:
  """Validate a candidate matrix `[N, C]` against labels `[N]`: entries must be 0/1, every row non-empty, and (when
  `require_true`, the protocol of RECORDS' pipeline) contain the true label. Raises ValueError naming the first bad
  example index.
  Returns the matrix as float32."""
  s = np.asarray(candidates)
  if s.ndim != 2:
    raise ValueError(f"candidates must be [N, C], got shape {s.shape}")
  labels = _check_labels(labels, s.shape[1])
  if labels.shape[0] != s.shape[0]:
    raise ValueError(f"{s.shape[0]} candidate rows for {labels.shape[0]} labels")
  bad = np.flatnonzero(~np.all((s == 0) | (s == 1), axis=1))
  if bad.size:
    raise ValueError(f"candidate row of example {int(bad[0])} has entries other than 0/1")
  bad = np.flatnonzero(s.sum(axis=1) == 0)
  if bad.size:
    raise ValueError(f"candidate set of example {int(bad[0])} is empty")
  if require_true:
    bad = np.flatnonzero(s[np.arange(s.shape[0]), labels] != 1)
    if bad.size:
      raise ValueError(f"candidate set of example {int(bad[0])} excludes its true label {int(labels[bad[0]])}")
  return s.astype(np.float32)


def initial_confidence(candidates) -> np.ndarray:
  """Confidence table init (RECORDS' pipeline): w_ij = [j ∈ S_i] / |S_i|, `[N, C]` float32 (rows must be non-empty)."""
  s = np.asarray(candidates, np.float32)
  n = s.sum(axis=1, keepdims=True)
  if np.any(n == 0):
    raise ValueError(f"candidate set of example {int(np.flatnonzero(n[:, 0] == 0)[0])} is empty")
  return s / n
