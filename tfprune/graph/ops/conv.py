"""Convolutions: `conv2d` (Conv2D, and SeparableConv2D's pointwise half) and
`depthwise_conv2d` (DepthwiseConv2D, SeparableConv2D's depthwise half).

A conv kernel is (h, w, in, out); a depthwise kernel is (h, w, channels,
multiplier): channel c*m+j of its output comes from input channel c.
"""

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import ir
from tfprune.graph.ops import activations
from tfprune.graph.ops import base


def out_hw(attrs, size, window) -> base.Shape:
  out = tuple(base.spatial(s, k, st, attrs['padding'], d) for s, k, st, d in zip(
      size, window, attrs['strides'], attrs['dilation']))
  if min(out) < 1:
    raise TfpruneError(f'window {tuple(window)} is larger than its input {size}')
  return out


def _conv_shape(attrs, params, inputs):
  h, w, c = base.image(inputs[0], 'a conv')
  kernel = params['kernel'].shape
  if len(kernel) != 4 or kernel[2] != c:
    raise TfpruneError(f'conv kernel {kernel} does not take {c} channels')
  return out_hw(attrs, (h, w), kernel[:2]) + (kernel[3],)


def _depthwise_shape(attrs, params, inputs):
  h, w, c = base.image(inputs[0], 'a depthwise conv')
  kernel = params['kernel'].shape
  if len(kernel) != 4 or kernel[2] != c:
    raise TfpruneError(f'depthwise kernel {kernel} does not take {c} channels')
  return out_hw(attrs, (h, w), kernel[:2]) + (c * kernel[3],)


def _conv(node, p, xs, shape):
  del shape
  a = node.attrs
  y = tf.nn.convolution(xs[0], p['kernel'], strides=list(a['strides']),
                        padding=a['padding'].upper(),
                        dilations=list(a['dilation']))
  return activations.finish(node, p, y)


def _depthwise(node, p, xs, shape):
  del shape
  a = node.attrs
  y = tf.nn.depthwise_conv2d(xs[0], p['kernel'], strides=[1, *a['strides'], 1],
                             padding=a['padding'].upper(),
                             dilations=list(a['dilation']))
  return activations.finish(node, p, y)


def conv_attrs(l: base.LayerCall, rank: int = 2) -> dict:
  """strides, padding and dilation of a conv layer's config."""
  base.channels_last(l)
  c = l.config
  if c['padding'] not in ('valid', 'same'):
    raise l.refuse(f'padding {c["padding"]!r} is not supported: use valid or same')
  return {'strides': base.pair(l, c['strides'], 'strides', rank),
          'padding': c['padding'],
          'dilation': base.pair(l, c['dilation_rate'], 'dilation_rate', rank)}


def _read_conv(l: base.LayerCall) -> list:
  base.check_plain(l)
  if l.config.get('groups', 1) != 1:
    raise l.refuse(f'groups={l.config["groups"]} is not supported: use groups=1')
  return [ir.Node(l.name, 'conv2d', l.inputs,
                  {**conv_attrs(l), 'activation': activations.read(
                      l, l.config['activation'])},
                  {'kernel': l.weights['kernel'], **base.bias_of(l)})]


def _read_depthwise(l: base.LayerCall) -> list:
  base.check_plain(l)
  kernel = l.weights.get('depthwise_kernel', l.weights.get('kernel'))
  return [ir.Node(l.name, 'depthwise_conv2d', l.inputs,
                  {**conv_attrs(l), 'activation': activations.read(
                      l, l.config['activation'])},
                  {'kernel': kernel, **base.bias_of(l)})]


def _read_separable(l: base.LayerCall) -> list:
  attrs = conv_attrs(l)
  depthwise = ir.Node(f'{l.name}_depthwise', 'depthwise_conv2d', l.inputs,
                      {**attrs, 'activation': activations.LINEAR},
                      {'kernel': l.weights['depthwise_kernel']})
  pointwise = ir.Node(l.name, 'conv2d', [depthwise.name],
                      {'strides': (1, 1), 'padding': 'valid', 'dilation': (1, 1),
                       'activation': activations.read(l, l.config['activation']),
                       'separable': True},
                      {'kernel': l.weights['pointwise_kernel'], **base.bias_of(l)})
  return [depthwise, pointwise]


def conv_kwargs(node) -> dict:
  a = node.attrs
  return {'strides': tuple(a['strides']), 'padding': a['padding'],
          'dilation_rate': tuple(a['dilation']), 'use_bias': 'bias' in node.params}


def _weights(node) -> list:
  return [node.params['kernel'], *([node.params['bias']]
                                   if 'bias' in node.params else [])]


def _conv_to_keras(K, node):
  kernel = node.params['kernel']
  return activations.with_activation(K, node, lambda act, name: K.layers.Conv2D(
      kernel.shape[3], kernel.shape[:2], activation=act, name=name,
      **conv_kwargs(node)), _weights(node))


def _depthwise_to_keras(K, node):
  kernel = node.params['kernel']
  return activations.with_activation(
      K, node, lambda act, name: K.layers.DepthwiseConv2D(
          kernel.shape[:2], depth_multiplier=kernel.shape[3], activation=act,
          name=name, **conv_kwargs(node)), _weights(node))


def zero_pads(node) -> bool:
  """A conv whose window reads zero padding: only a zero constant folds."""
  return node.attrs['padding'] == 'same' and max(
      node.params['kernel'].shape[:-2]) > 1


def _depthwise_channels(walk, call: base.ChannelCall) -> np.ndarray:
  node = call.node
  multiplier = node.params['kernel'].shape[3]
  walk.record(call.x, node.name, 'kernel', 2, base.CHANNEL)
  out = np.repeat(call.x, multiplier)
  if 'bias' in node.params:
    walk.record(out, node.name, 'bias', 0, base.CHANNEL)
  call.padded_out = False  # its removed channels restart from the bias
  return out


def _depthwise_constants(call: base.ConstantCall) -> np.ndarray:
  """A constant input channel, or an all-zero filter (its bias), is constant."""
  kernel = call.node.params['kernel']
  silent = ~(kernel != 0).reshape(-1, kernel.shape[2] * kernel.shape[3]).any(axis=0)
  return np.repeat(call.known[0], kernel.shape[3]) | silent


_CONV = ('kernel', 'bias')
CONV2D = base.register(base.OpDef(
    'conv2d', _conv_shape, _conv, _conv_to_keras, params=_CONV,
    required=('kernel',), kernels={'kernel': 3}, input_axis=2,
    keras={'Conv2D': _read_conv, 'SeparableConv2D': _read_separable},
    variables=_CONV, channels=base.produce_channels, zero_pads=zero_pads,
    activation=True))
DEPTHWISE_CONV2D = base.register(base.OpDef(
    'depthwise_conv2d', _depthwise_shape, _depthwise, _depthwise_to_keras,
    params=_CONV, required=('kernel',), kernels={'kernel': 2},
    keras={'DepthwiseConv2D': _read_depthwise}, variables=_CONV,
    channels=_depthwise_channels, constants=_depthwise_constants,
    activation=True))
