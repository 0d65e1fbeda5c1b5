"""Normalisations by statistics: `batch_norm`, `layer_norm` and `group_norm`
(the fixed affine maps `normalization` and `rescaling` are in `affine`).

A `layer_norm` over the channel axis normalises each example by the
statistics of all its channels, so removing one changes every other. With
`prune_layer_norm` (`graph.groups.analyse`) its channels are pruned anyway,
exactly: a removed channel sets its entry of the node's `channel_mask` (and
of gamma and beta) to 0, and the masked layer norm computes the plain one
over the kept channels only (the same TensorFlow ops on the gathered kept
channels) and outputs exactly 0 on the removed ones. Compaction deletes the
removed entries, leaving a plain LayerNormalization over the kept channels:
the compacted graph computes what the masked one does. A stock Keras
LayerNormalization has no channel mask, so `to_keras` refuses a masked one
in one line (compact first).
"""

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import ir
from tfprune.graph.ops import base

_BN = ('gamma', 'beta', 'mean', 'variance')
# A layer norm's mask over its channels: 1 kept, 0 removed.
CHANNEL_MASK = 'channel_mask'


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
  if CHANNEL_MASK in params:
    mask = params[CHANNEL_MASK]
    if len(inputs[0]) - 1 not in axes or mask.shape != inputs[0][-1:]:
      raise TfpruneError(f'a channel mask of shape {mask.shape} does not fit '
                         f'the channels of input {inputs[0]} normalised over '
                         f'axes {axes}')
    if not np.isin(mask, (0.0, 1.0)).all():
      raise TfpruneError('a channel mask holds 1 (kept) or 0 (removed) per '
                         'channel')
  for name, value in params.items():
    if name == CHANNEL_MASK:
      continue
    if value.shape != expected:
      raise TfpruneError(f'{name} of shape {value.shape} does not fit axes '
                         f'{axes} of input {inputs[0]}')
  return inputs[0]


def _batch_norm(node, p, xs, shape):
  del shape
  return tf.nn.batch_normalization(xs[0], p['mean'], p['variance'], p['beta'],
                                   p['gamma'], node.attrs['epsilon'])


def _normalise(x, gamma, beta, axes, epsilon):
  """Keras's LayerNormalization of `x` over (batch-counted) `axes`."""
  shape = [1] * x.shape.rank
  for a, size in zip(axes, gamma.shape if gamma is not None else
                     (beta.shape if beta is not None else ())):
    shape[a] = size
  shape[axes[-1]] = -1  # the last axis normalised: the channels, maybe gathered
  mean, variance = tf.nn.moments(x, axes=axes, keepdims=True)
  gamma = tf.reshape(gamma, shape) if gamma is not None else None
  beta = tf.reshape(beta, shape) if beta is not None else None
  return tf.nn.batch_normalization(x, mean, variance, beta, gamma, epsilon)


def _layer_norm(node, p, xs, shape):
  del shape
  x = xs[0]
  axes = [a + 1 for a in node.attrs['axes']]
  gamma, beta = p.get('gamma'), p.get('beta')
  if CHANNEL_MASK not in p:
    return _normalise(x, gamma, beta, axes, node.attrs['epsilon'])
  # The plain layer norm of the kept channels (read from the mask tensor, so
  # one trace serves every mask), scattered back with 0 at removed ones.
  keep = tf.not_equal(p[CHANNEL_MASK], 0)
  kept = tf.reshape(tf.where(keep), [-1])

  def gather(a):
    return None if a is None else tf.gather(a, kept, axis=-1)
  y = _normalise(gather(x), gather(gamma), gather(beta), axes,
                 node.attrs['epsilon'])
  at = tf.where(keep, tf.cumsum(tf.cast(keep, tf.int64)) - 1,
                tf.size(kept, out_type=tf.int64))
  return tf.gather(tf.concat([y, tf.zeros_like(x[..., :1])], -1), at, axis=-1)


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
  if CHANNEL_MASK in p and not p[CHANNEL_MASK].all():
    raise TfpruneError(
        f'layer {node.name} (layer_norm) normalises over '
        f'{int(p[CHANNEL_MASK].sum())} of its {p[CHANNEL_MASK].size} channels '
        '(pruned with prune_layer_norm), which no Keras LayerNormalization '
        'does: compact the graph first (tfprune.compact)')
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
  """Channels over which it normalises are kept, unless `walk` prunes
  through layer norms (or this one is masked already): then its gamma, beta
  and channel mask follow them."""
  node = call.node
  if not over_channels(call):
    return call.x
  if not (walk.prune_layer_norm or CHANNEL_MASK in node.params):
    walk.block(call.x, f'{node.name} (layer_norm) normalises over the '
               'channels (set prune_layer_norm to prune them)')
    return call.x
  axis = len(node.attrs['axes']) - 1  # the channels' axis of gamma and beta
  for param in ('gamma', 'beta'):
    if param in node.params:
      walk.record(call.x, node.name, param, axis, base.CHANNEL)
  walk.record(call.x, node.name, CHANNEL_MASK, 0, base.CHANNEL)
  return call.x


def _layer_norm_constants(call: base.ConstantCall) -> np.ndarray:
  """Over the channels: the masked ones (exactly 0); else per channel."""
  if over_channels(call):
    mask = call.node.params.get(CHANNEL_MASK)
    return (np.zeros(call.shape_out[-1], bool) if mask is None
            else mask == 0)
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
    params=('gamma', 'beta', CHANNEL_MASK),
    keras={'LayerNormalization': _read_layer_norm},
    variables=('gamma', 'beta'), channels=_layer_norm_channels,
    constants=_layer_norm_constants, channel_mask=CHANNEL_MASK))
GROUP_NORM = base.register(base.OpDef(
    'group_norm', _group_norm_shape, _group_norm, _group_norm_to_keras,
    params=('gamma', 'beta'), keras={'GroupNormalization': _read_group_norm},
    variables=('gamma', 'beta'), channels=_group_norm_channels,
    constants=_group_norm_constants))
