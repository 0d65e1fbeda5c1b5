"""Grouped convolution: `grouped_conv2d` (Conv2D with groups > 1), kernel
(h, w, in / groups, out)."""

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph.ops import activations
from tfprune.graph.ops import base
from tfprune.graph.ops.conv import (CONV_PARAMS, conv_kwargs, conv_weights,
                                    out_hw)


# The groups follow from the shapes, so a compacted kernel keeps them
# consistent.

def _grouped_shape(attrs, params, inputs):
  h, w, c = base.image(inputs[0], 'a grouped conv')
  kernel = params['kernel'].shape
  if len(kernel) != 4 or c % kernel[2] or kernel[3] % (c // kernel[2]):
    raise TfpruneError(f'grouped conv kernel {kernel} does not take {c} '
                       'channels in equal groups')
  return out_hw(attrs, (h, w), kernel[:2]) + (kernel[3],)


@tf.function(jit_compile=True, autograph=False)
def _grouped_xla(x, kernel, strides, padding, dilation):
  # TensorFlow computes grouped convolutions on the CPU only under XLA, as
  # Keras does.
  return tf.nn.convolution(x, kernel, strides, padding, dilations=dilation)


def _grouped(node, p, xs, shape):
  del shape
  a = node.attrs
  y = _grouped_xla(xs[0], p['kernel'], list(a['strides']),
                   a['padding'].upper(), list(a['dilation']))
  return activations.finish(node, p, y)


def _grouped_to_keras(K, node, shapes):
  kernel = node.params['kernel']
  groups = shapes[0][-1] // kernel.shape[2]
  return activations.with_activation(K, node, lambda act, name: K.layers.Conv2D(
      kernel.shape[3], kernel.shape[:2], activation=act, name=name,
      groups=groups, **conv_kwargs(node)), conv_weights(node))


def _one_per_group(call) -> int:
  """The output channels per input channel when each group reads one input
  channel (a depthwise conv written as Conv2D(groups=C)), else 0."""
  kernel = call.node.params['kernel'].shape
  return kernel[3] // call.shapes_in[0][-1] if kernel[2] == 1 else 0


def _grouped_channels(walk, call: base.ChannelCall) -> np.ndarray:
  """One input channel per group: it flows on like a depthwise conv's;
  larger groups keep their channels (a group's inputs and outputs would have
  to go in whole groups)."""
  node, multiplier = call.node, _one_per_group(call)
  if not multiplier:
    walk.block(call.x, f'{node.name} (grouped_conv2d) mixes channels within '
               'groups of more than one')
    return np.full(call.shape_out[-1], -1)
  out = np.repeat(call.x, multiplier)
  walk.record(out, node.name, 'kernel', 3, base.CHANNEL)
  if 'bias' in node.params:
    walk.record(out, node.name, 'bias', 0, base.CHANNEL)
  call.padded_out = False
  return out


def _grouped_constants(call: base.ConstantCall) -> np.ndarray:
  multiplier = _one_per_group(call)
  if not multiplier:
    return np.zeros(call.shape_out[-1], bool)
  kernel = call.node.params['kernel']
  silent = ~(kernel != 0).reshape(-1, kernel.shape[3]).any(axis=0)
  return np.repeat(call.known[0], multiplier) | silent


GROUPED_CONV2D = base.register(base.OpDef(
    'grouped_conv2d', _grouped_shape, _grouped, _grouped_to_keras,
    params=CONV_PARAMS, required=('kernel',), kernels={'kernel': 3},
    variables=CONV_PARAMS, channels=_grouped_channels, constants=_grouped_constants,
    activation=True))
