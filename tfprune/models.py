"""Keras models by name, built with `tf_keras` (see `keras_compat`).

Each builder takes the dataset's image shape and class count and returns an
uncompiled `keras.Sequential` whose Dense layers map one-to-one, in order, to
the layers of a `network.Network` (the `.npy` weight folder layout).
"""

from typing import Callable, Sequence

import numpy as np

from tfprune.errors import TfpruneError
from tfprune.keras_compat import keras
from tfprune.network import Network

MLP_HIDDEN_UNITS = (1000, 1000, 500, 200)


def build_mlp(image_shape: Sequence[int], num_classes: int,
              dropout: float = 0.0) -> keras.Sequential:
  """The MLP 784-1000-1000-500-200-10 of the original pruning challenge.

  Args:
    image_shape: shape of one input image; it is flattened.
    num_classes: units of the softmax output layer.
    dropout: dropout rate after each hidden layer during training (0: none).
      Dropout has no weights, so the weight layout is the same either way.

  Returns:
    An uncompiled model: Flatten, four ReLU Dense layers, a softmax Dense layer.
  """
  if not 0.0 <= dropout < 1.0:
    raise TfpruneError(f'dropout must be in [0, 1), got {dropout}')
  layers = [keras.Input(shape=tuple(image_shape)), keras.layers.Flatten()]
  for i, units in enumerate(MLP_HIDDEN_UNITS, start=1):
    layers.append(keras.layers.Dense(units, activation='relu', name=f'dense_{i}'))
    if dropout:
      layers.append(keras.layers.Dropout(dropout))
  layers.append(keras.layers.Dense(num_classes, activation='softmax',
                                   name=f'dense_{len(MLP_HIDDEN_UNITS) + 1}'))
  return keras.Sequential(layers, name='mlp')


MODELS: dict[str, Callable[..., keras.Model]] = {'mlp': build_mlp}


def get(name: str) -> Callable[..., keras.Model]:
  """Returns the builder of the model called `name`.

  Raises:
    ValueError: `name` is not in `MODELS`.
  """
  if name not in MODELS:
    raise TfpruneError(f'unknown model {name!r}: choose one of {", ".join(MODELS)}')
  return MODELS[name]


def dense_layers(model: keras.Model) -> list[keras.layers.Dense]:
  """The model's Dense layers in order."""
  return [l for l in model.layers if isinstance(l, keras.layers.Dense)]


def to_network(model: keras.Model) -> Network:
  """Copies the Dense kernels and biases of `model` into a `Network`."""
  layers = dense_layers(model)
  return Network(tuple(l.kernel.numpy() for l in layers),
                 tuple(l.bias.numpy() for l in layers))


def load_network(model: keras.Model, network: Network) -> keras.Model:
  """Sets the Dense weights of `model` from `network` and returns the model.

  Raises:
    TfpruneError: the layer count or a shape differs, naming the layer.
  """
  layers = dense_layers(model)
  if len(layers) != network.num_layers:
    raise TfpruneError(
        f'model {model.name} has {len(layers)} dense layers but the weights have '
        f'{network.num_layers}: use weights made for this model')
  for i, (layer, kernel, bias) in enumerate(
      zip(layers, network.kernels, network.biases), start=1):
    if tuple(layer.kernel.shape) != kernel.shape:
      raise TfpruneError(
          f'layer {i}: model {model.name} expects a kernel of shape '
          f'{tuple(layer.kernel.shape)}, the weights have {kernel.shape}: use '
          'weights made for this model')
    layer.set_weights([np.asarray(kernel), np.asarray(bias)])
  return model
