"""Activations: the values a node's `activation` attribute takes.

An activation value is `{'fn': 'relu'}` or, with parameters,
`{'fn': 'relu', 'max_value': 6.0, 'negative_slope': 0.0, 'threshold': 0.0}`;
`ACTIVATIONS` lists the functions with their parameters and defaults, and
`FUNCTIONS` computes each op for op as Keras does, so an imported graph
reproduces its model to float32 round-off. `read` and `keras_arg` /
`keras_layer` translate them from and to Keras (both frameworks). The
`activation` op (a standalone activation layer or operator) is defined in
`activation_layers`.
"""

from typing import Callable, Mapping

import numpy as np
import tensorflow as tf

from tfprune import registry
from tfprune.errors import TfpruneError
from tfprune.graph.ops import base

# Activation function -> its parameters with their defaults.
ACTIVATIONS: dict[str, dict[str, float | None]] = {
    'linear': {},
    'relu': {'max_value': None, 'negative_slope': 0.0, 'threshold': 0.0},
    'relu6': {},
    'sigmoid': {},
    'tanh': {},
    'softmax': {'axis': -1},
    'swish': {},
    'gelu': {'approximate': 0.0},
    'elu': {'alpha': 1.0},
    'leaky_relu': {'negative_slope': 0.2},
    'softplus': {},
    'selu': {},
    'softsign': {},
    'exponential': {},
    'mish': {},
    'log_softmax': {'axis': -1},
    # Keras 3's hard sigmoid, relu6(x + 3) / 6, and hard SiLU x * that.
    'hard_sigmoid': {},
    'hard_silu': {},
    # tf_keras's hard sigmoid: clip(0.2 x + 0.5, 0, 1).
    'hard_sigmoid_tf_keras': {},
}


def activation(fn: str, **params) -> dict:
  """A checked activation value, its parameters completed with defaults.

  Raises:
    TfpruneError: unknown function or parameter.
  """
  registry.check_choice(fn, ACTIVATIONS, 'activation')
  unknown = set(params) - set(ACTIVATIONS[fn])
  if unknown:
    raise TfpruneError(f'activation {fn} has no parameter {sorted(unknown)}: '
                       f'it takes {sorted(ACTIVATIONS[fn]) or "none"}')
  value = {'fn': fn, **ACTIVATIONS[fn], **params}
  return {k: (None if v is None else float(v)) if k != 'fn' else v
          for k, v in value.items()}


LINEAR = {'fn': 'linear'}
RELU = activation('relu')


def _relu(x, max_value, negative_slope, threshold):
  """Keras's `relu(x, negative_slope, max_value, threshold)`, op for op."""
  if negative_slope:
    if max_value is None and not threshold:
      return tf.nn.leaky_relu(x, alpha=negative_slope)
    negative_part = tf.nn.relu(-x + threshold) if threshold else tf.nn.relu(-x)
  clip_max = max_value is not None
  if threshold:
    x = x * tf.cast(tf.greater(x, threshold), x.dtype)
  elif max_value == 6:
    x = tf.nn.relu6(x)
    clip_max = False
  else:
    x = tf.nn.relu(x)
  if clip_max:
    x = tf.clip_by_value(x, 0.0, max_value)
  if negative_slope:
    x -= negative_slope * negative_part
  return x


def _hard_sigmoid(x):
  return tf.nn.relu6(x + tf.constant(3.0, x.dtype)) / tf.constant(6.0, x.dtype)


def _hard_sigmoid_tf_keras(x):
  x = tf.add(tf.multiply(x, tf.constant(0.2, x.dtype)), tf.constant(0.5, x.dtype))
  return tf.clip_by_value(x, 0.0, 1.0)


def _elu(x, alpha):
  out = tf.nn.elu(x)
  return out if alpha == 1 else tf.where(x > 0, out, alpha * out)


FUNCTIONS: dict[str, Callable] = {
    'linear': lambda x, a: x,
    'relu': lambda x, a: _relu(x, a['max_value'], a['negative_slope'],
                               a['threshold']),
    'relu6': lambda x, a: tf.nn.relu6(x),
    'sigmoid': lambda x, a: tf.sigmoid(x),
    'tanh': lambda x, a: tf.tanh(x),
    'softmax': lambda x, a: tf.nn.softmax(x, axis=int(a['axis'])),
    'swish': lambda x, a: tf.nn.silu(x),
    'gelu': lambda x, a: tf.nn.gelu(x, approximate=bool(a['approximate'])),
    'elu': lambda x, a: _elu(x, a['alpha']),
    'leaky_relu': lambda x, a: tf.nn.leaky_relu(x, alpha=a['negative_slope']),
    'softplus': lambda x, a: tf.math.softplus(x),
    'selu': lambda x, a: tf.nn.selu(x),
    'softsign': lambda x, a: tf.nn.softsign(x),
    'exponential': lambda x, a: tf.exp(x),
    'mish': lambda x, a: x * tf.math.tanh(tf.math.softplus(x)),
    'log_softmax': lambda x, a: tf.nn.log_softmax(x, axis=int(a['axis'])),
    'hard_sigmoid': lambda x, a: _hard_sigmoid(x),
    'hard_silu': lambda x, a: x * _hard_sigmoid(x),
    'hard_sigmoid_tf_keras': lambda x, a: _hard_sigmoid_tf_keras(x),
}
assert set(FUNCTIONS) == set(ACTIVATIONS)


def apply_activation(value: Mapping, x: tf.Tensor) -> tf.Tensor:
  """Applies an activation value of `activation` to `x`."""
  return FUNCTIONS[value['fn']](x, value)


def on_constants(value: Mapping, pre: np.ndarray) -> np.ndarray:
  """The activation of per-channel constants (NaN: not constant).

  Linear and ReLU act in float64 (so a dense chain's constants are exactly
  the classic MLP compaction's); other functions run their float32 op.
  """
  if value['fn'] == 'linear':
    return pre
  if dict(value) == RELU:
    return np.maximum(pre, 0.0)
  if value['fn'] in ('softmax', 'log_softmax'):
    return np.full(pre.shape, np.nan)
  known = ~np.isnan(pre)
  x = tf.constant(np.where(known, pre, 0.0)[None].astype(np.float32))
  out = apply_activation(value, x).numpy()[0].astype(np.float64)
  return np.where(known, out, np.nan)


# Keras activation names -> `ACTIVATIONS` names, per framework.
_KERAS3_ONLY = ('hard_silu', 'log_softmax')
KERAS_NAMES = {
    'keras3': {**{n: n for n in ACTIVATIONS if n != 'hard_sigmoid_tf_keras'},
               'silu': 'swish', 'hard_swish': 'hard_silu'},
    'tf_keras': {**{n: n for n in ACTIVATIONS
                    if n not in _KERAS3_ONLY + ('hard_sigmoid_tf_keras',)},
                 'silu': 'swish', 'hard_sigmoid': 'hard_sigmoid_tf_keras'},
}


def read(l: base.LayerCall, value) -> dict:
  """The activation value of a Keras `activation=` argument, or a refusal."""
  if value is None:
    return LINEAR
  names = KERAS_NAMES[l.framework]
  if not isinstance(value, str) or value not in names:
    raise l.refuse(f'activation {value!r} is not supported: use one of '
                   f'{", ".join(sorted(names))}')
  # Keras 3's 'leaky_relu' activation uses negative_slope 0.2, its default.
  return activation(names[value])


def _keras3(K) -> bool:
  return K.__name__ == 'keras'


def keras_arg(K, value) -> str | None:
  """A Keras `activation=` argument computing `value` exactly, or None
  when it needs its own layer (`keras_layer`)."""
  fn = value['fn']
  if fn == 'relu' and (value['max_value'] is not None
                       or value['negative_slope'] or value['threshold']):
    return None
  if fn == 'swish':
    return 'silu' if _keras3(K) else 'swish'
  if fn == 'hard_sigmoid_tf_keras':
    return None if _keras3(K) else 'hard_sigmoid'
  if fn in ('hard_sigmoid',) + _KERAS3_ONLY and not _keras3(K):
    return None
  if fn == 'log_softmax' and value['axis'] != -1:
    return None
  if (fn == 'softmax' and value['axis'] != -1) or (
      fn == 'gelu' and value['approximate']) or (
          fn == 'elu' and value['alpha'] != 1) or fn == 'leaky_relu' or (
              fn == 'relu6' and not _keras3(K)):
    return None
  return fn


def keras_layer(K, value, name: str):
  """A Keras layer computing activation `value`."""
  fn = value['fn']
  arg = keras_arg(K, value)
  if arg is not None:
    return K.layers.Activation(arg, name=name)
  if fn == 'relu':
    return K.layers.ReLU(value['max_value'], value['negative_slope'],
                         value['threshold'], name=name)
  if fn == 'relu6':
    return K.layers.ReLU(6.0, name=name)
  if fn == 'softmax':
    return K.layers.Softmax(axis=int(value['axis']), name=name)
  if fn == 'elu':
    return K.layers.ELU(alpha=value['alpha'], name=name)
  if fn == 'leaky_relu':
    slope = value['negative_slope']
    return (K.layers.LeakyReLU(negative_slope=slope, name=name)
            if _keras3(K) else K.layers.LeakyReLU(alpha=slope, name=name))
  raise TfpruneError(
      f'activation {fn} has no {"Keras 3" if _keras3(K) else "tf_keras"} '
      'layer computing it exactly: export with the framework it was read from')


def finish(node, p, x):
  """Adds the bias, if any, and applies the node's activation."""
  if 'bias' in p:
    x = tf.nn.bias_add(x, p['bias'])
  return apply_activation(node.attrs['activation'], x)


def with_activation(K, node, make: Callable, weights: list) -> list:
  """The layer of a dense/conv node, plus a separate activation layer if its
  activation has no `activation=` argument (then named `<node>_preact`)."""
  value = node.attrs['activation']
  arg = keras_arg(K, value)
  name = node.name if arg is not None else f'{node.name}_preact'
  built = [(make(arg, name), weights)]
  if arg is None:
    built.append((keras_layer(K, value, node.name), []))
  return built

