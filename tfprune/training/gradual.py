"""One pruning-while-training run: its settings, TF-MOT's wrappers, the sparsity it must reach.

A `PruningRun` says how one model is trained to one target sparsity
(gradual or iterative, see `schedules`); `graph_gradual.train` runs it on
any graph's tf_keras twin and `tfprune.keras.study` on a Keras 3 model. At
weight level `wrap` puts TF-MOT's `prune_low_magnitude` on the chosen layers
(`UpdatePruningStep` drives the schedule) and `strip` removes the wrappers
at the end. After training, each pruned layer's `LayerSparsity` is measured
and `check_reached` fails loudly if one misses the target.
"""

import dataclasses
import math
from typing import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot

from tfprune import registry
from tfprune.errors import TfpruneError
from tfprune.keras_compat import keras
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
