"""Recurrent layers: `lstm` (LSTM) and `gru` (GRU), over (steps, features),
and `bidirectional` (Bidirectional around an LSTM or a GRU).

Computed step by step as Keras's cells do (implementation 2: all gates from
one matmul), from a zero state. A unit's gates are columns u, u + U, ... of
every kernel, so its units could only go all gates together; the channel
rule keeps them (and the channels the layer reads): unit pruning leaves
the layer whole, weight pruning masks its kernels. `return_state`,
`stateful` and Bidirectional's `merge_mode=None` (two outputs) are refused
in one line (a masked sequence, which this computation ignores, is refused
by the import's check).
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


def _steps(attrs, x):
  steps = [x[:, t] for t in range(x.shape[1])]
  return steps[::-1] if attrs['go_backwards'] else steps


def _finish(attrs, outputs):
  return tf.stack(outputs, axis=1) if attrs['return_sequences'] else outputs[-1]


def _lstm(attrs, p, sequence):
  """Keras's LSTM over `sequence` (batch, steps, features)."""
  act = lambda v: activations.apply_activation(attrs['activation'], v)
  gate = lambda v: activations.apply_activation(attrs['recurrent_activation'], v)
  units = p['recurrent_kernel'].shape[0]
  batch = tf.shape(sequence)[0]
  h = c = tf.zeros((batch, units), sequence.dtype)
  outputs = []
  for x in _steps(attrs, sequence):
    z = tf.matmul(x, p['kernel'])
    z = tf.add(z, tf.matmul(h, p['recurrent_kernel']))
    if 'bias' in p:
      z = tf.add(z, p['bias'])
    z0, z1, z2, z3 = tf.split(z, 4, axis=1)
    i, f = gate(z0), gate(z1)
    c = f * c + i * act(z2)
    h = gate(z3) * act(c)
    outputs.append(h)
  return _finish(attrs, outputs)


def _gru(attrs, p, sequence):
  """Keras's GRU (reset_after=True) over `sequence` (batch, steps, features)."""
  act = lambda v: activations.apply_activation(attrs['activation'], v)
  gate = lambda v: activations.apply_activation(attrs['recurrent_activation'], v)
  units = p['recurrent_kernel'].shape[0]
  h = tf.zeros((tf.shape(sequence)[0], units), sequence.dtype)
  input_bias, recurrent_bias = (p['bias'][0], p['bias'][1]) if 'bias' in p \
      else (None, None)
  outputs = []
  for x in _steps(attrs, sequence):
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
  return _finish(attrs, outputs)


_RUN = {'lstm': _lstm, 'gru': _gru}
_CLASSES = {'lstm': 'LSTM', 'gru': 'GRU'}


def _attrs_params(l: base.LayerCall, op: str) -> tuple[dict, dict]:
  """The attributes and parameters of an LSTM or GRU layer call."""
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
  return {'activation': activations.read(l, c['activation']),
          'recurrent_activation': activations.read(l, c['recurrent_activation']),
          'return_sequences': bool(c['return_sequences']),
          'go_backwards': bool(c['go_backwards'])}, params


def _read(op: str):
  def read(l: base.LayerCall) -> list:
    attrs, params = _attrs_params(l, op)
    return [ir.Node(l.name, op, l.inputs, attrs, params)]
  return read


def _keras_layer(K, op: str, attrs: dict, params: dict, name: str):
  """The Keras LSTM/GRU layer of `attrs`, and its weights in Keras's order."""
  layer = getattr(K.layers, _CLASSES[op])(
      params['recurrent_kernel'].shape[0],
      activation=activations.keras_arg(K, attrs['activation']),
      recurrent_activation=activations.keras_arg(K, attrs['recurrent_activation']),
      use_bias='bias' in params, return_sequences=attrs['return_sequences'],
      go_backwards=attrs['go_backwards'], name=name)
  return layer, [params[k] for k in _PARAMS if k in params]


def _to_keras(op: str):
  def write(K, node, shapes):
    del shapes
    return [_keras_layer(K, op, node.attrs, node.params, node.name)]
  return write


def _constants(call: base.ConstantCall) -> np.ndarray:
  return np.zeros(call.shape_out[-1], bool)


def _compute(op: str):
  return lambda node, p, xs, shape: _RUN[op](node.attrs, p, xs[0])


_KEEPS_UNITS = base.mixes_channels('keeps its units: their gates go together')
LSTM = base.register(base.OpDef(
    'lstm', _shape, _compute('lstm'), _to_keras('lstm'), params=_PARAMS,
    required=('kernel', 'recurrent_kernel'), kernels={'kernel': 1},
    keras={'LSTM': _read('lstm')}, variables=_PARAMS,
    channels=_KEEPS_UNITS,
    constants=_constants))
GRU = base.register(base.OpDef(
    'gru', _shape, _compute('gru'), _to_keras('gru'), params=_PARAMS,
    required=('kernel', 'recurrent_kernel'), kernels={'kernel': 1},
    keras={'GRU': _read('gru')}, variables=_PARAMS,
    channels=_KEEPS_UNITS,
    constants=_constants))


# Bidirectional: the wrapped LSTM/GRU forward over the sequence (the
# forward layer's `go_backwards`) and its mirrored copy the other way, their
# outputs (the backward sequence flipped back to forward time) merged by
# `merge_mode`. Each array holds both directions side by side on its last
# axis (forward first), so the layer's input kernel is one kernel to every
# criterion, as both directions read the same input features.
_MERGES = {'concat': lambda y, r: tf.concat([y, r], axis=-1),
           'sum': lambda y, r: y + r, 'mul': lambda y, r: y * r,
           'ave': lambda y, r: (y + r) / 2}


def _directions(attrs: dict, params: dict, split) -> list[tuple[dict, dict]]:
  """(attrs, params) of the forward and the backward layer."""
  halves = {k: split(v, 2, axis=-1) for k, v in params.items()}
  backward = {**attrs, 'go_backwards': not attrs['go_backwards']}
  return [(a, {k: v[i] for k, v in halves.items()})
          for i, a in enumerate((attrs, backward))]


def _bidirectional_shape(attrs, params, inputs):
  units = params['recurrent_kernel'].shape[0]
  columns = 2 * _GATES[attrs['cell']] * units
  for name, value in params.items():
    if value.shape[-1] != columns:
      raise TfpruneError(f'bidirectional {name} {value.shape} does not hold '
                         f'two directions of {units} units')
  out = _shape(attrs, params, inputs)
  return out[:-1] + (2 * units if attrs['merge_mode'] == 'concat' else units,)


def _bidirectional(node, p, xs, shape):
  del shape
  a = node.attrs
  run = _RUN[a['cell']]
  (fa, fp), (ba, bp) = _directions(a, p, tf.split)
  reverse = run(ba, bp, xs[0])
  if a['return_sequences']:
    reverse = tf.reverse(reverse, axis=[1])
  return _MERGES[a['merge_mode']](run(fa, fp, xs[0]), reverse)


def _sublayer(l: base.LayerCall, layer) -> base.LayerCall:
  weights = {w.name.split('/')[-1].split(':')[0]: np.asarray(w.numpy(), np.float32)
             for w in layer.weights}
  return base.LayerCall(layer, layer.get_config(), weights, l.inputs,
                        l.input_shapes, l.framework, l.name)


def _read_bidirectional(l: base.LayerCall) -> list:
  mode = l.config.get('merge_mode')
  if mode not in _MERGES:
    raise l.refuse(f'merge_mode {mode!r} is not supported: use one of '
                   f'{", ".join(_MERGES)} (None returns two outputs)')
  forward, backward = l.layer.forward_layer, l.layer.backward_layer
  op = {v: k for k, v in _CLASSES.items()}.get(type(forward).__name__)
  if op is None or type(backward) is not type(forward):
    raise l.refuse(f'it wraps {type(forward).__name__} and '
                   f'{type(backward).__name__}: only LSTM or GRU both ways is '
                   'supported')
  attrs, params = _attrs_params(_sublayer(l, forward), op)
  back_attrs, back_params = _attrs_params(_sublayer(l, backward), op)
  if back_attrs != {**attrs, 'go_backwards': not attrs['go_backwards']} or (
      back_params.keys() != params.keys() or any(
          back_params[k].shape != v.shape for k, v in params.items())):
    raise l.refuse('its backward layer is configured unlike its forward '
                   'layer: only a mirrored copy is supported')
  return [ir.Node(l.name, 'bidirectional', l.inputs,
                  {**attrs, 'cell': op, 'merge_mode': mode},
                  {k: np.concatenate([v, back_params[k]], axis=-1)
                   for k, v in params.items()})]


def _bidirectional_to_keras(K, node, shapes):
  del shapes
  a = node.attrs
  cell = {k: v for k, v in a.items() if k not in ('cell', 'merge_mode')}
  (fa, fp), (_, bp) = _directions(cell, node.params, np.split)
  forward, weights = _keras_layer(K, a['cell'], fa, fp, f'{node.name}_forward')
  return [(K.layers.Bidirectional(forward, merge_mode=a['merge_mode'],
                                  name=node.name),
           weights + [bp[k] for k in _PARAMS if k in bp])]


# Its arrays are not Keras's variables (each holds two), so `variables` is
# empty: training that maps graph arrays to Keras variables leaves it out.
BIDIRECTIONAL = base.register(base.OpDef(
    'bidirectional', _bidirectional_shape, _bidirectional,
    _bidirectional_to_keras, params=_PARAMS,
    required=('kernel', 'recurrent_kernel'), kernels={'kernel': 1},
    keras={'Bidirectional': _read_bidirectional},
    channels=_KEEPS_UNITS, constants=_constants))
