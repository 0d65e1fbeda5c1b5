"""Keras models by name, built with `tf_keras` (see `keras_compat`).

Each builder takes the dataset's image shape and class count (and `dropout`)
and returns an uncompiled Keras model. The MLP's Dense layers map one-to-one,
in order, to the layers of a `.npy` weight folder; the CNNs (`fashion_cnn`,
`lenet5`, `resnet18`) are described in their builders' docstrings, with their
exact parameter counts. `with_weights` sets a weight folder's graph into a
registry model, reading both through `graph.folder_layers` (the model
through the one tracer, `keras_io.trace`).
"""

from typing import Callable, Sequence

import numpy as np

from tfprune import registry
from tfprune.errors import TfpruneError
from tfprune.graph import folder_layers
from tfprune.graph.ir import Graph
from tfprune.keras_compat import keras
from tfprune.keras_io import trace

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


def build_fashion_cnn(image_shape: Sequence[int], num_classes: int,
                      dropout: float = 0.3) -> keras.Sequential:
  """A small Fashion-MNIST CNN: two conv-BN-ReLU-pool blocks, two Dense layers.

  Conv 3x3x32 (same) - BN - ReLU - max-pool 2, Conv 3x3x64 (same) - BN -
  ReLU - max-pool 2, Flatten, Dense 128 ReLU, Dropout, Dense softmax. On
  28x28x1 inputs it has 422,026 parameters (421,834 trainable; the rest are
  batch-norm moving statistics).

  Args:
    image_shape: shape of one input image (height, width, channels).
    num_classes: units of the softmax output layer.
    dropout: dropout rate before the output layer while training.
  """
  _check_dropout(dropout)
  layers = [keras.Input(shape=tuple(image_shape))]
  for i, filters in enumerate((32, 64), start=1):
    layers += [keras.layers.Conv2D(filters, 3, padding='same', name=f'conv_{i}'),
               keras.layers.BatchNormalization(name=f'bn_{i}'),
               keras.layers.ReLU(name=f'relu_{i}'),
               keras.layers.MaxPooling2D(2, name=f'pool_{i}')]
  layers += [keras.layers.Flatten(name='flatten'),
             keras.layers.Dense(128, activation='relu', name='dense_1'),
             keras.layers.Dropout(dropout, name='dropout'),
             keras.layers.Dense(num_classes, activation='softmax', name='dense_2')]
  return keras.Sequential(layers, name='fashion_cnn')


def build_lenet5(image_shape: Sequence[int], num_classes: int,
                 dropout: float = 0.0) -> keras.Sequential:
  """LeNet-5 for 28x28 inputs, with ReLU and max-pooling.

  Conv 5x5x6 (same) - ReLU - max-pool 2, Conv 5x5x16 (valid) - ReLU -
  max-pool 2, Flatten (5x5x16 = 400), Dense 120, Dense 84, Dense softmax. On
  28x28x1 inputs it has 61,706 parameters.

  Args:
    image_shape: shape of one input image (height, width, channels).
    num_classes: units of the softmax output layer.
    dropout: dropout rate after each hidden Dense layer while training.
  """
  _check_dropout(dropout)
  layers = [keras.Input(shape=tuple(image_shape)),
            keras.layers.Conv2D(6, 5, padding='same', activation='relu',
                                name='conv_1'),
            keras.layers.MaxPooling2D(2, name='pool_1'),
            keras.layers.Conv2D(16, 5, padding='valid', activation='relu',
                                name='conv_2'),
            keras.layers.MaxPooling2D(2, name='pool_2'),
            keras.layers.Flatten(name='flatten')]
  for i, units in enumerate((120, 84), start=1):
    layers.append(keras.layers.Dense(units, activation='relu', name=f'dense_{i}'))
    if dropout:
      layers.append(keras.layers.Dropout(dropout))
  layers.append(keras.layers.Dense(num_classes, activation='softmax',
                                   name='dense_3'))
  return keras.Sequential(layers, name='lenet5')


RESNET18_STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))


def build_resnet18(image_shape: Sequence[int], num_classes: int,
                   dropout: float = 0.0, width: float = 1.0,
                   weight_decay: float = 0.0) -> keras.Model:
  """ResNet-18, CIFAR variant: 3x3 stem, no max-pool, 4 stages of 2 blocks.

  Stem Conv 3x3 (64w) - BN - ReLU; stages of 64w, 128w, 256w, 512w filters
  (strides 1, 2, 2, 2), each two BasicBlocks (3x3 conv - BN - ReLU - 3x3 conv
  - BN, plus a 1x1 conv - BN shortcut where the shape changes); global
  average pooling; Dense softmax. Convolutions have no bias. At width 1 on
  32x32x3 inputs with 10 classes: 11,183,562 parameters, of which 11,173,962
  trainable (the PyTorch reference's count; the other 9,600 are batch-norm
  moving statistics).

  Args:
    image_shape: shape of one input image (height, width, channels); any
      size of at least 8x8 works (global pooling at the end).
    num_classes: units of the softmax output layer.
    dropout: dropout rate before the output layer while training.
    width: multiplier of every stage's filter count (e.g. 0.25 on CPU).
    weight_decay: L2 coefficient; adds (weight_decay / 2) * ||w||^2 per conv
      and dense kernel, i.e. PyTorch's SGD `weight_decay` on the gradient.
  """
  _check_dropout(dropout)
  if not width > 0:
    raise TfpruneError(f'width must be positive, got {width}')
  if weight_decay < 0:
    raise TfpruneError(f'weight_decay must be >= 0, got {weight_decay}')
  regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay else None

  def conv(x, filters, size, strides, name):
    return keras.layers.Conv2D(filters, size, strides=strides, padding='same',
                               use_bias=False, kernel_regularizer=regularizer,
                               name=name)(x)

  def bn(x, name):
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5,
                                           name=name)(x)

  inputs = keras.Input(shape=tuple(image_shape))
  stem = max(1, round(64 * width))
  x = keras.layers.ReLU()(bn(conv(inputs, stem, 3, 1, 'conv_stem'), 'bn_stem'))
  for s, (filters, stride) in enumerate(RESNET18_STAGES, start=1):
    filters = max(1, round(filters * width))
    for b in (1, 2):
      name = f'stage{s}_block{b}'
      strides = stride if b == 1 else 1
      y = keras.layers.ReLU()(bn(conv(x, filters, 3, strides, f'{name}_conv1'),
                                 f'{name}_bn1'))
      y = bn(conv(y, filters, 3, 1, f'{name}_conv2'), f'{name}_bn2')
      if strides != 1 or x.shape[-1] != filters:
        x = bn(conv(x, filters, 1, strides, f'{name}_shortcut'),
               f'{name}_shortcut_bn')
      x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
  x = keras.layers.GlobalAveragePooling2D()(x)
  if dropout:
    x = keras.layers.Dropout(dropout)(x)
  outputs = keras.layers.Dense(num_classes, activation='softmax',
                               kernel_regularizer=regularizer, name='dense')(x)
  return keras.Model(inputs, outputs, name='resnet18')


def build_penguin_mlp_tanh(image_shape: Sequence[int], num_classes: int,
                           dropout: float = 0.0) -> keras.Sequential:
  """The dynamic-pruning reference's penguins MLP, faithfully: 12-12-3, tanh out.

  Dense 12 ReLU, Dense `num_classes` tanh. The reference trains it with
  PyTorch's cross-entropy, which applies softmax to the tanh outputs as if
  they were logits; trained here the same way (`classifier.loss_for` picks
  from_logits for any output that is not softmax). Logits in [-1, 1] bound
  its 3-class loss below by log(1 + 2/e^2) ~ 0.2395 even when every example
  is right. 12*12+12 + 12*3+3 = 195 parameters on 12 features.

  Args:
    image_shape: shape of one example, (12,) for penguins; it is flattened.
    num_classes: output units.
    dropout: dropout rate after the hidden layer while training (0: none).
  """
  return _penguin_mlp(image_shape, num_classes, dropout, 'tanh',
                      'penguin_mlp_tanh')


def build_penguin_mlp(image_shape: Sequence[int], num_classes: int,
                      dropout: float = 0.0) -> keras.Sequential:
  """The penguins MLP corrected: 12-12-3 with linear logits (softmax in the loss).

  Same layers and parameter count as `build_penguin_mlp_tanh`, without the
  tanh that bounds the logits.
  """
  return _penguin_mlp(image_shape, num_classes, dropout, None, 'penguin_mlp')


def _penguin_mlp(image_shape: Sequence[int], num_classes: int, dropout: float,
                 output_activation: str | None, name: str) -> keras.Sequential:
  _check_dropout(dropout)
  layers = [keras.Input(shape=tuple(image_shape)), keras.layers.Flatten(),
            keras.layers.Dense(12, activation='relu', name='dense_1')]
  if dropout:
    layers.append(keras.layers.Dropout(dropout))
  layers.append(keras.layers.Dense(num_classes, activation=output_activation,
                                   name='dense_2'))
  return keras.Sequential(layers, name=name)


def _check_dropout(dropout: float) -> None:
  if not 0.0 <= dropout < 1.0:
    raise TfpruneError(f'dropout must be in [0, 1), got {dropout}')


MODELS: dict[str, Callable[..., keras.Model]] = {
    'mlp': build_mlp,
    'fashion_cnn': build_fashion_cnn,
    'lenet5': build_lenet5,
    'resnet18': build_resnet18,
    'penguin_mlp_tanh': build_penguin_mlp_tanh,
    'penguin_mlp': build_penguin_mlp,
}


# Models whose first layer is a 2-D convolution: they need (height, width,
# channels) images, not feature vectors such as the penguins table.
IMAGE_MODELS = ('fashion_cnn', 'lenet5', 'resnet18')


def check_fits(name: str, input_shape: Sequence[int], dataset: str) -> None:
  """Refuses a CNN for a dataset whose examples are not images.

  Raises:
    TfpruneError: `name` is in `IMAGE_MODELS` and `input_shape` is not
      (height, width, channels).
  """
  if name in IMAGE_MODELS and len(tuple(input_shape)) != 3:
    vector_models = [m for m in MODELS if m not in IMAGE_MODELS]
    raise TfpruneError(
        f'model {name} is a CNN and needs images, but {dataset} examples are '
        f'vectors of shape {tuple(input_shape)}: choose an image dataset or one '
        f'of the models {", ".join(vector_models)}')


def get(name: str) -> Callable[..., keras.Model]:
  """Returns the builder of the model called `name`.

  Raises:
    ValueError: `name` is not in `MODELS`.
  """
  return registry.lookup(MODELS, name, 'model')


def dense_layers(model: keras.Model) -> list[keras.layers.Dense]:
  """The model's Dense layers in order."""
  return [l for l in model.layers if isinstance(l, keras.layers.Dense)]


def weight_layers(model: keras.Model) -> list[keras.layers.Layer]:
  """The model's Conv2D and Dense layers in order: the prunable layers."""
  return [l for l in model.layers
          if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))]


def with_weights(model: keras.Model, graph: Graph) -> keras.Model:
  """Sets the weights of `model` from a weight folder's `graph`; returns the model.

  Both are read as stored layers (`folder_layers.read`): a dense chain's
  kernels go to the model's Dense layers in order; otherwise each layer's
  spec (kind, strides, padding, pooling, batch norm, connections) must be
  the model's, and its kernel, bias and batch norm are set. A layer without
  bias takes a zero bias only.

  Raises:
    TfpruneError: the layer count, a shape, a layer kind or a connection
      differs, or a layer without bias would get a non-zero one, naming the
      layer.
  """
  stored = folder_layers.read(graph)
  if stored[0].spec is None:
    return _load_dense_chain(model, stored)
  layers = weight_layers(model)
  for i, (layer, s) in enumerate(zip(layers, stored), start=1):
    if tuple(layer.kernel.shape) != s.kernel.shape:
      raise TfpruneError(
          f'layer {i} ({layer.name}): model {model.name} expects a kernel of '
          f'shape {tuple(layer.kernel.shape)}, the weights have {s.kernel.shape}: '
          'use weights made for this model')
  if len(layers) != len(stored):
    raise TfpruneError(
        f'model {model.name} has {len(layers)} conv/dense layers but the '
        f'weights have {len(stored)}: use weights made for this model')
  expected = folder_layers.read(trace.trace(model).graph)
  for i, (want, got) in enumerate(zip(expected, stored), start=1):
    if want.spec != got.spec:
      raise TfpruneError(
          f'layer {i} ({want.weight_node}): model {model.name} has '
          f'{want.spec}, the weights were saved from {got.spec}: use weights '
          'made for this model')
  for i, (want, got) in enumerate(zip(expected, stored), start=1):
    layer = model.get_layer(want.weight_node)
    if not layer.use_bias and np.any(got.bias):
      raise TfpruneError(
          f'layer {i} ({layer.name}): model {model.name} has no bias there '
          'but the weights have a non-zero one: use weights made for this model')
    layer.set_weights([np.asarray(got.kernel), np.asarray(got.bias)]
                      if layer.use_bias else [np.asarray(got.kernel)])
    if got.norm is not None:
      model.get_layer(want.norm_node).set_weights(list(np.asarray(got.norm)))
  return model


def _load_dense_chain(model: keras.Model,
                      stored: list[folder_layers.StoredLayer]) -> keras.Model:
  layers = dense_layers(model)
  if len(layers) != len(stored):
    raise TfpruneError(
        f'model {model.name} has {len(layers)} dense layers but the weights have '
        f'{len(stored)}: use weights made for this model')
  for i, (layer, s) in enumerate(zip(layers, stored), start=1):
    if tuple(layer.kernel.shape) != s.kernel.shape:
      raise TfpruneError(
          f'layer {i}: model {model.name} expects a kernel of shape '
          f'{tuple(layer.kernel.shape)}, the weights have {s.kernel.shape}: use '
          'weights made for this model')
    layer.set_weights([np.asarray(s.kernel), np.asarray(s.bias)])
  return model
