"""Ops joining tensors: `merge` (Add, Subtract, Multiply, Average, Maximum,
Minimum) and `concat` (Concatenate)."""

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import ir
from tfprune.graph.ops import base

MODES = ('add', 'subtract', 'multiply', 'average', 'maximum', 'minimum')
_KERAS_CLASSES = {'add': 'Add', 'subtract': 'Subtract', 'multiply': 'Multiply',
                  'average': 'Average', 'maximum': 'Maximum',
                  'minimum': 'Minimum'}


def _merge_shape(attrs, params, inputs):
  del attrs, params
  rank = max(len(s) for s in inputs)
  padded = [(1,) * (rank - len(s)) + tuple(s) for s in inputs]
  out = []
  for dims in zip(*padded):
    sizes = {d for d in dims if d != 1}
    if len(sizes) > 1:
      raise TfpruneError(f'inputs of shapes {list(inputs)} do not broadcast')
    out.append(sizes.pop() if sizes else 1)
  return tuple(out)


def _concat_shape(attrs, params, inputs):
  del params
  axis = attrs['axis']
  ranks = {len(s) for s in inputs}
  if len(ranks) != 1 or not 0 <= axis < ranks.pop():
    raise TfpruneError(f'cannot concatenate shapes {list(inputs)} on axis {axis}')
  rest = {s[:axis] + s[axis + 1:] for s in inputs}
  if len(rest) != 1:
    raise TfpruneError(f'cannot concatenate shapes {list(inputs)} on axis {axis}')
  first = inputs[0]
  return first[:axis] + (sum(s[axis] for s in inputs),) + first[axis + 1:]


def _merge(node, p, xs, shape):
  del p, shape
  mode = node.attrs['mode']
  if mode == 'subtract':
    return xs[0] - xs[1]
  combine = {'add': tf.add, 'average': tf.add, 'multiply': tf.multiply,
             'maximum': tf.maximum, 'minimum': tf.minimum}[mode]
  out = xs[0]
  for x in xs[1:]:
    out = combine(out, x)
  return out / len(xs) if mode == 'average' else out


def _read_merge(mode: str):
  return lambda l: [ir.Node(l.name, 'merge', l.inputs, {'mode': mode})]


def read_concat_axis(l: base.LayerCall, axis: int) -> int:
  """A Keras concatenation axis as the graph's (per example, from 0)."""
  rank = len(l.input_shapes[0])
  if axis == 0 or not -rank - 1 <= axis <= rank:
    raise l.refuse(f'axis {axis} is not supported: concatenate a non-batch axis')
  return axis + rank if axis < 0 else axis - 1


def _read_concat(l: base.LayerCall) -> list:
  axis = base.call_option(l, 'axis', 1, None)
  if not isinstance(axis, int):
    raise l.refuse(f'axis {axis!r} is not supported: concatenate one axis')
  return [ir.Node(l.name, 'concat', l.inputs,
                  {'axis': read_concat_axis(l, axis)})]


def tie(walk, call: base.ChannelCall) -> np.ndarray:
  """Joins the channels of the inputs one to one (a merge)."""
  arrays, node = call.ins, call.node.name
  if len({a.size for a in arrays}) != 1:
    walk.block(np.concatenate(arrays),
               f'{node} broadcasts inputs of different channel counts')
    return np.full(max(a.size for a in arrays), -1)
  out = arrays[0].copy()
  for other in arrays[1:]:
    for i, (a, b) in enumerate(zip(out, other)):
      if a < 0 or b < 0:
        walk.block([a, b], f'{node} adds the network input to them')
        out[i] = -1
      else:
        walk.union(int(a), int(b))
  return out


def _on_channels(call) -> bool:
  return call.node.attrs['axis'] == len(call.shapes_in[0]) - 1


def _concat_channels(walk, call: base.ChannelCall) -> np.ndarray:
  if _on_channels(call):
    return np.concatenate(call.ins)
  return tie(walk, call)


def tie_constants(call: base.ConstantCall) -> np.ndarray:
  """An entry is constant when it is in every input (same widths)."""
  if len({k.size for k in call.known}) == 1:
    return np.logical_and.reduce(call.known)
  return np.zeros(call.shape_out[-1], bool)


def _concat_constants(call: base.ConstantCall) -> np.ndarray:
  if _on_channels(call):
    return np.concatenate(call.known)
  return tie_constants(call)


MERGE = base.register(base.OpDef(
    'merge', _merge_shape, _merge,
    lambda K, node, shapes: [(getattr(K.layers, _KERAS_CLASSES[node.attrs['mode']])(
        name=node.name), [])],
    arity=None, keras={cls: _read_merge(mode)
                       for mode, cls in _KERAS_CLASSES.items()},
    channels=tie, constants=tie_constants))
CONCAT = base.register(base.OpDef(
    'concat', _concat_shape,
    lambda node, p, xs, shape: tf.concat(xs, axis=node.attrs['axis'] + 1),
    lambda K, node, shapes: [(K.layers.Concatenate(axis=node.attrs['axis'] + 1,
                                           name=node.name), [])],
    arity=None, keras=dict.fromkeys(
        ('Concatenate', 'ops.Concatenate', 'tf.concat'), _read_concat),
    channels=_concat_channels, constants=_concat_constants))
