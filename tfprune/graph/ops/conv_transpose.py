"""Transposed convolution: `conv2d_transpose` (Conv2DTranspose), kernel
(h, w, out, in)."""

import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import ir
from tfprune.graph.ops import activations
from tfprune.graph.ops import base
from tfprune.graph.ops.conv import (CONV_PARAMS, conv_attrs, conv_kwargs,
                                    conv_weights)


def _transpose_shape(attrs, params, inputs):
  h, w, c = base.image(inputs[0], 'a transposed conv')
  kernel = params['kernel'].shape
  if len(kernel) != 4 or kernel[3] != c:
    raise TfpruneError(f'transposed conv kernel {kernel} does not take {c} '
                       'channels')
  size = []
  for s, k, st, d in zip((h, w), kernel[:2], attrs['strides'], attrs['dilation']):
    size.append(s * st if attrs['padding'] == 'same'
                else (s - 1) * st + (k - 1) * d + 1)
  return tuple(size) + (kernel[2],)


def _transpose(node, p, xs, shape):
  a = node.attrs
  x = xs[0]
  output_shape = tf.stack([tf.shape(x)[0], *shape])
  y = tf.nn.conv_transpose(x, p['kernel'], output_shape, list(a['strides']),
                           padding=a['padding'].upper(),
                           dilations=list(a['dilation']))
  return activations.finish(node, p, y)


def _read_transpose(l: base.LayerCall) -> list:
  base.check_plain(l)
  if l.config.get('output_padding') is not None:
    raise l.refuse('output_padding is not supported: leave it None')
  return [ir.Node(l.name, 'conv2d_transpose', l.inputs,
                  {**conv_attrs(l), 'activation': activations.read(
                      l, l.config['activation'])},
                  {'kernel': l.weights['kernel'], **base.bias_of(l)})]


def _transpose_to_keras(K, node, shapes):
  kernel = node.params['kernel']
  return activations.with_activation(
      K, node, lambda act, name: K.layers.Conv2DTranspose(
          kernel.shape[2], kernel.shape[:2], activation=act, name=name,
          **conv_kwargs(node)), conv_weights(node))


# A constant input does not give a constant output (each position sums a
# different set of taps), so removed input channels are silenced (zero).
CONV2D_TRANSPOSE = base.register(base.OpDef(
    'conv2d_transpose', _transpose_shape, _transpose, _transpose_to_keras,
    params=CONV_PARAMS, required=('kernel',), kernels={'kernel': 2}, input_axis=3,
    keras={'Conv2DTranspose': _read_transpose}, variables=CONV_PARAMS,
    channels=base.produce_channels, zero_pads=lambda node: True,
    activation=True))
