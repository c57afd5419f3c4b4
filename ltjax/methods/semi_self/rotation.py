"""Rotation self-supervised pre-training (imbalanced-semi-self `pretrain_rot.py` of imbalanced-semi-self).

Per training batch of B images (after the dataset's usual augmentation: pad-4 random crop, horizontal flip,
normalise — the official CIFAR/SVHN transforms):

  k = first B entries of a random permutation of [0, 1, 2, 3] repeated ⌊B/4⌋ + 1 times   (nearly balanced: each
      rotation occurs ⌊B/4⌋ or ⌊B/4⌋ + 1 times, minus what the cut at B removes)
  x̃_i = rot90(x_i, k_i)   (k_i·90° counter-clockwise in the H–W plane: torch.rot90(x, k, dims=(H, W)),
                            np.rot90(x, k, axes=(0, 1)) for one HWC image)
  L = (1/B) Σ_i CE(f(x̃_i), k_i)   with a 4-way head (Linear(64, 4) for ResNet-32)

The batch is *not* expanded (each image appears once, in one rotation; not the 4×B of RotNet). The images' class
labels are ignored; the training set is the long-tailed subset of LDAM-DRW `imbalance_cifar.py` with the same ρ. The
permutation is
drawn with `jax.random` from the step key (the official code uses numpy's unseeded global stream: same
distribution, different draws), inside the compiled step over the *global* batch, so 1 device and 8 compute the
same step.

Optimisation as `train.py` (imbalanced-semi-self `train.py`): SGD 0.1, momentum 0.9, wd 2e-4, batch 128, 200 epochs, the
SS step schedule
(configs/ss_rotation.py). The class-label evaluation of the trainer does not apply (4 outputs), so a pre-training
run sets `train.eval_every = 0` and `train.select_on = 'last'`; the rotation accuracy of a checkpoint on the test
split — every test image in all four rotations — is

  python -m ltjax.tools.rotation_eval --workdir RUN          (writes RUN/rotation_eval.json)

Fine-tuning (imbalanced-semi-self `train.py` SSP) initialises a classifier run from the pre-training run with
`init.workdir = RUN` and
`init.exclude = ('fc', 'linear')` (configs/ss_finetune.py): every weight and BN running statistic is copied except
the head.
"""

from __future__ import annotations

import dataclasses
from typing import Dict

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ltjax.errors import ConfigError
from ltjax.methods.base import Method

NUM_ROTATIONS = 4


def rotation_labels(rng: jax.Array, batch_size: int) -> jax.Array:
  """int32 [B]: the first B entries of a random permutation of [0, 1, 2, 3] * (⌊B/4⌋ + 1)."""
  pool = jnp.tile(jnp.arange(NUM_ROTATIONS, dtype=jnp.int32), batch_size // NUM_ROTATIONS + 1)
  return jax.random.permutation(rng, pool)[:batch_size]


def rotate(images: jax.Array, k: jax.Array) -> jax.Array:
  """images [B, H, W, C] (H = W), k int [B] in 0..3 → image i rotated by k_i·90° counter-clockwise (H–W plane)."""
  if images.ndim != 4 or images.shape[1] != images.shape[2]:
    raise ValueError(f"rotation pre-training needs square images [B, H, H, C], got shape {images.shape}")
  out = images
  for j in range(1, NUM_ROTATIONS):
    out = jnp.where((k == j)[:, None, None, None], jnp.rot90(images, j, axes=(1, 2)), out)
  return out


def rotation_batch(images: jax.Array, rng: jax.Array):
  """(rotated images [B, H, W, C], rotation labels int32 [B]) of one training batch."""
  k = rotation_labels(rng, images.shape[0])
  return rotate(images, k), k


class Rotation(Method):
  name = "rotation"

  @staticmethod
  def validate(cfg) -> None:
    if cfg.loss.name != "ce":
      raise ConfigError(f"method 'rotation' trains its 4-way head with cross-entropy; config.loss.name = "
                        f"{cfg.loss.name!r} has no meaning here: set it to 'ce' (a cosine head is "
                        "config.model.head='cosine')")
    if cfg.supervised.train_rule != "none" or cfg.supervised.mixup_alpha:
      raise ConfigError("method 'rotation' ignores class labels: config.supervised.train_rule must be 'none' and "
                        "config.supervised.mixup_alpha 0 (the official --train_rule is accepted but meaningless)")
    if cfg.train.eval_every != 0 or cfg.train.select_on != "last":
      raise ConfigError("method 'rotation' has 4 outputs, so the class-label evaluation cannot run: set "
                        "config.train.eval_every=0 and config.train.select_on='last', and measure rotation accuracy "
                        "with `python -m ltjax.tools.rotation_eval --workdir RUN`")

  def model_kwargs(self) -> Dict:
    return {"num_classes": NUM_ROTATIONS}

  def loss(self, apply_fn, params, batch_stats, method_state, batch, hparams, rng):
    x, k = rotation_batch(batch["image"], rng)
    out, new_vars = apply_fn({"params": params, "batch_stats": batch_stats}, x, train=True, mutable=["batch_stats"])
    logits = out["logits"].astype(jnp.float32)
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, k))
    metrics = {"accuracy": jnp.mean(jnp.argmax(logits, -1) == k)}
    return loss, (new_vars["batch_stats"], method_state, metrics)


def rotation_accuracy(run, state, split: str = "test") -> Dict[str, float]:
  """Rotation accuracy (%) of a pre-training state on a split: every image in each of the four rotations, un-augmented
  (test-time normalisation). Returns {'rotation_accuracy', 'rot0', 'rot90', 'rot180', 'rot270'}."""
  data = getattr(run.data, split)
  out = {}
  for j in range(NUM_ROTATIONS):
    rotated = dataclasses.replace(data, images=np.ascontiguousarray(np.rot90(data.images, j, axes=(1, 2))))
    r = dataclasses.replace(run, data=dataclasses.replace(run.data, test=rotated))
    z = r.predict(state, "test")["logits"]
    if z.shape[1] != NUM_ROTATIONS:
      raise ValueError(f"the model has {z.shape[1]} outputs, not {NUM_ROTATIONS}: not a rotation pre-training run")
    out[f"rot{90 * j}"] = float(100.0 * np.mean(z.argmax(1) == j))
  out["rotation_accuracy"] = float(np.mean([out[f"rot{90 * j}"] for j in range(NUM_ROTATIONS)]))
  return out
