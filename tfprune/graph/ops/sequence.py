"""Sequences (batch, steps, channels): `global_avg_pool1d`, `global_max_pool1d`.

Keras's GlobalAveragePooling1D and GlobalMaxPooling1D over the steps axis
(channels last); each keeps the channels: output channel c is input
channel c.
"""

import tensorflow as tf

from tfprune.graph import ir
from tfprune.graph.ops import base


def _global_shape(attrs, params, inputs):
  del params
  _, c = base.image(inputs[0], 'global 1-D pooling', rank=2)
  return (1, c) if attrs['keepdims'] else (c,)


def _read_global(op: str):
  def read(l: base.LayerCall) -> list:
    base.channels_last(l)
    return [ir.Node(l.name, op, l.inputs,
                    {'keepdims': bool(l.config.get('keepdims', False))})]
  return read


def _global_def(op, fn, cls):
  return base.register(base.OpDef(
      op, _global_shape,
      lambda node, p, xs, shape: fn(xs[0], axis=1,
                                    keepdims=node.attrs['keepdims']),
      lambda K, node: [(getattr(K.layers, cls)(
          keepdims=node.attrs['keepdims'], name=node.name), [])],
      keras={cls: _read_global(op)}, channels=base.pass_channels,
      constants=base.pass_constants))


GLOBAL_AVG_POOL1D = _global_def('global_avg_pool1d', tf.reduce_mean,
                                'GlobalAveragePooling1D')
GLOBAL_MAX_POOL1D = _global_def('global_max_pool1d', tf.reduce_max,
                                'GlobalMaxPooling1D')
