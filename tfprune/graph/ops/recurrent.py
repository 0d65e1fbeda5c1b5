"""Recurrent layers: `lstm` (LSTM) and `gru` (GRU), over (steps, features).

Computed step by step as Keras's cells do (implementation 2: all gates from
one matmul), from a zero state. A unit's gates are columns u, u + U, ... of
every kernel, so its units could only go all gates together; the channel
rule keeps them (and the channels the layer reads): unit pruning leaves
the layer whole, weight pruning masks its kernels. `Bidirectional`,
`return_state` and `stateful` are refused in one line (a masked sequence,
which this computation ignores, is refused by the import's check).
"""

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import ir
from tfprune.graph.ops import activations
from tfprune.graph.ops import base

_PARAMS = ('kernel', 'recurrent_kernel', 'bias')
_GATES = {'lstm': 4, 'gru': 3}


def _shape(attrs, params, inputs):
  steps, features = base.image(inputs[0], 'a recurrent layer', rank=2)
  kernel = params['kernel'].shape
  units = params['recurrent_kernel'].shape[0]
  if kernel[0] != features:
    raise TfpruneError(f'recurrent kernel {kernel} does not take {features} '
                       'features')
  return (steps, units) if attrs['return_sequences'] else (units,)


def _steps(node, x):
  steps = [x[:, t] for t in range(x.shape[1])]
  return steps[::-1] if node.attrs['go_backwards'] else steps


def _finish(node, outputs):
  return tf.stack(outputs, axis=1) if node.attrs['return_sequences'] else outputs[-1]


def _lstm(node, p, xs, shape):
  del shape
  act = lambda v: activations.apply_activation(node.attrs['activation'], v)
  gate = lambda v: activations.apply_activation(
      node.attrs['recurrent_activation'], v)
  units = p['recurrent_kernel'].shape[0]
  batch = tf.shape(xs[0])[0]
  h = c = tf.zeros((batch, units), xs[0].dtype)
  outputs = []
  for x in _steps(node, xs[0]):
    z = tf.matmul(x, p['kernel'])
    z = tf.add(z, tf.matmul(h, p['recurrent_kernel']))
    if 'bias' in p:
      z = tf.add(z, p['bias'])
    z0, z1, z2, z3 = tf.split(z, 4, axis=1)
    i, f = gate(z0), gate(z1)
    c = f * c + i * act(z2)
    h = gate(z3) * act(c)
    outputs.append(h)
  return _finish(node, outputs)


def _gru(node, p, xs, shape):
  del shape
  act = lambda v: activations.apply_activation(node.attrs['activation'], v)
  gate = lambda v: activations.apply_activation(
      node.attrs['recurrent_activation'], v)
  units = p['recurrent_kernel'].shape[0]
  h = tf.zeros((tf.shape(xs[0])[0], units), xs[0].dtype)
  input_bias, recurrent_bias = (p['bias'][0], p['bias'][1]) if 'bias' in p \
      else (None, None)
  outputs = []
  for x in _steps(node, xs[0]):
    matrix_x = tf.matmul(x, p['kernel'])
    if input_bias is not None:
      matrix_x = tf.add(matrix_x, input_bias)
    x_z, x_r, x_h = tf.split(matrix_x, 3, axis=-1)
    inner = tf.matmul(h, p['recurrent_kernel'])
    if recurrent_bias is not None:
      inner += recurrent_bias
    z = gate(x_z + inner[:, :units])
    r = gate(x_r + inner[:, units:2 * units])
    hh = act(x_h + r * inner[:, 2 * units:])
    h = z * h + (1 - z) * hh
    outputs.append(h)
  return _finish(node, outputs)


def _read(op: str):
  def read(l: base.LayerCall) -> list:
    c = l.config
    for setting in ('return_state', 'stateful'):
      if c.get(setting):
        raise l.refuse(f'{setting}=True is not supported')
    if op == 'gru' and not c.get('reset_after', True):
      raise l.refuse('reset_after=False is not supported: use the default')
    w = l.weights
    params = {'kernel': w['kernel'], 'recurrent_kernel': w['recurrent_kernel']}
    if c.get('use_bias', True):
      params['bias'] = w['bias'].reshape(2, -1) if op == 'gru' else w['bias']
    return [ir.Node(l.name, op, l.inputs, {
        'activation': activations.read(l, c['activation']),
        'recurrent_activation': activations.read(l, c['recurrent_activation']),
        'return_sequences': bool(c['return_sequences']),
        'go_backwards': bool(c['go_backwards'])}, params)]
  return read


def _to_keras(cls: str):
  def write(K, node, shapes):
    del shapes
    a, p = node.attrs, node.params
    layer = getattr(K.layers, cls)(
        p['recurrent_kernel'].shape[0],
        activation=activations.keras_arg(K, a['activation']),
        recurrent_activation=activations.keras_arg(K, a['recurrent_activation']),
        use_bias='bias' in p, return_sequences=a['return_sequences'],
        go_backwards=a['go_backwards'], name=node.name)
    weights = [p['kernel'], p['recurrent_kernel']]
    if 'bias' in p:
      weights.append(p['bias'])
    return [(layer, weights)]
  return write


def _constants(call: base.ConstantCall) -> np.ndarray:
  return np.zeros(call.shape_out[-1], bool)


LSTM = base.register(base.OpDef(
    'lstm', _shape, _lstm, _to_keras('LSTM'), params=_PARAMS,
    required=('kernel', 'recurrent_kernel'), kernels={'kernel': 1},
    keras={'LSTM': _read('lstm')}, variables=_PARAMS,
    channels=base.mixes_channels('keeps its units: their gates go together'),
    constants=_constants))
GRU = base.register(base.OpDef(
    'gru', _shape, _gru, _to_keras('GRU'), params=_PARAMS,
    required=('kernel', 'recurrent_kernel'), kernels={'kernel': 1},
    keras={'GRU': _read('gru')}, variables=_PARAMS,
    channels=base.mixes_channels('keeps its units: their gates go together'),
    constants=_constants))
