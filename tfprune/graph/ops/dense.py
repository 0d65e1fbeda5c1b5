"""`dense`: a Dense layer, kernel (in, out) on the last axis, bias, activation."""

import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import ir
from tfprune.graph.ops import activations
from tfprune.graph.ops import base


def _shape(attrs, params, inputs):
  del attrs
  kernel = params['kernel'].shape
  if len(kernel) != 2 or inputs[0][-1:] != kernel[:1]:
    raise TfpruneError(f'dense kernel {kernel} does not fit input {inputs[0]}')
  return inputs[0][:-1] + (kernel[1],)


def _compute(node, p, xs, shape):
  del shape
  x = xs[0]
  if x.shape.rank == 2:
    y = tf.matmul(x, p['kernel'])
  else:
    y = tf.tensordot(x, p['kernel'], [[x.shape.rank - 1], [0]])
  return activations.finish(node, p, y)


def _read(l: base.LayerCall) -> list:
  base.check_plain(l)
  return [ir.Node(l.name, 'dense', l.inputs,
                  {'activation': activations.read(l, l.config['activation'])},
                  {'kernel': l.weights['kernel'], **base.bias_of(l)})]


def _to_keras(K, node, shapes):
  p = node.params
  return activations.with_activation(K, node, lambda act, name: K.layers.Dense(
      p['kernel'].shape[1], activation=act, use_bias='bias' in p, name=name),
      [p['kernel'], *([p['bias']] if 'bias' in p else [])])


DENSE = base.register(base.OpDef(
    'dense', _shape, _compute, _to_keras, params=('kernel', 'bias'),
    required=('kernel',), kernels={'kernel': 1}, input_axis=0,
    keras={'Dense': _read}, variables=('kernel', 'bias'),
    channels=base.produce_channels, activation=True))
