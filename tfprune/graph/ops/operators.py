"""Tensor arithmetic written as operators in a functional model: `scalar`.

Keras 3 records `a + b`, `x * 0.5`, `2.0 - x`, `x / 3` and the `keras.ops`
calls (`ops.add`, `ops.maximum`, ...) as operations (`ops.Add`, ...);
tf_keras records them as `TFOpLambda` layers (`tf.__operators__.add`,
`tf.math.multiply`, ...). Between two tensors they read as a `merge` node
(add, subtract, multiply, maximum, minimum); between a tensor and a Python
number as a `scalar` node, `fn(x, value)` or `fn(value, x)`, computed with
the same TensorFlow op. A constant array operand is refused in one line.
"""

import numbers

import numpy as np
import tensorflow as tf

from tfprune.graph import ir
from tfprune.graph.ops import base
from tfprune.graph.ops import merge

FUNCTIONS = {'add': tf.add, 'subtract': tf.subtract, 'multiply': tf.multiply,
             'divide': tf.math.truediv, 'maximum': tf.maximum,
             'minimum': tf.minimum}
# The Keras 3 operation and the tf_keras TFOpLambda symbol of each function.
_KERAS3 = {'Add': 'add', 'Subtract': 'subtract', 'Multiply': 'multiply',
           'Divide': 'divide', 'TrueDivide': 'divide', 'Maximum': 'maximum',
           'Minimum': 'minimum'}
_TF = {'__operators__.add': 'add', 'math.add': 'add',
       'math.subtract': 'subtract', 'math.multiply': 'multiply',
       'math.truediv': 'divide', 'math.divide': 'divide',
       'math.maximum': 'maximum', 'math.minimum': 'minimum'}


def _compute(node, p, xs, shape):
  del p, shape
  a = node.attrs
  value = tf.constant(a['value'], tf.float32)
  fn = FUNCTIONS[a['fn']]
  return fn(value, xs[0]) if a['left'] else fn(xs[0], value)


def _number(value) -> float | None:
  """A Python, NumPy or TensorFlow scalar as a float (None: not a scalar)."""
  if isinstance(value, bool):
    return None
  if isinstance(value, numbers.Real):
    return float(value)
  try:
    array = np.asarray(value)
  except (TypeError, ValueError):
    return None
  return float(array) if array.ndim == 0 and array.dtype.kind in 'fiu' else None


def _read(fn: str):
  def read(l: base.LayerCall) -> list:
    operands = base.tensor_args(l)[:2]
    tensors = [o for o in operands if isinstance(o, base.TensorArg)]
    if len(tensors) == 2 and fn in merge.MODES:
      return [ir.Node(l.name, 'merge', [l.inputs[t.index] for t in tensors],
                      {'mode': fn})]
    constants = [_number(o) for o in operands
                 if not isinstance(o, base.TensorArg)]
    if len(tensors) != 1 or len(constants) != 1 or constants[0] is None:
      raise l.refuse(f'{fn} of {len(tensors)} tensor(s) and a constant array '
                     'is not supported: use a Python number, or a layer with '
                     'weights (e.g. Rescaling)')
    return [ir.Node(l.name, 'scalar', [l.inputs[tensors[0].index]],
                    {'fn': fn, 'value': constants[0],
                     'left': not isinstance(operands[0], base.TensorArg)})]
  return read


def _to_keras(K, node, shapes):
  a = node.attrs
  value, fn = a['value'], a['fn']
  if K.__name__ == 'keras':
    op = getattr(K.ops, {'divide': 'true_divide'}.get(fn, fn))
  else:
    op = {'divide': tf.math.truediv}.get(fn) or getattr(tf.math, fn)
  return [((lambda x: op(value, x)) if a['left'] else (lambda x: op(x, value)),
           [])]


def _constants(call: base.ConstantCall) -> np.ndarray:
  return call.known[0]


SCALAR = base.register(base.OpDef(
    'scalar', base.same_shape, _compute, _to_keras,
    keras={**{f'ops.{cls}': _read(fn) for cls, fn in _KERAS3.items()},
           **{f'tf.{symbol}': _read(fn) for symbol, fn in _TF.items()}},
    channels=base.pass_channels, constants=_constants))
