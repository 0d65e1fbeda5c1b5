"""Pruning while training: TF-MOT wrappers (weights) or mask callbacks (units).

One `PruningRun` trains one model to one target sparsity:

- weight level: `tfmot.sparsity.keras.prune_low_magnitude` wraps the chosen
  Dense layers, `UpdatePruningStep` drives the schedule, `PruningSummaries`
  logs per-layer sparsity for TensorBoard, `strip_pruning` removes the
  wrappers at the end;
- unit level: TF-MOT has no structured criterion, so `UnitPruning` applies
  `pruning.unit_l2_mask` (whole neurons: kernel column and bias) at the same
  schedule's steps, and `masking.KeepMasked` keeps them at zero.

Both procedures (gradual and iterative, see `schedules`) run as one
`resumable.fit`, which checkpoints every epoch and resumes an interrupted run
where it stopped, with the same result as an uninterrupted run. After
training, the sparsity of each pruned layer is measured and `check_reached`
fails loudly if it misses the target.
"""

import dataclasses
import math
import pathlib
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot

from tfprune import registry
from tfprune.criteria import pruning
from tfprune.data import datasets
from tfprune.errors import TfpruneError
from tfprune.keras_compat import keras
from tfprune.keras_io import models
from tfprune.training import epoch_log
from tfprune.training import masking
from tfprune.training import resumable
from tfprune.training import schedules

PROCEDURES = ('gradual', 'iterative')
GRANULARITIES = ('weight', 'unit')
SCHEDULES = ('polynomial', 'constant')


@dataclasses.dataclass(frozen=True)
class PruningRun:
  """One training run that prunes to one target.

  Attributes:
    procedure: 'gradual' (smooth schedule) or 'iterative' (K cycles).
    granularity: 'weight' (TF-MOT magnitude) or 'unit' (whole neurons, L2).
    target: final sparsity of each pruned layer, a fraction in [0, 1).
    schedule: gradual only: 'polynomial' (Zhu & Gupta) or 'constant'.
    epochs: gradual only: training epochs.
    begin_step: gradual only: first mask update.
    end_step: gradual only: last mask update (None: derived, see `schedules`).
    frequency: gradual only: steps between updates (None: derived).
    cycles: iterative only: prune-finetune cycles K.
    cycle_epochs: iterative only: fine-tuning epochs per cycle E.
    batch_size: global batch size (split across replicas).
    learning_rate: initial Adam learning rate, cosine-decayed over the run.
    prune_output_layer: prune the output layer too (default: hidden only).
  """
  procedure: str
  granularity: str
  target: float
  schedule: str = 'polynomial'
  epochs: int = 8
  begin_step: int = 0
  end_step: int | None = None
  frequency: int | None = None
  cycles: int = 3
  cycle_epochs: int = 3
  batch_size: int = 128
  learning_rate: float = 1e-4
  prune_output_layer: bool = False

  def __post_init__(self):
    for name, allowed in (('procedure', PROCEDURES),
                          ('granularity', GRANULARITIES),
                          ('schedule', SCHEDULES)):
      registry.check_choice(getattr(self, name), allowed, name)
    schedules.check_sparsity(self.target)
    for name in ('epochs', 'cycles', 'cycle_epochs', 'batch_size'):
      if getattr(self, name) < 1:
        raise TfpruneError(f'{name} must be at least 1, got {getattr(self, name)}')
    if not self.learning_rate > 0:
      raise TfpruneError(f'learning_rate must be positive, got {self.learning_rate}')

  @property
  def total_epochs(self) -> int:
    return self.epochs if self.procedure == 'gradual' else (
        self.cycles * self.cycle_epochs)

  def steps_per_epoch(self, examples: int) -> int:
    return math.ceil(examples / self.batch_size)

  def pruning_schedule(self, examples: int) -> tfmot.sparsity.keras.PruningSchedule:
    """The TF-MOT schedule of this run for a training split of `examples`."""
    per_epoch = self.steps_per_epoch(examples)
    if self.procedure == 'iterative':
      return schedules.CycleSparsity(self.target, self.cycles,
                                     self.cycle_epochs * per_epoch)
    steps = schedules.plan_gradual(self.epochs * per_epoch, self.begin_step,
                                   self.end_step, self.frequency)
    make = schedules.polynomial if self.schedule == 'polynomial' else (
        schedules.constant)
    return make(self.target, steps)


def pruned_layer_names(model: keras.Model, prune_output_layer: bool) -> list[str]:
  """Names of the Dense layers a run prunes: hidden ones, plus the output one."""
  dense = [l.name for l in models.dense_layers(model)]
  return [dense[i] for i in pruning.prunable_layers(len(dense), prune_output_layer)]


def wrap(model: keras.Model, names: Sequence[str],
         schedule: tfmot.sparsity.keras.PruningSchedule) -> keras.Model:
  """`model` with the layers called `names` wrapped by `prune_low_magnitude`.

  The wrappers reuse the layers, so the model's trained weights carry over.
  """
  chosen = set(names)

  def clone(layer):
    if layer.name in chosen:
      return tfmot.sparsity.keras.prune_low_magnitude(
          layer, pruning_schedule=schedule)
    return layer
  return keras.models.clone_model(model, clone_function=clone)


def strip(model: keras.Model) -> keras.Model:
  """The model without pruning wrappers (the masked weights stay zero)."""
  return tfmot.sparsity.keras.strip_pruning(model)


def kernels(model: keras.Model, names: Sequence[str]) -> list[tf.Variable]:
  """The kernel variables of the layers called `names`, wrapped or not."""
  by_name = {getattr(l, 'layer', l).name: getattr(l, 'layer', l)
             for l in model.layers}
  return [by_name[name].kernel for name in names]


def sparsity(variables: Sequence[tf.Variable]) -> float:
  """Fraction of zero entries over all of `variables`."""
  zeros = sum(int(np.sum(v.numpy() == 0)) for v in variables)
  return zeros / sum(int(np.prod(v.shape)) for v in variables)


def as_percent(sparsity) -> float:
  """A schedule's float32 sparsity as the percentage it stands for.

  float32(0.7) is 0.69999999; read as 69.999999% it would prune 699 units of
  1000 instead of 700. float32 carries about 7 significant digits, so four
  decimals of a percentage are exact.
  """
  return round(100 * float(sparsity), 4)


class UnitPruning(masking.KeepMasked):
  """Prunes whole units of Dense layers at a schedule's steps, keeps them zero.

  A unit is pruned by zeroing its kernel column and its bias, so it outputs
  exactly 0 and compaction removes it. The current masks are read back from
  the weights when training starts, which makes resuming exact.
  """

  def __init__(self, layers: Sequence[keras.layers.Dense],
               schedule: tfmot.sparsity.keras.PruningSchedule):
    super().__init__()
    self.layers = list(layers)
    self.schedule = schedule

  def on_train_begin(self, logs=None):
    self.set_masks(self._pairs([np.any(l.kernel.numpy() != 0, axis=0)
                                for l in self.layers]))

  def on_train_batch_begin(self, batch, logs=None):
    # The k-th batch is step k, as on TF-MOT's counter.
    step = int(self.model.optimizer.iterations.numpy()) + 1
    should_prune, target = self.schedule(step)
    if not bool(should_prune):
      return
    k = as_percent(target)
    units = []
    for layer, (_, mask) in zip(self.layers, self.pairs[::2]):
      units.append(np.any(pruning.unit_l2_mask(layer.kernel.numpy(), k, mask),
                          axis=0))
    self.set_masks(self._pairs(units))

  def _pairs(self, units: Sequence[np.ndarray]):
    pairs = []
    for layer, keep in zip(self.layers, units):
      pairs.append((layer.kernel, np.broadcast_to(keep, layer.kernel.shape).copy()))
      pairs.append((layer.bias, keep.copy()))
    return pairs


@dataclasses.dataclass(frozen=True)
class LayerSparsity:
  """Measured sparsity of one pruned layer after training.

  Attributes:
    name: the layer.
    size: weights in its kernel.
    zeros: zero weights in its kernel.
    required: zeros the target asks for (TF-MOT's count for weights, the
      pruned units' weights for units).
    nonfinite: NaN/Inf weights in its kernel (a loss that became NaN).
  """
  name: str
  size: int
  zeros: int
  required: int
  nonfinite: int = 0

  @property
  def sparsity(self) -> float:
    return self.zeros / self.size


def measure(model: keras.Model, names: Sequence[str], run: PruningRun
            ) -> list[LayerSparsity]:
  """Per-layer sparsity of a stripped model's pruned layers."""
  out = []
  for name, kernel in zip(names, kernels(model, names)):
    w = kernel.numpy()
    if run.granularity == 'weight':
      required = schedules.tfmot_pruned_count(w.size, run.target)
    else:
      required = pruning.prune_count(round(100 * run.target, 6), w.shape[-1]) * (
          w.size // w.shape[-1])
    out.append(LayerSparsity(name, w.size, int(np.sum(w == 0)), required,
                             int(w.size - np.count_nonzero(np.isfinite(w)))))
  return out


def check_reached(layers: Sequence[LayerSparsity], target: float) -> None:
  """Raises TfpruneError naming the first layer short of its target.

  Raises:
    TfpruneError: a layer has fewer zero weights than the target requires.
  """
  for layer in layers:
    if layer.nonfinite:
      raise TfpruneError(
          f'layer {layer.name} holds {layer.nonfinite} NaN/Inf weights after '
          'training: the loss became NaN, so the schedule could not reach its '
          'target; check the training data for NaN/Inf or lower --learning_rate')
  for layer in layers:
    if layer.zeros < layer.required:
      raise TfpruneError(
          f'layer {layer.name} reached sparsity {layer.sparsity:.4%} but the '
          f'target is {target:.4%} ({layer.zeros} of {layer.required} weights '
          'pruned): the schedule never hit its end step; check --end_step, '
          '--frequency and --epochs')


@dataclasses.dataclass(frozen=True)
class TrainedRun:
  """What `train` returns.

  Attributes:
    model: the trained model, pruning wrappers stripped.
    layers: measured sparsity of each pruned layer (checked against the target).
    keras_accuracy: test accuracy of the pruned model by `Model.evaluate`.
  """
  model: keras.Model
  layers: list[LayerSparsity]
  keras_accuracy: float


def train(run: PruningRun, build: Callable[[], keras.Model],
          train_split: datasets.Split, test_split: datasets.Split,
          strategy: tf.distribute.Strategy, work_dir: str | pathlib.Path,
          verbose: int = 2,
          callbacks: Sequence[keras.callbacks.Callback] = (),
          backup_dir: str | pathlib.Path | None = None) -> TrainedRun:
  """Trains and prunes one model; resumes from `work_dir/backup` if present.

  Args:
    run: what to do.
    build: returns the starting model (weights loaded), called in the
      strategy's scope.
    train_split: training data.
    test_split: evaluated after every epoch (logged, never used to choose).
    strategy: the `tf.distribute` strategy to train under.
    work_dir: holds `epochs.csv`, `timing.json` (seconds per epoch),
      `tensorboard/` and the per-epoch backup (deleted when training finishes).
    verbose: Keras progress output (0 silent, 1 bar, 2 a line per epoch).
    callbacks: more Keras callbacks, run last, after the epoch's checkpoint
      (tests interrupt training here).
    backup_dir: the checkpoint folder instead of `work_dir/backup`: every
      worker of a `MultiWorkerMirroredStrategy` run passes the chief's.

  Returns:
    The stripped model and its measured per-layer sparsity.

  Raises:
    TfpruneError: a pruned layer misses its target sparsity.
  """
  work_dir = pathlib.Path(work_dir)
  schedule = run.pruning_schedule(len(train_split))
  total_steps = run.total_epochs * run.steps_per_epoch(len(train_split))
  with strategy.scope():
    with resumable.generator_rng():  # a resumed run replays its dropout
      model = build()
      names = pruned_layer_names(model, run.prune_output_layer)
      if run.granularity == 'weight':
        model = wrap(model, names, schedule)
    if run.granularity == 'weight':
      pruners = [tfmot.sparsity.keras.UpdatePruningStep(),
                 tfmot.sparsity.keras.PruningSummaries(
                     log_dir=str(work_dir / 'tensorboard'))]
    else:
      pruners = [UnitPruning([model.get_layer(n) for n in names], schedule)]
    learning_rate = keras.optimizers.schedules.CosineDecay(
        run.learning_rate, total_steps)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss='sparse_categorical_crossentropy', metrics=['accuracy'])
  pruned_kernels = kernels(model, names)
  resumable.fit(model, train_split, test_split, batch_size=run.batch_size,
                epochs=run.total_epochs, work_dir=work_dir, callbacks=[
                    *pruners,
                    epoch_log.EpochLog(work_dir / epoch_log.LOG_NAME,
                                       work_dir / epoch_log.TIMING_NAME,
                                       lambda: sparsity(pruned_kernels))],
                more_callbacks=callbacks, verbose=verbose,
                backup_dir=backup_dir)
  _, keras_accuracy = model.evaluate(test_split.images, test_split.labels,
                                    batch_size=1000, verbose=0)
  stripped = strip(model)
  layers = measure(stripped, names, run)
  check_reached(layers, run.target)
  return TrainedRun(stripped, layers, float(keras_accuracy))
