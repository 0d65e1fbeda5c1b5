"""After pruning: the masks folded into a plain Keras model, or the smaller model it computes.

`strip_pruning(model)` applies the masks one last time and detaches the
pruning state: the model is then the user's own layers with zeros in them,
saved as `.keras` and loaded without tfprune. `compact(model)` goes through
the graph (`tfprune.from_keras`, `tfprune.compact`, `tfprune.to_keras`):
channels a channel criterion removed are physically gone, and the smaller
Keras 3 model is checked to compute what the pruned one computes.
"""

import keras
import numpy as np

from tfprune import api
from tfprune.errors import TfpruneError
from tfprune.keras import in_step
from tfprune.keras import pruner as pruner_lib
from tfprune.keras_io import verify

# The compacted model must agree with the masked one to float32 rounding of
# sums over a few thousand terms, relative to the outputs' scale.
RTOL = 1e-4


def strip_pruning(model):
  """Folds the masks into the weights and removes the pruning state, in place.

  The variables get their own constraints back and the optimizer forgets
  the masks, so saving the model saves the user's model and optimizer only.

  Returns:
    `model` itself, now a plain Keras model (no tfprune state or class).
  """
  state = getattr(model, pruner_lib.STATE_ATTR, None)
  if state is None:
    return model
  pruner_lib.sync(model)
  for variable, mask in zip(state.masked, state.masks):
    variable.assign(keras.ops.multiply(variable, keras.ops.cast(mask, variable.dtype)))
  in_step.detach(state.optimizer, state.masked, state.masks)
  object.__delattr__(model, pruner_lib.STATE_ATTR)
  return model


def compact(model, data: np.ndarray | None = None):
  """The smaller Keras 3 model computing what the channel-pruned `model` computes.

  Strips the pruning state first (see `strip_pruning`).

  Args:
    model: a functional or Sequential Keras 3 model.
    data: optional examples to verify the import on, besides random inputs.

  Raises:
    TfpruneError: the model cannot be imported, or the compacted model's
      outputs differ from the pruned model's.
  """
  strip_pruning(model)
  small = api.to_keras(api.compact(api.from_keras(model, data=data)), 'keras3')
  x = verify.probe_inputs(tuple(model.inputs[0].shape[1:]), 4)
  want = keras.ops.convert_to_numpy(model(x, training=False))
  got = keras.ops.convert_to_numpy(small(x, training=False))
  scale = max(float(np.max(np.abs(want))), 1e-6)
  if not np.allclose(got, want, rtol=RTOL, atol=RTOL * scale):
    raise TfpruneError('the compacted model computes other outputs than the '
                       f'pruned one (max difference {np.max(np.abs(got - want)):.3g})')
  return small
