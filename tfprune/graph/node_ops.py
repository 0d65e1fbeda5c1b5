"""Each op of a `Graph` computed with TensorFlow ops, from its input tensors.

One function per op of `ops.OPS`, with the same TensorFlow kernels Keras
uses, so an imported graph reproduces its Keras model to float32 round-off
(checked on every import by `keras_io.verify`). `graph.evaluator` runs them
node after node.
"""

from typing import Callable, Mapping, Sequence

import tensorflow as tf

from tfprune.graph import ops
from tfprune.graph.activations import apply_activation
from tfprune.graph.ir import Graph
from tfprune.graph.ir import Node


def finish(node, p, x):
  """Adds the bias, if any, and applies the node's activation."""
  if 'bias' in p:
    x = tf.nn.bias_add(x, p['bias'])
  return apply_activation(node.attrs['activation'], x)


def _dense(node, p, xs):
  x = xs[0]
  if x.shape.rank == 2:
    y = tf.matmul(x, p['kernel'])
  else:
    y = tf.tensordot(x, p['kernel'], [[x.shape.rank - 1], [0]])
  return finish(node, p, y)


def _conv(node, p, xs):
  a = node.attrs
  y = tf.nn.convolution(xs[0], p['kernel'], strides=list(a['strides']),
                        padding=a['padding'].upper(),
                        dilations=list(a['dilation']))
  return finish(node, p, y)


def _depthwise(node, p, xs):
  a = node.attrs
  y = tf.nn.depthwise_conv2d(xs[0], p['kernel'], strides=[1, *a['strides'], 1],
                             padding=a['padding'].upper(),
                             dilations=list(a['dilation']))
  return finish(node, p, y)


def _batch_norm(node, p, xs):
  return tf.nn.batch_normalization(xs[0], p['mean'], p['variance'], p['beta'],
                                   p['gamma'], node.attrs['epsilon'])


def _layer_norm(node, p, xs):
  x = xs[0]
  axes = [a + 1 for a in node.attrs['axes']]
  shape = [1] * x.shape.rank
  for a in axes:
    shape[a] = x.shape[a]
  mean, variance = tf.nn.moments(x, axes=axes, keepdims=True)
  gamma = tf.reshape(p['gamma'], shape) if 'gamma' in p else None
  beta = tf.reshape(p['beta'], shape) if 'beta' in p else None
  return tf.nn.batch_normalization(x, mean, variance, beta, gamma,
                                   node.attrs['epsilon'])


def _normalization(node, p, xs):
  return (xs[0] - p['mean']) / tf.maximum(tf.sqrt(p['variance']),
                                          node.attrs['epsilon'])


def _merge(node, p, xs):
  del p
  mode = node.attrs['mode']
  if mode == 'subtract':
    return xs[0] - xs[1]
  combine = {'add': tf.add, 'average': tf.add, 'multiply': tf.multiply,
             'maximum': tf.maximum, 'minimum': tf.minimum}[mode]
  out = xs[0]
  for x in xs[1:]:
    out = combine(out, x)
  return out / len(xs) if mode == 'average' else out


def _pool(fn):
  def pool(node, p, xs):
    del p
    a = node.attrs
    return fn(xs[0], list(a['pool_size']), list(a['strides']),
              a['padding'].upper())
  return pool


def _global(fn):
  return lambda node, p, xs: fn(xs[0], axis=[1, 2],
                                keepdims=node.attrs['keepdims'])


def _reshape(shape_of):
  return lambda node, p, xs: tf.reshape(xs[0], (-1, *shape_of(node)))


_OPS: dict[str, Callable[[Node, dict, list], tf.Tensor]] = {
    'dense': _dense,
    'conv2d': _conv,
    'depthwise_conv2d': _depthwise,
    'batch_norm': _batch_norm,
    'layer_norm': _layer_norm,
    'normalization': _normalization,
    'rescaling': lambda node, p, xs: xs[0] * p['scale'] + p['offset'],
    'activation': lambda node, p, xs: apply_activation(node.attrs['activation'],
                                                       xs[0]),
    'identity': lambda node, p, xs: xs[0],
    'merge': _merge,
    'concat': lambda node, p, xs: tf.concat(xs, axis=node.attrs['axis'] + 1),
    'max_pool2d': _pool(tf.nn.max_pool2d),
    'avg_pool2d': _pool(tf.nn.avg_pool2d),
    'global_avg_pool2d': _global(tf.reduce_mean),
    'global_max_pool2d': _global(tf.reduce_max),
    'flatten': None,  # reshaped to the node's known output shape below
    'reshape': None,
    'zero_pad2d': lambda node, p, xs: tf.pad(
        xs[0], [[0, 0], *node.attrs['padding'], [0, 0]]),
}
assert set(_OPS) == set(ops.OPS) - {'input'}


def apply_node(graph: Graph, node: Node, params: Mapping,
               inputs: Sequence[tf.Tensor]) -> tf.Tensor:
  """`node`'s output from its input tensors and `params` (tensors or arrays)."""
  fn = _OPS[node.op]
  if fn is None:
    return tf.reshape(inputs[0], (-1, *graph.shapes[node.name]))
  return fn(node, params, list(inputs))
