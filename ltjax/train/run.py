"""A run's assembled parts (`Run`) and the one pass over a split that everything else reads through.

`setup(cfg)` builds, from a validated config, everything a run needs: the dataset, its class statistics, the method,
the model, the mesh, the training input (host or device data path), the LR schedule and the optimizer. The training
loop (`ltjax.train.loop`), the tools (`ltjax.tools.open_run`, `pseudolabel`, `rotation_eval`) and the methods'
host-side passes (SBCL's clustering, SoLar's prior) all use it.

`Run.map_split(split, fn, operand, ...)` is the one sharded, padded, gathered pass over every row of a split:

    out[name][i] = fn(operand, x)[name] row i,   x = the image of row i after the split's transform

in split order, as numpy on every process. The transform is the evaluation one (normalise; Resize + CenterCrop for
file-backed splits) or a method's own seeded view. In-memory splits run on the devices in one compiled call
(`ltjax.data.device.map_split`, with a JAX view); file-backed ones, or any split with `data.pipeline = 'host'`, run
batch by batch through tf.data (`ltjax.data.pipeline.EvalInput`, with a TF view). `predict` and `evaluate` are that
pass with the model's test-time logits.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ltjax import config as config_lib, losses, methods, metrics
from ltjax.data import device, device_augment, pipeline, sources
from ltjax.data.stats import ClassStats
from ltjax.errors import ConfigError
from ltjax.models import create_model
from ltjax.train import optim, pretrained as pretrained_lib, step as step_lib
from ltjax.train.state import TrainState


def gather(x) -> np.ndarray:
  """A global array (or this process's numpy slice of one) → the whole of it as numpy on every process."""
  from jax.experimental import multihost_utils
  return np.asarray(multihost_utils.process_allgather(x, tiled=True)) if jax.process_count() > 1 else np.asarray(x)


@dataclasses.dataclass
class Run:
  cfg: ml_collections.ConfigDict
  data: sources.Dataset
  stats: ClassStats
  method: methods.Method
  model: Any
  mesh: Any
  train_input: Any  # pipeline.TrainInput (host, tf.data) or device.DeviceTrainInput (device data path)
  schedule: Any
  tx: Any
  eval_on_device: bool = False  # evaluation splits on the devices (in-memory data, data.pipeline != 'host')
  cache: Dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)  # device splits, compiled passes

  @property
  def eval_batch_size(self) -> int:
    """Evaluation pads its last batch anyway, so the batch is rounded up to a multiple of the device count."""
    return self._round(self.cfg.train.eval_batch_size)

  def _round(self, size: int) -> int:
    n_dev = self.mesh.devices.size
    return -(-int(size) // n_dev) * n_dev

  def on_device(self, split: str) -> bool:
    """Whether passes over `split` run on the devices: an in-memory split, `data.pipeline` not 'host', and for the
    training split the device data path (so a method's views there are its JAX views)."""
    if split == "train":
      return bool(self.train_input.on_device)
    return bool(self.eval_on_device) and not getattr(self.data, split).file_backed

  def eval_input(self, split: str, batch_size: Optional[int] = None, view: Optional[Callable] = None,
                 view_seed=(0, 0)) -> pipeline.EvalInput:
    """The host (tf.data) batches of a whole split, this process's slices; see `pipeline.EvalInput`."""
    data = getattr(self.data, split)
    size = self.eval_batch_size if batch_size is None else self._round(batch_size)
    b = pipeline.Batches(len(data.labels), size, self.mesh.devices.size, jax.process_index(), jax.process_count())
    return pipeline.EvalInput(data, b, mean=self.data.mean, std=self.data.std, recipe=self.data.recipe, view=view,
                              view_seed=view_seed)

  def device_split(self, split: str) -> device.DeviceEvalInput:
    """The split `split` of `self.data` on the devices, uploaded on first use (again if `data` was replaced)."""
    data = getattr(self.data, split)
    held = self.cache.get(f"split/{split}")
    if held is None or held.split is not data:
      held = device.DeviceEvalInput(data, self.eval_batch_size, self.mesh)
      self.cache[f"split/{split}"] = held
    return held

  def map_split(self, split: str, fn: Callable, operand, *, name: str, device_view: Optional[Callable] = None,
                host_view: Optional[Callable] = None, seed: int = 0, epoch: int = 0,
                batch_size: Optional[int] = None) -> Dict[str, np.ndarray]:
    """`fn(operand, x) -> {name: [B, ...]}` over every row of `split`: returns numpy {name: [N, ...]} in split
    order on every process.

    x is the batch after the split's transform: the evaluation transform when no view is given, else the method's
    view of each row, seeded by (seed, epoch, row). On the devices (`on_device(split)`) that is
    `device_view(images uint8 [B, H, W, C], keys [B, 2]) -> x`, with row i's key `device.example_keys(seed, epoch,
    i)`; on the host it is `host_view(image uint8 [H, W, C], seed int64 [2]) -> tensor` with
    `stateless_fold_in((seed, epoch), i)`. Give both views or neither. `batch_size` (host path; default
    `train.eval_batch_size`) is rounded up to a multiple of the device count. `name` keys the compiled function in
    `cache`: one per distinct fn and view."""
    if (device_view is None) != (host_view is None):
      raise ValueError("map_split needs both views (device_view and host_view) or neither")
    data = getattr(self.data, split)
    n = len(data.labels)
    if self.on_device(split):
      held = self.device_split(split)
      key = f"map/{name}/{seed}/{tuple(self.data.mean)}/{tuple(self.data.std)}"
      if key not in self.cache:
        self.cache[key] = device.map_split(fn, device_view, self.mesh, self.data.mean, self.data.std, seed)
      out = self.cache[key](operand, held.images, jnp.asarray(epoch, jnp.int32))
      return {k: gather(v).reshape((-1,) + v.shape[2:])[:n] for k, v in out.items()}
    key = f"host/{name}"
    if key not in self.cache:
      self.cache[key] = jax.jit(fn, in_shardings=(step_lib.replicated(self.mesh), step_lib.data_sharded(self.mesh)),
                                out_shardings=step_lib.data_sharded(self.mesh))
    compiled = self.cache[key]
    outs: Dict[str, list] = {}
    masks = []
    for batch in self.eval_input(split, batch_size, host_view, (seed, epoch)):
      out = compiled(operand, step_lib.to_global({"image": batch["image"]}, self.mesh)["image"])
      for k, v in out.items():
        outs.setdefault(k, []).append(gather(v))
      masks.append(gather(batch["mask"]))
    mask = np.concatenate(masks).astype(bool)
    return {k: np.concatenate(v)[mask] for k, v in outs.items()}

  def predict(self, state: TrainState, split: str, with_features: bool = False) -> Dict[str, np.ndarray]:
    """Evaluation outputs of a split on the host, in split order: {'logits' [N, C] float32 (the method's test-time
    logits), 'labels' [N] int32, 'index' [N] int64} and 'features' [N, D] when asked; every process gets all."""
    step = step_lib.eval_step_fn(self.method, self.model.apply, with_features)
    out = self.map_split(split, lambda st, x: step(st, {"image": x}), state, name=f"eval/{with_features}")
    data = getattr(self.data, split)
    return dict(out, labels=np.asarray(data.labels, np.int32), index=np.arange(len(data.labels), dtype=np.int64))

  def evaluate(self, state: TrainState, split: str) -> Dict[str, float]:
    """`ltjax.metrics.evaluate` of the split's predictions, with the method's own figures (`eval_metrics`)."""
    p = self.predict(state, split)
    return dict(metrics.evaluate(p["logits"], p["labels"], self.stats),
                **self.method.eval_metrics(p["logits"], p["labels"]))


def _head(cfg) -> str:
  """config.model.head, where 'auto' is the head the supervised loss declares (`losses.head_for`: cosine for LDAM)."""
  return cfg.model.head if cfg.model.head != "auto" else losses.head_for(cfg.loss.name)


def setup(cfg: ml_collections.ConfigDict, *, validated: bool = False) -> Run:
  """Everything a run needs, from a config: data, stats, method, model, mesh, input, optimizer. The config is
  validated first unless the caller just did (`validated=True`)."""
  if not validated:
    config_lib.validate(cfg)
  data = sources.load(cfg.data)
  if cfg.train.select_on == "val" and data.val is None:
    raise ConfigError(f"config.train.select_on = 'val' but the data '{cfg.data.name}' has no validation split: add "
                      "DIR/val/<class>/* to the image tree, or use config.train.select_on = 'test'")
  bounds = tuple(cfg.data.group_bounds)
  ranges = ((0, bounds[0]), (bounds[0], bounds[1]), (bounds[1], data.num_classes)) if bounds else None
  if bounds and bounds[1] >= data.num_classes:
    raise ConfigError(f"config.data.group_bounds = {bounds} must be < num_classes = {data.num_classes}")
  stats = ClassStats.from_labels(data.train.labels, data.num_classes, ranges)
  method = methods.REGISTRY[cfg.method](cfg, data, stats)
  mesh = step_lib.make_mesh(cfg.mesh.num_devices)
  if cfg.train.batch_size % (mesh.devices.size):
    raise ConfigError(
        f"config.train.batch_size = {cfg.train.batch_size} is not divisible by the {mesh.devices.size} devices: "
        "use a multiple of the device count, or set config.mesh.num_devices")
  order_fn = lambda epoch: method.epoch_order(epoch, cfg.seed)  # noqa: E731
  first = order_fn(0)
  epoch_len = len(data.train.labels) if first is None else len(first)
  train_path = device.choose(cfg.data.pipeline, type(method).pipelines(cfg), data.train.file_backed)
  if train_path == "device":  # the global layout: every process builds the whole batch on its devices' slices
    batches = pipeline.Batches(epoch_len, cfg.train.batch_size, mesh.devices.size, 0, 1, cfg.data.drop_remainder)
    order = pipeline.EpochOrder(len(data.train.labels), batches, cfg.seed, order_fn=order_fn)
    augment_fn = method.device_augment() or device_augment.standard(data.mean, data.std, data.crop_padding,
                                                                   data.flip)
    train_input = device.DeviceTrainInput(data.train, batches, mesh, seed=cfg.seed, order=order,
                                          augment_fn=augment_fn)
  else:
    batches = pipeline.Batches(epoch_len, cfg.train.batch_size, mesh.devices.size, jax.process_index(),
                               jax.process_count(), cfg.data.drop_remainder)
    train_input = pipeline.TrainInput(data.train, batches, seed=cfg.seed, mean=data.mean, std=data.std,
                                      crop_padding=data.crop_padding, flip=data.flip,
                                      augment_fn=method.train_augment(), order_fn=order_fn,
                                      recipe=data.recipe)
  eval_on_device = cfg.data.pipeline != "host" and not data.test.file_backed
  model_kw = dict(num_classes=data.num_classes, head=_head(cfg), dtype=cfg.model.dtype)
  model_kw.update(method.model_kwargs())
  model = create_model(cfg.model.name, **model_kw)
  table = optim.lr_table_from_config(cfg, steps_per_epoch=batches.steps_per_epoch)  # [E] or per-step [E, spe]
  schedule = optim.epoch_schedule(table, batches.steps_per_epoch)
  frozen = None
  if cfg.train.trainable:
    frozen = lambda params: jax.tree.map(lambda t: not t, step_lib.trainable_mask(params, cfg.train.trainable))  # noqa: E731
  tx = optim.sgd(schedule, momentum=cfg.optim.momentum, weight_decay=cfg.optim.weight_decay,
                 nesterov=cfg.optim.nesterov, frozen=frozen, lr_mults=tuple(cfg.optim.get("lr_mults", ())))
  return Run(cfg, data, stats, method, model, mesh, train_input, schedule, tx, eval_on_device)


def create_state(run: Run, seed: int, pretrained: bool = False) -> TrainState:
  """Initial state, replicated over the mesh; `pretrained`: parameters and BN statistics initialised per
  `config.init` (ltjax.train.pretrained)."""
  init_rng, method_rng, step_rng = jax.random.split(jax.random.PRNGKey(seed), 3)
  image = run.data.example_input()
  variables = jax.jit(lambda r, x: run.model.init(r, x, train=False))(init_rng, image)
  params, batch_stats = variables["params"], variables.get("batch_stats", {})
  if pretrained:
    params, batch_stats = pretrained_lib.init_from_config(run.cfg, params, batch_stats)
  state = TrainState(step=jnp.zeros([], jnp.int32), params=params, batch_stats=batch_stats,
                     opt_state=run.tx.init(params), method_state=run.method.init_state(method_rng),
                     rng=jax.random.key_data(step_rng))
  return jax.device_put(state, step_lib.replicated(run.mesh))


def predict(run: Run, state: TrainState, split: str, with_features: bool = False) -> Dict[str, np.ndarray]:
  """`run.predict(state, split, with_features)`."""
  return run.predict(state, split, with_features)


def evaluate(run: Run, state: TrainState, split: str) -> Dict[str, float]:
  """`run.evaluate(state, split)`."""
  return run.evaluate(state, split)


def training_diagnostics(run: Run, state: TrainState, split: str = "test") -> Dict[str, float]:
  """Scalar geometry of the current model on a split (ltjax.diagnostics): NC1/NC3, equinorm, cosines, and the mean
  attraction (diagonal) and repulsion (off-diagonal) gradient components."""
  from ltjax import diagnostics
  p = run.predict(state, split, with_features=True)
  c = run.stats.num_classes
  w = jax.device_get(state.params["fc"]["kernel"])
  geo = diagnostics.neural_collapse(p["features"], p["labels"], w, c)
  out = {k: float(v) for k, v in geo.items() if np.ndim(v) == 0}
  g = np.asarray(diagnostics.gradient_components(p["features"], p["logits"], p["labels"]))
  att = np.diag(g)
  out.update(attraction_mean=float(att.mean()), repulsion_mean=float(((g.sum(0) - att) / max(c - 1, 1)).mean()))
  return out
