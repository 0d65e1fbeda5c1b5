"""Keras's activations as TensorFlow ops, for the graph evaluator.

One function per activation value of `ops.activation`, op for op as Keras
computes it, so an imported graph reproduces its model to float32 round-off.
"""

from typing import Callable, Mapping

import tensorflow as tf

from tfprune.graph import ops


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


def _elu(x, alpha):
  out = tf.nn.elu(x)
  return out if alpha == 1 else tf.where(x > 0, out, alpha * out)


ACTIVATIONS: dict[str, Callable] = {
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
}
assert set(ACTIVATIONS) == set(ops.ACTIVATIONS)


def apply_activation(activation: Mapping, x: tf.Tensor) -> tf.Tensor:
  """Applies an activation value of `ops.activation` to `x`."""
  return ACTIVATIONS[activation['fn']](x, activation)
