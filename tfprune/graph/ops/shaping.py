"""Ops that move or keep values without arithmetic: `input`, `identity`
(Dropout and the other layers that are the identity at inference),
`flatten`, `reshape` and `zero_pad2d`."""

import math

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import ir
from tfprune.graph.ops import base


def _flatten_shape(attrs, params, inputs):
  del attrs, params
  return (math.prod(inputs[0]),)


def _reshape_shape(attrs, params, inputs):
  del params
  target = tuple(attrs['target_shape'])
  size = math.prod(inputs[0])
  if target.count(-1) == 1:
    known = math.prod(d for d in target if d != -1)
    if known and size % known == 0:
      target = tuple(size // known if d == -1 else d for d in target)
  if math.prod(target) != size or min(target) < 1:
    raise TfpruneError(f'cannot reshape {inputs[0]} to {tuple(attrs["target_shape"])}')
  return target


def _pad_shape(attrs, params, inputs):
  del params
  h, w, c = base.image(inputs[0], 'zero padding')
  (top, bottom), (left, right) = attrs['padding']
  return (h + top + bottom, w + left + right, c)


def _reshape(node, p, xs, shape):
  del node, p
  return tf.reshape(xs[0], (-1, *shape))


def _read_reshape(l: base.LayerCall) -> list:
  """A Reshape layer, or `ops.reshape`/`tf.reshape` (batch axis first)."""
  if 'target_shape' in l.config:
    target = tuple(l.config['target_shape'])
  else:
    shape = l.kwargs.get('shape', base.call_option(l, 'newshape', 1, None))
    if isinstance(shape, base.TensorArg) or not isinstance(shape, (list, tuple)) \
        or not shape or shape[0] not in (-1, None):
      raise l.refuse(f'shape {shape!r} is not supported: keep the batch axis '
                     'first, as -1, and give the other sizes as numbers')
    target = tuple(-1 if d is None else int(d) for d in shape[1:])
  return [ir.Node(l.name, 'reshape', l.inputs, {'target_shape': target})]


def _read_expand_dims(l: base.LayerCall) -> list:
  """`ops.expand_dims`/`tf.expand_dims` of a non-batch axis, as a reshape."""
  axis = base.call_option(l, 'axis', 1, None)
  rank = len(l.input_shapes[0]) + 1
  if not isinstance(axis, int) or not -rank - 1 <= axis <= rank or axis in (
      0, -rank - 1):
    raise l.refuse(f'axis {axis!r} is not supported: expand a non-batch axis')
  axis = axis + rank + 1 if axis < 0 else axis
  shape = list(l.input_shapes[0])
  shape.insert(axis - 1, 1)
  return [ir.Node(l.name, 'reshape', l.inputs, {'target_shape': tuple(shape)})]


def _read_flatten(l: base.LayerCall) -> list:
  base.channels_last(l)
  return [ir.Node(l.name, 'flatten', l.inputs)]


def _read_zero_pad(l: base.LayerCall) -> list:
  base.channels_last(l)
  padding = l.config['padding']
  if isinstance(padding, int):
    padding = ((padding, padding), (padding, padding))
  padding = tuple(base.pair(l, p, 'padding') if not isinstance(p, int) else (p, p)
                  for p in padding)
  return [ir.Node(l.name, 'zero_pad2d', l.inputs, {'padding': padding})]


# Layers that compute the identity at inference; to_keras rebuilds them from
# the class and the settings kept here, so fine-tuning trains as the user did.
IDENTITY_SETTINGS = {
    'Dropout': ('rate', 'noise_shape', 'seed'), 'SpatialDropout2D': ('rate',),
    'GaussianDropout': ('rate',), 'GaussianNoise': ('stddev',),
    'AlphaDropout': ('rate',), 'ActivityRegularization': ('l1', 'l2'),
    'Identity': (),
}


def _read_identity(l: base.LayerCall) -> list:
  cls = type(l.layer).__name__
  settings = {k: l.config.get(k) for k in IDENTITY_SETTINGS[cls]}
  return [ir.Node(l.name, 'identity', l.inputs,
                  {'keras_class': cls, 'settings': settings})]


def _identity_to_keras(K, node, shapes):
  a = node.attrs
  cls = getattr(K.layers, a['keras_class'], None) or K.layers.Activation
  settings = dict(a['settings']) if cls is not K.layers.Activation else {
      'activation': 'linear'}
  settings = {k: (list(v) if isinstance(v, tuple) else v)
              for k, v in settings.items()}
  return [(cls(**settings, name=node.name), [])]


def reshape_channels(walk, call: base.ChannelCall) -> np.ndarray:
  """Channels through a flatten or a reshape: channel c of an (…, C) input
  is every entry p*C + c of a flat output; a reshape keeping the last axis
  keeps them; any other reshape moves them, so they are kept."""
  shape_in, shape_out = call.shapes_in[0], call.shape_out
  if len(shape_out) == 1:
    return np.tile(call.x, int(np.prod(shape_in[:-1], dtype=np.int64)))
  if shape_out[-1] == shape_in[-1]:
    return call.x
  walk.block(call.x, f'{call.node.name} reshapes {shape_in} to {shape_out}, '
             'moving the channels')
  return np.full(shape_out[-1], -1)


def reshape_constants(call: base.ConstantCall) -> np.ndarray:
  size = call.shape_out[-1]
  known = call.known[0]
  if len(call.shape_out) == 1:
    return np.tile(known, size // known.size)
  if size == call.shapes_in[0][-1]:
    return known
  return np.zeros(size, bool)


def _pad_channels(walk, call: base.ChannelCall) -> np.ndarray:
  del walk
  call.padded_out = True
  return call.x


INPUT = base.register(base.OpDef(
    'input', lambda a, p, i: (), compute=None, to_keras=None, arity=0))
IDENTITY = base.register(base.OpDef(
    'identity', base.same_shape, lambda node, p, xs, shape: xs[0],
    _identity_to_keras, keras=dict.fromkeys(IDENTITY_SETTINGS, _read_identity),
    channels=base.pass_channels, constants=base.pass_constants,
    exact=lambda node, x: x))
FLATTEN = base.register(base.OpDef(
    'flatten', _flatten_shape, _reshape,
    lambda K, node, shapes: [(K.layers.Flatten(name=node.name), [])],
    keras={'Flatten': _read_flatten}, channels=reshape_channels,
    constants=reshape_constants))
RESHAPE = base.register(base.OpDef(
    'reshape', _reshape_shape, _reshape,
    lambda K, node, shapes: [(K.layers.Reshape(tuple(node.attrs['target_shape']),
                                       name=node.name), [])],
    keras={**dict.fromkeys(('Reshape', 'ops.Reshape', 'tf.reshape'),
                           _read_reshape),
           **dict.fromkeys(('ops.ExpandDims', 'tf.expand_dims'),
                           _read_expand_dims)},
    channels=reshape_channels, constants=reshape_constants))
ZERO_PAD2D = base.register(base.OpDef(
    'zero_pad2d', _pad_shape,
    lambda node, p, xs, shape: tf.pad(
        xs[0], [[0, 0], *node.attrs['padding'], [0, 0]]),
    lambda K, node, shapes: [(K.layers.ZeroPadding2D(
        tuple(tuple(x) for x in node.attrs['padding']), name=node.name), [])],
    keras={'ZeroPadding2D': _read_zero_pad}, channels=_pad_channels,
    constants=base.pass_constants))
