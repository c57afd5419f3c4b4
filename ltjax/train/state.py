"""The train state: everything a run needs to continue exactly (the data position is `step`)."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: optimizer steps taken; epoch = step // steps_per_epoch
  params: Any
  batch_stats: Any
  opt_state: Any
  method_state: Any
  rng: jax.Array  # uint32 [2] raw key; step k uses fold_in(rng, k)
