"""Normalisations by statistics: `batch_norm`, `layer_norm` and `group_norm`
(the fixed affine maps `normalization` and `rescaling` are in `affine`)."""

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import ir
from tfprune.graph.ops import base

_BN = ('gamma', 'beta', 'mean', 'variance')


def _channelwise_shape(attrs, params, inputs):
  del attrs
  for name, value in params.items():
    if value.shape != inputs[0][-1:]:
      raise TfpruneError(f'{name} of shape {value.shape} does not fit the '
                         f'{inputs[0][-1]} channels of input {inputs[0]}')
  return inputs[0]


def _layer_norm_shape(attrs, params, inputs):
  axes = attrs['axes']
  if not all(0 <= a < len(inputs[0]) for a in axes):
    raise TfpruneError(f'normalisation axes {axes} do not fit input {inputs[0]}')
  expected = tuple(inputs[0][a] for a in axes)
  for name, value in params.items():
    if value.shape != expected:
      raise TfpruneError(f'{name} of shape {value.shape} does not fit axes '
                         f'{axes} of input {inputs[0]}')
  return inputs[0]


def _batch_norm(node, p, xs, shape):
  del shape
  return tf.nn.batch_normalization(xs[0], p['mean'], p['variance'], p['beta'],
                                   p['gamma'], node.attrs['epsilon'])


def _layer_norm(node, p, xs, shape):
  del shape
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


def _last_axis(l: base.LayerCall, axis) -> None:
  axes = [axis] if isinstance(axis, int) else list(axis)
  rank = len(l.input_shapes[0]) + 1
  if len(axes) != 1 or axes[0] not in (-1, rank - 1):
    raise l.refuse(f'axis {axis} is not supported: normalise the last '
                   '(channels) axis')


def _read_batch_norm(l: base.LayerCall) -> list:
  _last_axis(l, l.config['axis'])
  w, channels = l.weights, l.input_shapes[0][-1]
  return [ir.Node(l.name, 'batch_norm', l.inputs,
                  {'epsilon': float(l.config['epsilon'])},
                  {'gamma': w.get('gamma', np.ones(channels)),
                   'beta': w.get('beta', np.zeros(channels)),
                   'mean': w['moving_mean'], 'variance': w['moving_variance']})]


def _read_layer_norm(l: base.LayerCall) -> list:
  if l.config.get('rms_scaling'):
    raise l.refuse('rms_scaling is not supported')
  axis = l.config['axis']
  rank = len(l.input_shapes[0])
  axes = tuple(sorted((a if a >= 0 else a + rank + 1) - 1
                      for a in ([axis] if isinstance(axis, int) else axis)))
  params = {k: v for k, v in l.weights.items() if k in ('gamma', 'beta')}
  return [ir.Node(l.name, 'layer_norm', l.inputs,
                  {'axes': axes, 'epsilon': float(l.config['epsilon'])},
                  {k: v.reshape([l.input_shapes[0][a] for a in axes])
                   for k, v in params.items()})]


def _layer_norm_to_keras(K, node, shapes):
  p = node.params
  return [(K.layers.LayerNormalization(
      axis=[x + 1 for x in node.attrs['axes']], epsilon=node.attrs['epsilon'],
      center='beta' in p, scale='gamma' in p, name=node.name),
           [p[k] for k in ('gamma', 'beta') if k in p])]


def _batch_norm_channels(walk, call: base.ChannelCall) -> np.ndarray:
  for param in _BN:
    walk.record(call.x, call.node.name, param, 0, base.CHANNEL)
  return call.x


def over_channels(call) -> bool:
  """A layer norm whose axes include the channel axis."""
  return len(call.shapes_in[0]) - 1 in call.node.attrs['axes']


def _layer_norm_channels(walk, call: base.ChannelCall) -> np.ndarray:
  if over_channels(call):
    walk.block(call.x, f'{call.node.name} (layer_norm) normalises over the '
               'channels')
  return call.x


def _layer_norm_constants(call: base.ConstantCall) -> np.ndarray:
  if over_channels(call):
    return np.zeros(call.shape_out[-1], bool)
  return call.known[0]


def _group_norm_shape(attrs, params, inputs):
  channels = inputs[0][-1]
  if len(inputs[0]) < 2 or channels % attrs['group_size']:
    raise TfpruneError(f'groups of {attrs["group_size"]} channels do not '
                       f'divide input {inputs[0]}')
  return _channelwise_shape(attrs, params, inputs)


def _group_norm(node, p, xs, shape):
  """Keras 3's GroupNormalization, op for op (tf_keras's agrees to round-off)."""
  x = xs[0]
  size = node.attrs['group_size']
  groups = shape[-1] // size
  grouped = tf.reshape(x, (-1, *shape[:-1], groups, size))
  axes = [*range(1, len(shape)), len(shape) + 1]
  mean, variance = tf.nn.moments(grouped, axes=axes, keepdims=True)
  inv = tf.math.rsqrt(variance + node.attrs['epsilon'])
  broadcast = [1] * len(shape) + [groups, size]
  if 'gamma' in p:
    inv = inv * tf.reshape(p['gamma'], broadcast)
  res = -mean * inv
  if 'beta' in p:
    res = res + tf.reshape(p['beta'], broadcast)
  return tf.reshape(grouped * inv + res, (-1, *shape))


def _read_group_norm(l: base.LayerCall) -> list:
  _last_axis(l, l.config['axis'])
  channels, groups = l.input_shapes[0][-1], int(l.config['groups'])
  if groups == -1:
    groups = channels
  params = {k: v for k, v in l.weights.items() if k in ('gamma', 'beta')}
  return [ir.Node(l.name, 'group_norm', l.inputs,
                  {'group_size': channels // groups,
                   'epsilon': float(l.config['epsilon'])}, params)]


def _group_norm_to_keras(K, node, shapes):
  p = node.params
  return [(K.layers.GroupNormalization(
      groups=shapes[0][-1] // node.attrs['group_size'],
      epsilon=node.attrs['epsilon'], center='beta' in p, scale='gamma' in p,
      name=node.name), [p[k] for k in ('gamma', 'beta') if k in p])]


def _group_norm_channels(walk, call: base.ChannelCall) -> np.ndarray:
  """The channels of one normalisation group go together (one coupled
  channel), so whole groups are removed and the others keep their
  statistics; a group holding a channel of no group is kept."""
  x, size = call.x, call.node.attrs['group_size']
  for start in range(0, x.size, size):
    members = x[start:start + size]
    if (members < 0).any():
      walk.block(members, f'{call.node.name} (group_norm) normalises them '
                 'with channels that cannot be removed')
      continue
    for other in members[1:]:
      walk.union(int(members[0]), int(other))
  for param in ('gamma', 'beta'):
    if param in call.node.params:
      walk.record(x, call.node.name, param, 0, base.CHANNEL)
  return x


def _group_norm_constants(call: base.ConstantCall) -> np.ndarray:
  """A group whose channels are all constant outputs its beta."""
  size = call.node.attrs['group_size']
  whole = call.known[0].reshape(-1, size).all(axis=1)
  return np.repeat(whole, size)


BATCH_NORM = base.register(base.OpDef(
    'batch_norm', _channelwise_shape, _batch_norm,
    lambda K, node, shapes: [(K.layers.BatchNormalization(
        epsilon=node.attrs['epsilon'], name=node.name),
                      [node.params[k] for k in _BN])],
    params=_BN, required=_BN, keras={'BatchNormalization': _read_batch_norm},
    variables=_BN, channels=_batch_norm_channels,
    constants=base.pass_constants))
LAYER_NORM = base.register(base.OpDef(
    'layer_norm', _layer_norm_shape, _layer_norm, _layer_norm_to_keras,
    params=('gamma', 'beta'), keras={'LayerNormalization': _read_layer_norm},
    variables=('gamma', 'beta'), channels=_layer_norm_channels,
    constants=_layer_norm_constants))
GROUP_NORM = base.register(base.OpDef(
    'group_norm', _group_norm_shape, _group_norm, _group_norm_to_keras,
    params=('gamma', 'beta'), keras={'GroupNormalization': _read_group_norm},
    variables=('gamma', 'beta'), channels=_group_norm_channels,
    constants=_group_norm_constants))
