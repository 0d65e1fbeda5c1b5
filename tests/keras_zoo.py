"""Small Keras models, each buildable with tf_keras or Keras 3, as importer subjects.

`MODELS` are the seven ordinary models a new user brings (Sequential MLP,
functional CNN, residual block with a 1x1 projection, MobileNetV2, two
branches joined by Concatenate, conv->BN->ReLU, and a subclassed model);
`VARIATIONS` are small changes that a reader of only ReLU chains would get
silently wrong. Batch-norm statistics are randomized so that a misread batch
norm changes the outputs.
"""

import numpy as np

from tfprune import keras_compat

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


def randomized(model, seed: int = 0):
  """`model` with random (non-trivial) batch-norm statistics."""
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    if type(layer).__name__ == 'BatchNormalization':
      n = layer.get_weights()[0].shape
      layer.set_weights([rng.uniform(0.5, 1.5, n).astype(np.float32),
                         rng.normal(0, 0.1, n).astype(np.float32),
                         rng.normal(0, 0.1, n).astype(np.float32),
                         rng.uniform(0.5, 2.0, n).astype(np.float32)])
  return model


def build(name: str, framework: str):
  """Model `name` of `MODELS` or `VARIATIONS` in `framework`, randomized."""
  K = keras_module(framework)
  K.utils.set_random_seed(0)
  table = {**MODELS, **VARIATIONS, **REFUSED_MODELS}
  return randomized(table[name](K))
