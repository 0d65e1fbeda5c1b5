"""Keep pruned weights at zero while a Keras model trains.

A mask is a boolean array shaped like a weight variable, True where the weight
is kept, as made by the criteria of `pruning`. `KeepMasked` multiplies each
masked variable by its mask before training and after every batch, so no
optimizer step revives a pruned weight. Its masks can be replaced between
batches, which is how gradual and iterative schedules without TF-MOT (unit
pruning, lottery tickets, dynamic pruning) shrink them.
"""

from typing import Sequence

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.keras_compat import keras

MaskedVariables = Sequence[tuple[tf.Variable, np.ndarray]]


def check_masks(pairs: MaskedVariables) -> None:
  """Raises TfpruneError unless every mask is boolean and shaped like its variable."""
  for variable, mask in pairs:
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
      raise TfpruneError(f'the mask of {variable.name} is {mask.dtype}, not bool: '
                         'build masks with the functions of tfprune.criteria.pruning')
    if mask.shape != tuple(variable.shape):
      raise TfpruneError(f'the mask of {variable.name} has shape {mask.shape} but '
                         f'the variable has {tuple(variable.shape)}')


def apply_masks(pairs: MaskedVariables) -> None:
  """Sets every masked-out entry of each variable to zero, in place."""
  for variable, mask in pairs:
    variable.assign(variable * tf.constant(mask, dtype=variable.dtype))


def kept(variable: tf.Variable) -> np.ndarray:
  """The mask of a variable's current non-zero entries."""
  return np.asarray(variable.numpy()) != 0


class KeepMasked(keras.callbacks.Callback):
  """Applies masks at the start of training and after every training batch.

  Attributes:
    pairs: the (variable, mask) pairs currently enforced.
  """

  def __init__(self, pairs: MaskedVariables = ()):
    super().__init__()
    self.pairs: list[tuple[tf.Variable, np.ndarray]] = []
    self.set_masks(pairs)

  def set_masks(self, pairs: MaskedVariables) -> None:
    """Replaces the enforced masks and applies them at once."""
    check_masks(pairs)
    self.pairs = [(v, np.asarray(m)) for v, m in pairs]
    self._constants = [(v, tf.constant(m, dtype=v.dtype)) for v, m in self.pairs]
    self._apply()

  def _apply(self) -> None:
    for variable, mask in self._constants:
      variable.assign(variable * mask)

  def on_train_begin(self, logs=None):
    self._apply()

  def on_train_batch_end(self, batch, logs=None):
    self._apply()
