"""Prune-finetune for Keras CNNs with masks TF-MOT cannot express.

TF-MOT prunes each layer by magnitude; the CNN studies also need one global
threshold (`allocation.allocators.global_masks`); `KeepMasked` (see
`masking`) holds masks at zero while Keras trains.
`GlobalGradual` raises a global magnitude mask during training along the
cubic schedule of Zhu & Gupta (as TF-MOT's `PolynomialDecay`), so a sweep can
be run "with gradual finetuning" under one threshold.
"""

import dataclasses
from typing import Sequence

import numpy as np

from tfprune.allocation import allocators
from tfprune.errors import TfpruneError
from tfprune.keras_compat import keras
from tfprune.training.masking import KeepMasked


@dataclasses.dataclass(frozen=True)
class FitConfig:
  """How to (re)train.

  Attributes:
    epochs: passes over the training data.
    batch_size: examples per step.
    learning_rate: initial Adam learning rate, cosine-decayed to 0.
  """
  epochs: int = 2
  batch_size: int = 128
  learning_rate: float = 1e-4

  def __post_init__(self):
    if self.epochs < 0 or self.batch_size < 1 or not self.learning_rate > 0:
      raise TfpruneError(
          f'need epochs >= 0, batch_size >= 1, learning_rate > 0, got {self}')


def prunable(model: keras.Model) -> list[keras.layers.Layer]:
  """The Conv2D and Dense layers of `model`, in order."""
  return [l for l in model.layers
          if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))]


def kernels(model: keras.Model) -> list[np.ndarray]:
  """The kernels of the prunable layers."""
  return [l.kernel.numpy() for l in prunable(model)]


def kernel_pairs(model: keras.Model, masks: Sequence[np.ndarray | None]):
  """(kernel variable, mask) pairs of the prunable layers that have a mask."""
  return [(l.kernel, m) for l, m in zip(prunable(model), masks) if m is not None]


def fit(model: keras.Model, images: np.ndarray, labels: np.ndarray,
        config: FitConfig, callbacks: Sequence[keras.callbacks.Callback] = (),
        verbose: int = 0) -> keras.Model:
  """Compiles `model` with Adam (cosine decay) and trains it in place."""
  if config.epochs == 0:
    return model
  steps = config.epochs * -(-len(labels) // config.batch_size)
  schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps)
  model.compile(optimizer=keras.optimizers.Adam(schedule),
                loss='sparse_categorical_crossentropy', metrics=['accuracy'])
  model.fit(images, labels, batch_size=config.batch_size, epochs=config.epochs,
            callbacks=list(callbacks), verbose=verbose)
  return model


def cubic_levels(target: float, steps: int) -> list[float]:
  """Levels target * (1 - (1 - j/steps)^3) for j = 1..steps, ending at target."""
  return [target * (1 - (1 - j / steps) ** 3) for j in range(1, steps + 1)]


class GlobalGradual(keras.callbacks.Callback):
  """Raises a global magnitude mask to `target` over the first 75% of training.

  At `prune_steps` evenly spaced batches, from the first to 75% of the total,
  the masks grow to the next level of `cubic_levels` (masks only ever shrink);
  the last quarter finetunes at the target.
  """

  def __init__(self, model: keras.Model, target: float, total_batches: int,
               prune_steps: int = 4):
    super().__init__()
    if prune_steps < 1:
      raise TfpruneError(f'prune_steps must be at least 1, got {prune_steps}')
    self._model_ref = model
    self.keep = KeepMasked()
    last = int(0.75 * max(total_batches - 1, 0))
    self._events = {
        round(j * last / max(prune_steps - 1, 1)): level
        for j, level in enumerate(cubic_levels(target, prune_steps))}
    self._batch = 0
    self.masks: list[np.ndarray] | None = None

  def _prune(self, level: float) -> None:
    self.masks = allocators.global_masks(
        kernels(self._model_ref), level, self.masks)
    self.keep.set_masks(kernel_pairs(self._model_ref, self.masks))

  def on_train_batch_begin(self, batch, logs=None):
    if self._batch in self._events:
      self._prune(self._events[self._batch])
    self._batch += 1

  def on_train_batch_end(self, batch, logs=None):
    self.keep.on_train_batch_end(batch, logs)
