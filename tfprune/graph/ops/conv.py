"""Convolutions: `conv2d` (Conv2D, and SeparableConv2D's pointwise half),
`depthwise_conv2d` (DepthwiseConv2D, SeparableConv2D's depthwise half) and
`conv1d`. Their transposed and grouped variants are `conv_transpose` and
`grouped_conv`; the helpers here (`conv_attrs`, `conv_kwargs`, `out_hw`,
`conv_weights`) are shared with them.

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


def _read_conv2d(l: base.LayerCall) -> list:
  """A Conv2D: `conv2d`, or `grouped_conv2d` when groups > 1."""
  if l.config.get('groups', 1) == 1:
    return _read_conv(l)
  base.check_plain(l)
  return [ir.Node(l.name, 'grouped_conv2d', l.inputs,
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


def conv_weights(node) -> list:
  return [node.params['kernel'], *([node.params['bias']]
                                   if 'bias' in node.params else [])]


def _conv_to_keras(K, node, shapes):
  kernel = node.params['kernel']
  return activations.with_activation(K, node, lambda act, name: K.layers.Conv2D(
      kernel.shape[3], kernel.shape[:2], activation=act, name=name,
      **conv_kwargs(node)), conv_weights(node))


def _depthwise_to_keras(K, node, shapes):
  kernel = node.params['kernel']
  return activations.with_activation(
      K, node, lambda act, name: K.layers.DepthwiseConv2D(
          kernel.shape[:2], depth_multiplier=kernel.shape[3], activation=act,
          name=name, **conv_kwargs(node)), conv_weights(node))


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


CONV_PARAMS = ('kernel', 'bias')
CONV2D = base.register(base.OpDef(
    'conv2d', _conv_shape, _conv, _conv_to_keras, params=CONV_PARAMS,
    required=('kernel',), kernels={'kernel': 3}, input_axis=2,
    keras={'Conv2D': _read_conv2d, 'SeparableConv2D': _read_separable},
    variables=CONV_PARAMS, channels=base.produce_channels, zero_pads=zero_pads,
    activation=True))
DEPTHWISE_CONV2D = base.register(base.OpDef(
    'depthwise_conv2d', _depthwise_shape, _depthwise, _depthwise_to_keras,
    params=CONV_PARAMS, required=('kernel',), kernels={'kernel': 2},
    keras={'DepthwiseConv2D': _read_depthwise}, variables=CONV_PARAMS,
    channels=_depthwise_channels, constants=_depthwise_constants,
    activation=True))


# Conv1D: kernel (k, in, out) on (steps, channels) inputs.

def _conv1d_shape(attrs, params, inputs):
  steps, c = base.image(inputs[0], 'a 1-D conv', rank=2)
  kernel = params['kernel'].shape
  if len(kernel) != 3 or kernel[1] != c:
    raise TfpruneError(f'conv1d kernel {kernel} does not take {c} channels')
  return out_hw(attrs, (steps,), kernel[:1]) + (kernel[2],)


def _read_conv1d(l: base.LayerCall) -> list:
  base.check_plain(l)
  if l.config.get('groups', 1) != 1:
    raise l.refuse(f'groups={l.config["groups"]} is not supported: use groups=1')
  if l.config['padding'] == 'causal':
    raise l.refuse("padding 'causal' is not supported: use valid or same")
  return [ir.Node(l.name, 'conv1d', l.inputs,
                  {**conv_attrs(l, rank=1), 'activation': activations.read(
                      l, l.config['activation'])},
                  {'kernel': l.weights['kernel'], **base.bias_of(l)})]


def _conv1d_to_keras(K, node, shapes):
  kernel = node.params['kernel']
  return activations.with_activation(K, node, lambda act, name: K.layers.Conv1D(
      kernel.shape[2], kernel.shape[:1], activation=act, name=name,
      **conv_kwargs(node)), conv_weights(node))


CONV1D = base.register(base.OpDef(
    'conv1d', _conv1d_shape, _conv, _conv1d_to_keras, params=CONV_PARAMS,
    required=('kernel',), kernels={'kernel': 2}, input_axis=1,
    keras={'Conv1D': _read_conv1d}, variables=CONV_PARAMS,
    channels=base.produce_channels, zero_pads=zero_pads, activation=True))
