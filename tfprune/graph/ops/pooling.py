"""Pooling: `max_pool2d`, `avg_pool2d`, `max_pool1d`, `avg_pool1d`,
`global_avg_pool2d`, `global_max_pool2d`.

Each keeps the channels: output channel c is input channel c.
"""

import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import ir
from tfprune.graph.ops import base


def _pool_shape(attrs, params, inputs):
  del params
  rank = len(attrs['pool_size']) + 1
  *size, c = base.image(inputs[0], 'pooling', rank=rank)
  hw = tuple(base.spatial(s, p, st, attrs['padding']) for s, p, st in zip(
      size, attrs['pool_size'], attrs['strides']))
  if min(hw) < 1:
    raise TfpruneError(f'pool {attrs["pool_size"]} is larger than its input '
                       f'{inputs[0]}')
  return hw + (c,)


def _global_shape(attrs, params, inputs):
  del params
  _, _, c = base.image(inputs[0], 'global pooling')
  return (1, 1, c) if attrs['keepdims'] else (c,)


def _pool(fn):
  def pool(node, p, xs, shape):
    del p, shape
    a = node.attrs
    return fn(xs[0], list(a['pool_size']), list(a['strides']),
              a['padding'].upper())
  return pool


def _global(fn):
  return lambda node, p, xs, shape: fn(xs[0], axis=[1, 2],
                                       keepdims=node.attrs['keepdims'])


def _read_pool(op: str, rank: int):
  def read(l: base.LayerCall) -> list:
    base.channels_last(l)
    c = l.config
    size = base.pair(l, c['pool_size'], 'pool_size', rank)
    strides = size if c.get('strides') is None else base.pair(
        l, c['strides'], 'strides', rank)
    return [ir.Node(l.name, op, l.inputs, {'pool_size': size, 'strides': strides,
                                           'padding': c['padding']})]
  return read


def _read_global(op: str):
  def read(l: base.LayerCall) -> list:
    base.channels_last(l)
    return [ir.Node(l.name, op, l.inputs,
                    {'keepdims': bool(l.config.get('keepdims', False))})]
  return read


def _pool_def(op, fn, cls, rank=2):
  return base.register(base.OpDef(
      op, _pool_shape, _pool(fn),
      lambda K, node, shapes: [(getattr(K.layers, cls)(
          tuple(node.attrs['pool_size']), tuple(node.attrs['strides']),
          node.attrs['padding'], name=node.name), [])],
      keras={cls: _read_pool(op, rank)}, channels=base.pass_channels,
      constants=base.pass_constants))


def _global_def(op, fn, cls):
  return base.register(base.OpDef(
      op, _global_shape, _global(fn),
      lambda K, node, shapes: [(getattr(K.layers, cls)(
          keepdims=node.attrs['keepdims'], name=node.name), [])],
      keras={cls: _read_global(op)}, channels=base.pass_channels,
      constants=base.pass_constants))


MAX_POOL2D = _pool_def('max_pool2d', tf.nn.max_pool2d, 'MaxPooling2D')
AVG_POOL2D = _pool_def('avg_pool2d', tf.nn.avg_pool2d, 'AveragePooling2D')
GLOBAL_AVG_POOL2D = _global_def('global_avg_pool2d', tf.reduce_mean,
                                'GlobalAveragePooling2D')
GLOBAL_MAX_POOL2D = _global_def('global_max_pool2d', tf.reduce_max,
                                'GlobalMaxPooling2D')
MAX_POOL1D = _pool_def('max_pool1d', tf.nn.max_pool1d, 'MaxPooling1D', rank=1)
AVG_POOL1D = _pool_def('avg_pool1d', tf.nn.avg_pool1d, 'AveragePooling1D',
                       rank=1)
