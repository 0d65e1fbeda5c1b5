"""Small Keras models, each buildable with tf_keras or Keras 3, as importer subjects.

`MODELS` are the seven ordinary models a new user brings (Sequential MLP,
functional CNN, residual block with a 1x1 projection, MobileNetV2, two
branches joined by Concatenate, conv->BN->ReLU, and a subclassed model);
`VARIATIONS` are small changes that a reader of only ReLU chains would get
silently wrong; `NESTED` are models built around other models (a
`keras.applications` backbone in a Sequential or functional model, blocks
nested twice with clashing layer names, a nested model with two inputs or
outputs, a Sequential in a Sequential), flattened on import, and
`REFUSED_NESTED` nested models that cannot be (shared, subclassed, run in
training mode); `MINIATURES` are small stand-ins of a big model's structure
for tests whose cost grows with the number of layers (a TFLite conversion,
a fresh process loading a file). Batch-norm statistics are randomized so
that a misread batch norm changes the outputs. `imported` gives a zoo model
and its graph, built and imported once per process, to tests that only
read them. `MULTI_IO` are models with several inputs and/or outputs.
"""

import numpy as np

from tfprune import keras_compat
from tfprune.keras_io import importer

FRAMEWORKS = ('tf_keras', 'keras3')
keras_module = keras_compat.keras_module


def mlp(K):
  return K.Sequential([K.Input((20,)), K.layers.Dense(16, activation='relu'),
                       K.layers.Dropout(0.2), K.layers.Dense(12, activation='relu'),
                       K.layers.Dense(5, activation='softmax')])


def cnn(K):
  i = K.Input((12, 12, 3))
  x = K.layers.Conv2D(8, 3, activation='relu')(i)
  x = K.layers.BatchNormalization()(x)
  x = K.layers.MaxPooling2D()(x)
  x = K.layers.Conv2D(6, 3, padding='same', activation='relu')(x)
  x = K.layers.Flatten()(x)
  return K.Model(i, K.layers.Dense(4, activation='softmax')(x))


def residual(K):
  i = K.Input((10, 10, 3))
  x = K.layers.Conv2D(8, 3, padding='same', use_bias=False)(i)
  x = K.layers.BatchNormalization()(x)
  x = K.layers.ReLU()(x)
  y = K.layers.Conv2D(16, 3, strides=2, padding='same')(x)
  y = K.layers.BatchNormalization()(y)
  y = K.layers.Activation('relu')(y)
  y = K.layers.Conv2D(16, 3, padding='same')(y)
  shortcut = K.layers.Conv2D(16, 1, strides=2)(x)
  z = K.layers.ReLU()(K.layers.Add()([y, shortcut]))
  z = K.layers.GlobalAveragePooling2D()(z)
  return K.Model(i, K.layers.Dense(3, activation='softmax')(z))


def mobilenet_v2(K):
  return K.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                    weights=None, classes=10)


def concat(K):
  i = K.Input((8, 8, 2))
  a = K.layers.Conv2D(4, 3, padding='same', activation='relu')(i)
  b = K.layers.Conv2D(6, 1, activation='relu')(i)
  c = K.layers.Concatenate()([a, b])
  c = K.layers.AveragePooling2D(2)(c)
  c = K.layers.Conv2D(5, 3, activation='relu')(c)
  c = K.layers.Flatten()(c)
  return K.Model(i, K.layers.Dense(3, activation='softmax')(c))


def conv_bn_relu(K):
  return K.Sequential([K.Input((9, 9, 1)), K.layers.Conv2D(4, 3),
                       K.layers.BatchNormalization(), K.layers.ReLU(),
                       K.layers.GlobalMaxPooling2D(), K.layers.Dense(2)])


def subclassed(K):
  class Net(K.Model):
    def __init__(self):
      super().__init__()
      self.hidden = K.layers.Dense(8, activation='relu')
      self.out = K.layers.Dense(3)

    def call(self, x):
      return self.out(self.hidden(x))
  model = Net()
  model(np.zeros((1, 6), np.float32))
  return model


MODELS = {'mlp': mlp, 'cnn': cnn, 'residual': residual,
          'mobilenet_v2': mobilenet_v2, 'concat': concat,
          'conv_bn_relu': conv_bn_relu}
REFUSED_MODELS = {'subclassed': subclassed}


def _seq(K, *layers, shape=(8, 8, 2), head=True):
  tail = [K.layers.Flatten(), K.layers.Dense(3, activation='softmax')] if head else []
  return K.Sequential([K.Input(shape), *layers, *tail])


VARIATIONS = {
    'dense_tanh': lambda K: K.Sequential([
        K.Input((10,)), K.layers.Dense(6, activation='tanh'),
        K.layers.Dense(3, activation='softmax')]),
    'activation_sigmoid': lambda K: K.Sequential([
        K.Input((10,)), K.layers.Dense(6), K.layers.Activation('sigmoid'),
        K.layers.Dense(3, activation='softmax')]),
    'rescaling': lambda K: _seq(K, K.layers.Rescaling(1 / 255.0, 0.5),
                                K.layers.Conv2D(3, 3, activation='relu')),
    'layer_norm': lambda K: _seq(K, K.layers.Conv2D(3, 3),
                                 K.layers.LayerNormalization()),
    'conv_no_activation': lambda K: _seq(K, K.layers.Conv2D(4, 3),
                                         K.layers.Conv2D(3, 3)),
    'conv_relu_bn': lambda K: _seq(K, K.layers.Conv2D(4, 3, activation='relu'),
                                   K.layers.BatchNormalization()),
    'dilated_conv': lambda K: _seq(K, K.layers.Conv2D(4, 3, dilation_rate=2,
                                                      activation='relu')),
    'no_bias': lambda K: _seq(K, K.layers.Conv2D(4, 3, use_bias=False),
                              K.layers.BatchNormalization(), K.layers.ReLU()),
    'relu6_depthwise_padding': lambda K: _seq(
        K, K.layers.ZeroPadding2D(((0, 1), (0, 1))),
        K.layers.DepthwiseConv2D(3, strides=2), K.layers.ReLU(6.0)),
    'separable_swish_gelu': lambda K: _seq(
        K, K.layers.SeparableConv2D(5, 3, activation='swish'),
        K.layers.Activation('gelu'), K.layers.LeakyReLU(), K.layers.ELU(0.5)),
    'leaky_relu6_threshold': lambda K: K.Sequential([
        K.Input((10,)), K.layers.Dense(6),
        K.layers.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.3),
        K.layers.Dense(3)]),
    'normalization': lambda K: _normalization_model(K),
}


def _normalization_model(K):
  norm = K.layers.Normalization()
  norm.adapt(np.random.default_rng(0).uniform(1, 5, (64, 7)).astype(np.float32))
  return K.Sequential([K.Input((7,)), norm, K.layers.Dense(3, activation='elu'),
                       K.layers.Dense(2, activation='softmax')])


def _backbone(K):
  return K.applications.MobileNetV2(include_top=False, weights=None, alpha=0.35,
                                    input_shape=(32, 32, 3))


def mobilenet_in_sequential(K):
  return K.Sequential([K.Input((32, 32, 3)), K.layers.Rescaling(1 / 127.5, -1),
                       _backbone(K), K.layers.GlobalAveragePooling2D(),
                       K.layers.Dense(10, activation='softmax', name='classifier')])


def backbone(K):
  """The transfer-learning pattern: `base(x, training=False)` in a functional model."""
  base = _backbone(K)
  i = K.Input((32, 32, 3))
  x = base(K.layers.Rescaling(1 / 127.5, -1)(i), training=False)
  x = K.layers.Dropout(0.2)(K.layers.GlobalAveragePooling2D()(x))
  return K.Model(i, K.layers.Dense(10, activation='softmax')(x))


def _block(K, name: str, channels: int, filters: int):
  """A residual block with fixed layer names, so two blocks' names clash."""
  i = K.Input((8, 8, channels))
  x = K.layers.Conv2D(filters, 3, padding='same', use_bias=False, name='conv')(i)
  x = K.layers.BatchNormalization(name='bn')(x)
  x = K.layers.ReLU(6.0, name='relu')(x)
  x = K.layers.DepthwiseConv2D(3, padding='same', name='depthwise')(x)
  shortcut = K.layers.Conv2D(filters, 1, name='project')(i)
  return K.Model(i, K.layers.Add(name='add')([x, shortcut]), name=name)


def twice_nested(K):
  """Sequential > functional `stage` > two functional blocks (names clash)."""
  i = K.Input((8, 8, 3))
  stage = K.Model(i, _block(K, 'block_b', 6, 6)(_block(K, 'block_a', 3, 6)(i)),
                  name='stage')
  return K.Sequential([K.Input((8, 8, 3)), stage, K.layers.GlobalAveragePooling2D(),
                       K.layers.Dense(3, activation='softmax', name='classifier')])


def two_in_two_out(K):
  """Nested models with two outputs and two inputs, used out of order."""
  i = K.Input((6, 6, 2))
  split = K.Model(i, [K.layers.Conv2D(4, 3, padding='same', activation='relu')(i),
                      K.layers.Conv2D(4, 1)(i)], name='split')
  a, b = K.Input((6, 6, 4)), K.Input((6, 6, 4))
  join = K.Model([a, b], K.layers.Subtract()([a, b]), name='join')
  x = K.Input((6, 6, 2))
  p, q = split(x)
  y = K.layers.Flatten()(join([q, p]))
  return K.Model(x, K.layers.Dense(3, activation='softmax')(y))


def sequential_in_sequential(K):
  inner = K.Sequential([K.layers.Dense(8, activation='relu'),
                        K.layers.BatchNormalization(), K.layers.Dense(6)],
                       name='inner')
  return K.Sequential([K.Input((10,)), K.layers.Dense(12, activation='tanh'),
                       inner, K.layers.Dense(3, activation='softmax')])


NESTED = {'mobilenet_in_sequential': mobilenet_in_sequential,
          'backbone': backbone, 'twice_nested': twice_nested,
          'two_in_two_out': two_in_two_out,
          'sequential_in_sequential': sequential_in_sequential}


def _small(K, name: str = 'small'):
  i = K.Input((5,))
  return K.Model(i, K.layers.Dense(5, activation='relu')(i), name=name)


def shared_model(K):
  """One nested model called twice: its weights are shared."""
  block = _small(K, 'shared_block')
  i = K.Input((5,))
  return K.Model(i, K.layers.Dense(2)(block(block(i))))


def subclassed_inside(K):
  net = subclassed(K)
  i = K.Input((6,))
  return K.Model(i, K.layers.Dense(2)(net(i)))


def training_call(K):
  block = _small(K, 'trained_block')
  i = K.Input((5,))
  return K.Model(i, K.layers.Dense(2)(block(i, training=True)))


# Nested models refused, and the start of their refusal.
REFUSED_NESTED = {
    'shared_model': (shared_model, r'layer shared_block \(Functional\) cannot be '
                     r'imported: it is called more than once'),
    'subclassed_inside': (subclassed_inside, r'layer net\w* \(Net\) cannot be '
                          r'imported: a subclassed nested model'),
    'training_call': (training_call, r'layer trained_block \(Functional\) cannot '
                      r'be imported: it is called with training=True'),
}


def inverted_residual(K):
  """MobileNetV2 in miniature: its layer kinds and channel couplings, 24 layers.

  MobileNetV2's stem (3x3 conv, stride 2, 'same', no bias), a strided block
  (zero padding, valid stride-2 depthwise, linear 1x1 projection), a
  residual block (1x1 expansion, 'same' depthwise, projection, and an Add
  that ties the two projections' channels), then its 1x1 'valid' head conv,
  pooling and dense: every conv but the projections followed by batch norm
  and ReLU6, the projections by batch norm. Unit-pruned and compacted, it
  builds back to the same Keras layer classes with the same configurations
  as MobileNetV2 (alpha 0.35) does.
  """
  def conv(x, filters, size=1, strides=1, padding='same'):
    return K.layers.Conv2D(filters, size, strides=strides, padding=padding,
                           use_bias=False)(x)

  def bn_relu6(x):
    return K.layers.ReLU(6.0)(K.layers.BatchNormalization()(x))

  i = K.Input((16, 16, 3))
  x = bn_relu6(conv(i, 8, 3, strides=2))
  x = K.layers.ZeroPadding2D(((0, 1), (0, 1)))(x)
  x = bn_relu6(K.layers.DepthwiseConv2D(3, strides=2, use_bias=False)(x))
  x = K.layers.BatchNormalization()(conv(x, 6))
  y = bn_relu6(conv(x, 18))
  y = bn_relu6(K.layers.DepthwiseConv2D(3, padding='same', use_bias=False)(y))
  y = K.layers.BatchNormalization()(conv(y, 6))
  x = bn_relu6(conv(K.layers.Add()([x, y]), 16, padding='valid'))
  x = K.layers.GlobalAveragePooling2D()(x)
  return K.Model(i, K.layers.Dense(3, activation='softmax')(x))


MINIATURES = {'inverted_residual': inverted_residual}


class _Ops:
  """Tensor functions as a functional model records them: `keras.ops`
  (Keras 3 operations) or TensorFlow's (tf_keras TFOpLambda layers)."""

  def __init__(self, K):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    keras3 = K.__name__ == 'keras'
    self.concatenate = K.ops.concatenate if keras3 else tf.concat
    self.reshape = K.ops.reshape if keras3 else tf.reshape
    self.softmax = K.ops.softmax if keras3 else tf.nn.softmax
    self.relu = K.ops.relu if keras3 else tf.nn.relu
    self.maximum = K.ops.maximum if keras3 else tf.maximum
    self.transpose = K.ops.transpose if keras3 else tf.transpose


def operators(K):
  """Tensor arithmetic written as operators between layers: a residual
  `a + b` of two Dense layers, `a * b`, scalar arithmetic, concatenate,
  reshape, softmax, relu, maximum."""
  ops = _Ops(K)
  i = K.Input((10,))
  a = K.layers.Dense(8, activation='relu')(i)
  b = K.layers.Dense(8)(i)
  x = a + b
  x = x * 0.5 + 1.0
  x = 2.0 - x / 3.0
  y = K.layers.Dense(8, activation='tanh')(x)
  x = ops.maximum(x * y, x)
  x = ops.concatenate([x, ops.relu(a)], axis=-1)
  x = K.layers.Dense(12)(x)
  x = ops.softmax(ops.reshape(x, (-1, 3, 4)))
  x = K.layers.Flatten()(x)
  return K.Model(i, K.layers.Dense(3)(x))


def conv1d_sequence(K):
  """A Conv1D sequence model with max and average pooling."""
  i = K.Input((16, 4))
  x = K.layers.Conv1D(8, 3, padding='same', activation='relu')(i)
  x = K.layers.MaxPooling1D(2)(x)
  x = K.layers.Conv1D(6, 3, activation='relu')(x)
  x = K.layers.AveragePooling1D(2, strides=1)(x)
  x = K.layers.Conv1D(6, 1)(x)
  x = K.layers.Flatten()(x)
  return K.Model(i, K.layers.Dense(3, activation='softmax')(x))


def unet(K):
  """A U-Net in miniature: a down path, a Conv2DTranspose and an
  UpSampling2D up path, Concatenate skip connections, a 1x1 output map."""
  i = K.Input((8, 8, 3))
  d1 = K.layers.Conv2D(8, 3, padding='same', activation='relu')(i)
  d1 = K.layers.BatchNormalization()(d1)
  d2 = K.layers.MaxPooling2D()(d1)
  d2 = K.layers.Conv2D(12, 3, padding='same', activation='relu')(d2)
  u1 = K.layers.Conv2DTranspose(6, 2, strides=2, activation='relu')(d2)
  u2 = K.layers.Conv2D(5, 1, activation='relu')(K.layers.UpSampling2D()(d2))
  x = K.layers.Concatenate()([d1, u1, u2])
  x = K.layers.Conv2DTranspose(6, 3, padding='same', activation='relu')(x)
  return K.Model(i, K.layers.Conv2D(2, 1)(x))


def grouped_conv(K):
  """Grouped convolutions: groups of four channels, and one channel per
  group (a depthwise conv written as Conv2D(groups=C))."""
  i = K.Input((9, 9, 3))
  x = K.layers.Conv2D(8, 3, activation='relu')(i)
  x = K.layers.Conv2D(8, 3, groups=2, activation='relu')(x)
  x = K.layers.Conv2D(8, 1)(x)
  x = K.layers.Conv2D(16, 3, groups=8, activation='relu')(x)
  x = K.layers.GlobalAveragePooling2D()(x)
  return K.Model(i, K.layers.Dense(3)(x))


def group_norm(K):
  """Conv nets with GroupNormalization after each conv."""
  i = K.Input((8, 8, 3))
  x = K.layers.Conv2D(8, 3, activation='relu')(i)
  x = K.layers.GroupNormalization(4)(x)
  x = K.layers.Conv2D(6, 3)(x)
  x = K.layers.GroupNormalization(3)(x)
  x = K.layers.ReLU()(x)
  x = K.layers.GlobalAveragePooling2D()(x)
  return K.Model(i, K.layers.Dense(3)(x))


def crop_permute(K):
  """Cropping2D, a Permute that keeps the channels last, a Reshape, and the
  activations hard_sigmoid, mish, softsign, exponential."""
  i = K.Input((10, 10, 3))
  x = K.layers.Conv2D(8, 3, activation='hard_sigmoid')(i)
  x = K.layers.Cropping2D(((1, 0), (2, 1)))(x)
  x = K.layers.Permute((2, 1, 3))(x)
  x = K.layers.Conv2D(6, 3, activation='mish')(x)
  x = K.layers.Activation('softsign')(x)
  x = K.layers.Reshape((-1, 6))(x)
  x = K.layers.Dense(4, activation='exponential')(x)
  x = K.layers.Flatten()(x)
  return K.Model(i, K.layers.Dense(3)(x))


def layer_norm_conv(K):
  """A conv net with LayerNormalization (over the channels) after each conv."""
  i = K.Input((8, 8, 3))
  x = K.layers.Conv2D(8, 3, activation='relu')(i)
  x = K.layers.LayerNormalization()(x)
  x = K.layers.Conv2D(6, 3, activation='relu')(x)
  x = K.layers.LayerNormalization()(x)
  x = K.layers.GlobalAveragePooling2D()(x)
  return K.Model(i, K.layers.Dense(3)(x))


def recurrent(K):
  """A GRU returning its sequence into an LSTM, then a Dense MLP head."""
  i = K.Input((10, 4))
  x = K.layers.GRU(6, return_sequences=True)(i)
  x = K.layers.LSTM(5, go_backwards=True)(x)
  x = K.layers.Dense(8, activation='relu')(x)
  return K.Model(i, K.layers.Dense(3)(x))


def bidirectional(K):
  """A Bidirectional LSTM returning its sequence (concatenated) into a
  Bidirectional GRU (summed), then a Dense MLP head."""
  i = K.Input((9, 4))
  x = K.layers.Bidirectional(K.layers.LSTM(5, return_sequences=True))(i)
  x = K.layers.Bidirectional(K.layers.GRU(4), merge_mode='sum')(x)
  x = K.layers.Dense(8, activation='relu')(x)
  return K.Model(i, K.layers.Dense(3)(x))


# The layer types of issue 21 beyond the Transformer's, one small model each.
LAYER_TYPES = {'operators': operators, 'conv1d_sequence': conv1d_sequence,
               'unet': unet, 'grouped_conv': grouped_conv,
               'group_norm': group_norm, 'crop_permute': crop_permute,
               'layer_norm_conv': layer_norm_conv, 'recurrent': recurrent,
               'bidirectional': bidirectional}


def image_and_table(K):
  """Two inputs (an image and a table row), concatenated into one head."""
  image, table = K.Input((8, 8, 2), name='image'), K.Input((5,), name='table')
  x = K.layers.Conv2D(6, 3, activation='relu')(image)
  x = K.layers.BatchNormalization()(x)
  x = K.layers.GlobalAveragePooling2D()(x)
  t = K.layers.Dense(7, activation='relu')(table)
  x = K.layers.Concatenate()([x, t])
  x = K.layers.Dense(10, activation='relu')(x)
  return K.Model([image, table], K.layers.Dense(3, activation='softmax')(x))


def two_heads(K):
  """One input, two outputs: a 4-class and a 2-class head on one trunk."""
  i = K.Input((12,), name='features')
  x = K.layers.Dense(16, activation='relu')(i)
  x = K.layers.Dense(10, activation='relu')(x)
  kind = K.layers.Dense(4, activation='softmax', name='kind')(x)
  y = K.layers.Dense(6, activation='relu')(x)
  flag = K.layers.Dense(2, activation='softmax', name='flag')(y)
  return K.Model(i, [kind, flag])


def two_in_two_heads(K):
  """Two inputs and two outputs, the second head also reading one input."""
  image, table = K.Input((8, 8, 2), name='image'), K.Input((5,), name='table')
  x = K.layers.Conv2D(6, 3, padding='same', activation='relu')(image)
  x = K.layers.MaxPooling2D()(x)
  x = K.layers.Flatten()(x)
  t = K.layers.Dense(8, activation='relu')(table)
  joined = K.layers.Concatenate()([x, t])
  h = K.layers.Dense(12, activation='relu')(joined)
  kind = K.layers.Dense(3, activation='softmax', name='kind')(h)
  g = K.layers.Dense(6, activation='relu')(t)
  score = K.layers.Dense(2, name='score')(K.layers.Concatenate()([h, g]))
  return K.Model([image, table], [kind, score])


def operator_sum(K):
  """Operators on two inputs: `a + b` of the inputs and of two Dense layers
  (Keras 3 operation layers, tf_keras TFOpLambda), then `x * 0.5`."""
  a, b = K.Input((9,), name='left'), K.Input((9,), name='right')
  x = K.layers.Dense(8, activation='relu')(a + b)
  y = K.layers.Dense(8, activation='relu')(b)
  z = K.layers.Dense(6, activation='relu')(x + y)
  return K.Model([a, b], K.layers.Dense(3)(z * 0.5))


# Models with several inputs and/or outputs.
MULTI_IO = {'image_and_table': image_and_table, 'two_heads': two_heads,
            'two_in_two_heads': two_in_two_heads, 'operator_sum': operator_sum}


def _layers_deep(model):
  for layer in model.layers:
    yield layer
    if hasattr(layer, 'layers') and hasattr(layer, 'inputs'):
      yield from _layers_deep(layer)


def randomized(model, seed: int = 0):
  """`model` with random (non-trivial) batch-norm statistics and
  normalisation scales and offsets, nested ones too."""
  rng = np.random.default_rng(seed)
  for layer in _layers_deep(model):
    if type(layer).__name__ in ('GroupNormalization', 'LayerNormalization'):
      layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
                         if i == 0 else rng.normal(0, 0.1, w.shape).astype(
                             np.float32)
                         for i, w in enumerate(layer.get_weights())])
    if type(layer).__name__ == 'BatchNormalization':
      n = layer.get_weights()[0].shape
      layer.set_weights([rng.uniform(0.5, 1.5, n).astype(np.float32),
                         rng.normal(0, 0.1, n).astype(np.float32),
                         rng.normal(0, 0.1, n).astype(np.float32),
                         rng.uniform(0.5, 2.0, n).astype(np.float32)])
  return model


def build(name: str, framework: str):
  """Model `name` of the tables above in `framework`, randomized."""
  K = keras_module(framework)
  K.utils.set_random_seed(0)
  table = {**MODELS, **VARIATIONS, **REFUSED_MODELS, **NESTED, **MINIATURES,
           **LAYER_TYPES, **MULTI_IO,
           **{k: make for k, (make, _) in REFUSED_NESTED.items()}}
  return randomized(table[name](K))


_IMPORTED = {}


def imported(name: str, framework: str):
  """(model, graph): `build(name, framework)` and its import, once per process.

  Shared by every test module of the process, so only for tests that read
  both (predict, inspect layers, rebuild or import again); a test that
  changes, trains or saves a model builds its own with `build`. Graphs are
  immutable.
  """
  if (name, framework) not in _IMPORTED:
    model = build(name, framework)
    _IMPORTED[name, framework] = model, importer.from_keras(model)
  return _IMPORTED[name, framework]
