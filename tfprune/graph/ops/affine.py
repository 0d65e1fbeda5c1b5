"""Fixed affine maps: `normalization` (Keras's Normalization layer, with its
adapted mean and variance) and `rescaling` (Rescaling, and ConvNeXt's
LayerScale), x * scale + offset with arrays broadcast to the input."""

import numpy as np
import tensorflow as tf

from tfprune import keras_compat
from tfprune.errors import TfpruneError
from tfprune.graph import ir
from tfprune.graph.ops import base


def _broadcast_shape(attrs, params, inputs):
  del attrs
  for name, value in params.items():
    if len(value.shape) > len(inputs[0]) + 1 or any(
        d not in (1, s) for d, s in zip(value.shape[::-1], inputs[0][::-1])):
      raise TfpruneError(f'{name} of shape {value.shape} does not broadcast '
                         f'to input {inputs[0]}')
  return inputs[0]


def _normalization(node, p, xs, shape):
  del shape
  return (xs[0] - p['mean']) / tf.maximum(tf.sqrt(p['variance']),
                                          node.attrs['epsilon'])


def _per_example(array, rank: int) -> np.ndarray:
  array = np.asarray(array, np.float32)
  return array.reshape(array.shape[1:]) if array.ndim == rank + 1 else array


def _read_normalization(l: base.LayerCall) -> list:
  if l.config.get('invert'):
    raise l.refuse('invert=True is not supported')
  rank = len(l.input_shapes[0])
  mean, variance = (_per_example(np.asarray(getattr(l.layer, k)), rank)
                    for k in ('mean', 'variance'))
  epsilon = keras_compat.keras_module(l.framework).backend.epsilon()
  return [ir.Node(l.name, 'normalization', l.inputs, {'epsilon': float(epsilon)},
                  {'mean': mean, 'variance': variance})]


def _read_rescaling(l: base.LayerCall) -> list:
  return [ir.Node(l.name, 'rescaling', l.inputs, {},
                  {'scale': np.asarray(l.config['scale'], np.float32),
                   'offset': np.asarray(l.config['offset'], np.float32)})]


def _read_layer_scale(l: base.LayerCall) -> list:
  """ConvNeXt's LayerScale: x * gamma, a per-channel rescaling (offset 0)."""
  gamma = np.asarray(l.layer.gamma, np.float32)
  return [ir.Node(l.name, 'rescaling', l.inputs, {},
                  {'scale': gamma, 'offset': np.zeros((), np.float32)})]


def _scalar_or_list(array: np.ndarray):
  return float(array) if array.ndim == 0 else array.tolist()


def _normalization_to_keras(K, node, shapes):
  """A Normalization layer over the axes where mean or variance vary (counted
  from the end), so arrays of any broadcastable shape fit Keras 3's rule
  that their rank not exceed the number of axes."""
  mean, variance = (np.asarray(node.params[k]) for k in ('mean', 'variance'))
  shape = np.broadcast_shapes(mean.shape, variance.shape)
  kept = [i for i, d in enumerate(shape) if d > 1]
  sizes = [shape[i] for i in kept]
  mean, variance = (np.broadcast_to(a, shape).reshape(sizes) if kept
                    else a.reshape(()) for a in (mean, variance))
  axis = tuple(i - len(shape) for i in kept) or None
  return [(K.layers.Normalization(axis=axis, mean=mean, variance=variance,
                                  name=node.name), None)]


def _per_channel_channels(walk, call: base.ChannelCall) -> np.ndarray:
  """Records a normalization/rescaling node's arrays, or keeps its channels."""
  node, labels = call.node, call.x
  for param, value in node.params.items():
    if value.size == 1:
      continue  # a scalar applies to every channel alike
    if value.ndim and value.shape[-1] == labels.size and value.size == labels.size:
      walk.record(labels, node.name, param, value.ndim - 1, base.CHANNEL)
    else:
      walk.block(labels, f'{node.name} ({node.op}) has {param} of shape '
                 f'{value.shape}, neither per channel nor scalar, for input '
                 f'{call.shapes_in[0]}')
  return labels


NORMALIZATION = base.register(base.OpDef(
    'normalization', _broadcast_shape, _normalization,
    _normalization_to_keras,
    params=('mean', 'variance'), required=('mean', 'variance'),
    keras={'Normalization': _read_normalization},
    channels=_per_channel_channels, constants=base.pass_constants))
RESCALING = base.register(base.OpDef(
    'rescaling', _broadcast_shape,
    lambda node, p, xs, shape: xs[0] * p['scale'] + p['offset'],
    lambda K, node, shapes: [(K.layers.Rescaling(
        _scalar_or_list(node.params['scale']),
        _scalar_or_list(node.params['offset']), name=node.name), [])],
    params=('scale', 'offset'), required=('scale', 'offset'),
    keras={'Rescaling': _read_rescaling, 'LayerScale': _read_layer_scale},
    channels=_per_channel_channels, constants=base.pass_constants))
