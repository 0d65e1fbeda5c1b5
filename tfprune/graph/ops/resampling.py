"""Ops that move positions, not channels: `upsample2d` (UpSampling2D,
nearest), `crop2d` (Cropping2D) and `permute` (Permute, `ops.transpose`,
`tf.transpose`)."""

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import ir
from tfprune.graph.ops import base


def _upsample_shape(attrs, params, inputs):
  del params
  h, w, c = base.image(inputs[0], 'upsampling')
  sh, sw = attrs['size']
  return (h * sh, w * sw, c)


def _upsample(node, p, xs, shape):
  del p, shape
  sh, sw = node.attrs['size']
  # Nearest-neighbour upsampling by whole factors copies each value.
  return tf.repeat(tf.repeat(xs[0], sh, axis=1), sw, axis=2)


def _read_upsample(l: base.LayerCall) -> list:
  base.channels_last(l)
  if l.config.get('interpolation', 'nearest') != 'nearest':
    raise l.refuse(f'interpolation {l.config["interpolation"]!r} is not '
                   'supported: use nearest')
  return [ir.Node(l.name, 'upsample2d', l.inputs,
                  {'size': base.pair(l, l.config['size'], 'size')})]


def _crop_shape(attrs, params, inputs):
  del params
  h, w, c = base.image(inputs[0], 'cropping')
  (top, bottom), (left, right) = attrs['cropping']
  if top + bottom >= h or left + right >= w:
    raise TfpruneError(f'cropping {attrs["cropping"]} leaves nothing of {inputs[0]}')
  return (h - top - bottom, w - left - right, c)


def _crop(node, p, xs, shape):
  del p
  (top, _), (left, _) = node.attrs['cropping']
  return xs[0][:, top:top + shape[0], left:left + shape[1], :]


def _read_crop(l: base.LayerCall) -> list:
  base.channels_last(l)
  cropping = l.config['cropping']
  if isinstance(cropping, int):
    cropping = (cropping, cropping)
  cropping = tuple((c, c) if isinstance(c, int) else base.pair(l, c, 'cropping')
                   for c in cropping)
  return [ir.Node(l.name, 'crop2d', l.inputs, {'cropping': cropping})]


def _permute_shape(attrs, params, inputs):
  del params
  dims = tuple(attrs['dims'])
  if sorted(dims) != list(range(len(inputs[0]))):
    raise TfpruneError(f'dims {dims} do not permute the axes of {inputs[0]}')
  return tuple(inputs[0][d] for d in dims)


def _read_permute(l: base.LayerCall) -> list:
  if 'dims' in l.config:  # Permute: 1-based, without the batch axis
    dims = tuple(int(d) - 1 for d in l.config['dims'])
  else:  # ops.transpose / tf.transpose: with the batch axis
    axes = base.call_option(l, 'axes', 1, None)
    axes = l.kwargs.get('perm', axes)
    rank = len(l.input_shapes[0]) + 1
    if axes is None:
      axes = tuple(range(rank))[::-1]
    if isinstance(axes, base.TensorArg) or not axes or axes[0] != 0:
      raise l.refuse(f'axes {axes!r} are not supported: keep the batch axis first')
    dims = tuple(int(a) % rank - 1 for a in axes[1:])
  return [ir.Node(l.name, 'permute', l.inputs, {'dims': dims})]


def _keeps_channels(call) -> bool:
  dims = call.node.attrs['dims']
  return dims[-1] == len(dims) - 1


def _permute_channels(walk, call: base.ChannelCall) -> np.ndarray:
  if _keeps_channels(call):
    return call.x
  walk.block(call.x, f'{call.node.name} (permute) moves the channel axis')
  return np.full(call.shape_out[-1], -1)


def _permute_constants(call: base.ConstantCall) -> np.ndarray:
  if _keeps_channels(call):
    return call.known[0]
  return np.zeros(call.shape_out[-1], bool)


UPSAMPLE2D = base.register(base.OpDef(
    'upsample2d', _upsample_shape, _upsample,
    lambda K, node, shapes: [(K.layers.UpSampling2D(
        tuple(node.attrs['size']), name=node.name), [])],
    keras={'UpSampling2D': _read_upsample}, channels=base.pass_channels,
    constants=base.pass_constants))
CROP2D = base.register(base.OpDef(
    'crop2d', _crop_shape, _crop,
    lambda K, node, shapes: [(K.layers.Cropping2D(
        tuple(tuple(c) for c in node.attrs['cropping']), name=node.name), [])],
    keras={'Cropping2D': _read_crop}, channels=base.pass_channels,
    constants=base.pass_constants))
PERMUTE = base.register(base.OpDef(
    'permute', _permute_shape,
    lambda node, p, xs, shape: tf.transpose(
        xs[0], [0, *(d + 1 for d in node.attrs['dims'])]),
    lambda K, node, shapes: [(K.layers.Permute(
        tuple(d + 1 for d in node.attrs['dims']), name=node.name), [])],
    keras=dict.fromkeys(('Permute', 'ops.Transpose', 'tf.compat.v1.transpose',
                         'tf.transpose'), _read_permute),
    channels=_permute_channels, constants=_permute_constants))
