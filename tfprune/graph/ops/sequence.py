"""Sequences (batch, steps, channels): `global_avg_pool1d`,
`global_max_pool1d` and `embedding`.

Keras's GlobalAveragePooling1D and GlobalMaxPooling1D over the steps axis
(channels last) keep the channels: output channel c is input channel c.
Keras's Embedding maps token ids to the rows of its table; its columns are
new channels (pruned like a Dense layer's units).
"""

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
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
      lambda K, node, shapes: [(getattr(K.layers, cls)(
          keepdims=node.attrs['keepdims'], name=node.name), [])],
      keras={cls: _read_global(op)}, channels=base.pass_channels,
      constants=base.pass_constants))


GLOBAL_AVG_POOL1D = _global_def('global_avg_pool1d', tf.reduce_mean,
                                'GlobalAveragePooling1D')
GLOBAL_MAX_POOL1D = _global_def('global_max_pool1d', tf.reduce_max,
                                'GlobalMaxPooling1D')


# `embedding`: Keras's Embedding, a table `kernel` (vocabulary, width) read
# at the token ids of its input (float values, truncated to int as Keras
# casts them). Its output channels are the table's columns: a producer.

def _embedding_shape(attrs, params, inputs):
  del attrs
  kernel = params['kernel'].shape
  if len(kernel) != 2:
    raise TfpruneError(f'embedding table {kernel} is not (vocabulary, width)')
  return tuple(inputs[0]) + (kernel[1],)


def _embedding(node, p, xs, shape):
  del node, shape
  ids = tf.cast(xs[0], tf.int32)
  vocabulary = tf.shape(p['kernel'])[0]
  # Keras 3 reads a negative id from the end of the table (`ops.take`).
  return tf.gather(p['kernel'], tf.where(ids < 0, ids + vocabulary, ids))


def _read_embedding(l: base.LayerCall) -> list:
  base.check_plain(l)
  if l.config.get('mask_zero'):
    raise l.refuse('mask_zero=True (a Keras mask for the layers after it) '
                   'is not supported')
  return [ir.Node(l.name, 'embedding', l.inputs, {},
                  {'kernel': l.weights['embeddings']})]


def _embedding_channels(walk, call: base.ChannelCall) -> np.ndarray:
  node = call.node
  walk.block(call.x, f'{node.name} (embedding) reads them as token ids')
  out = walk.new(node.name, node.params['kernel'].shape[1])
  walk.record(out, node.name, 'kernel', 1, base.PRODUCER)
  call.padded_out = False
  return out


def _embedding_constants(call: base.ConstantCall) -> np.ndarray:
  """A table column that is all one value (a removed, zeroed one)."""
  kernel = call.node.params['kernel']
  return (kernel == kernel[:1]).all(axis=0)


EMBEDDING = base.register(base.OpDef(
    'embedding', _embedding_shape, _embedding,
    lambda K, node, shapes: [(K.layers.Embedding(
        *node.params['kernel'].shape, name=node.name),
                      [node.params['kernel']])],
    params=('kernel',), required=('kernel',), kernels={'kernel': 1},
    keras={'Embedding': _read_embedding}, variables=('kernel',),
    channels=_embedding_channels, constants=_embedding_constants))
