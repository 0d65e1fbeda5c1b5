"""The operations a graph node can be, their attributes, parameters and shapes.

`OPS` is the one table of node kinds, in the spirit of TF-MOT's
`prune_registry` (`{layers.Dense: ['kernel'], ...}`): for each op it lists
the parameters a node holds, which of them are prunable kernels and along
which axis their output channels lie, and how the op maps input shapes to its
output shape. Shapes are per example (no batch axis), channels last.

Activations are values such as `{'fn': 'relu'}` or `{'fn': 'relu',
'max_value': 6.0, 'negative_slope': 0.0, 'threshold': 0.0}`; `ACTIVATIONS`
lists the functions and their parameters. The evaluator
(`graph.evaluator`) and the Keras importer/builder (`keras_io`) each give
every op of this table its computation; none of them knows an op that is not
here.
"""

import dataclasses
import math
from typing import Callable, Sequence

from tfprune import registry
from tfprune.errors import TfpruneError

Shape = tuple[int, ...]

# Activation function -> its parameters with their defaults.
ACTIVATIONS: dict[str, dict[str, float | None]] = {
    'linear': {},
    'relu': {'max_value': None, 'negative_slope': 0.0, 'threshold': 0.0},
    'relu6': {},
    'sigmoid': {},
    'tanh': {},
    'softmax': {'axis': -1},
    'swish': {},
    'gelu': {'approximate': 0.0},
    'elu': {'alpha': 1.0},
    'leaky_relu': {'negative_slope': 0.2},
    'softplus': {},
    'selu': {},
}


def activation(fn: str, **params) -> dict:
  """A checked activation value, its parameters completed with defaults.

  Raises:
    TfpruneError: unknown function or parameter.
  """
  registry.check_choice(fn, ACTIVATIONS, 'activation')
  unknown = set(params) - set(ACTIVATIONS[fn])
  if unknown:
    raise TfpruneError(f'activation {fn} has no parameter {sorted(unknown)}: '
                       f'it takes {sorted(ACTIVATIONS[fn]) or "none"}')
  value = {'fn': fn, **ACTIVATIONS[fn], **params}
  return {k: (None if v is None else float(v)) if k != 'fn' else v
          for k, v in value.items()}


LINEAR = {'fn': 'linear'}


@dataclasses.dataclass(frozen=True)
class OpDef:
  """What one op holds and how its output shape follows from its inputs.

  Attributes:
    params: parameter names a node of this op may hold (all optional unless
      listed in `required`).
    required: parameters every node of this op holds.
    kernels: prunable parameter -> axis of its output channels.
    arity: number of inputs (None: two or more).
    shape: (attrs, params, input shapes) -> output shape; raises
      `TfpruneError` when the inputs do not fit.
  """
  params: tuple[str, ...]
  required: tuple[str, ...]
  kernels: dict[str, int]
  arity: int | None
  shape: Callable[[dict, dict, Sequence[Shape]], Shape]


def _spatial(size: int, window: int, stride: int, padding: str,
             dilation: int = 1) -> int:
  effective = (window - 1) * dilation + 1
  if padding == 'same':
    return math.ceil(size / stride)
  return (size - effective) // stride + 1


def _image(shape: Shape, what: str) -> Shape:
  if len(shape) != 3:
    raise TfpruneError(f'{what} needs an (h, w, c) input, got {shape}')
  return shape


def _conv_shape(attrs, params, inputs):
  h, w, c = _image(inputs[0], 'a conv')
  kernel = params['kernel'].shape
  if len(kernel) != 4 or kernel[2] != c:
    raise TfpruneError(f'conv kernel {kernel} does not take {c} channels')
  return _out_hw(attrs, (h, w), kernel[:2]) + (kernel[3],)


def _depthwise_shape(attrs, params, inputs):
  h, w, c = _image(inputs[0], 'a depthwise conv')
  kernel = params['kernel'].shape
  if len(kernel) != 4 or kernel[2] != c:
    raise TfpruneError(f'depthwise kernel {kernel} does not take {c} channels')
  return _out_hw(attrs, (h, w), kernel[:2]) + (c * kernel[3],)


def _out_hw(attrs, size, window) -> Shape:
  out = tuple(_spatial(s, k, st, attrs['padding'], d) for s, k, st, d in zip(
      size, window, attrs['strides'], attrs['dilation']))
  if min(out) < 1:
    raise TfpruneError(f'window {tuple(window)} is larger than its input {size}')
  return out


def _dense_shape(attrs, params, inputs):
  del attrs
  kernel = params['kernel'].shape
  if len(kernel) != 2 or inputs[0][-1:] != kernel[:1]:
    raise TfpruneError(f'dense kernel {kernel} does not fit input {inputs[0]}')
  return inputs[0][:-1] + (kernel[1],)


def _channelwise_shape(attrs, params, inputs):
  del attrs
  for name, value in params.items():
    if value.shape != inputs[0][-1:]:
      raise TfpruneError(f'{name} of shape {value.shape} does not fit the '
                         f'{inputs[0][-1]} channels of input {inputs[0]}')
  return inputs[0]


def _broadcast_shape(attrs, params, inputs):
  del attrs
  for name, value in params.items():
    if len(value.shape) > len(inputs[0]) + 1 or any(
        d not in (1, s) for d, s in zip(value.shape[::-1], inputs[0][::-1])):
      raise TfpruneError(f'{name} of shape {value.shape} does not broadcast '
                         f'to input {inputs[0]}')
  return inputs[0]


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


def _pool_shape(attrs, params, inputs):
  del params
  h, w, c = _image(inputs[0], 'pooling')
  hw = tuple(_spatial(s, p, st, attrs['padding']) for s, p, st in zip(
      (h, w), attrs['pool_size'], attrs['strides']))
  if min(hw) < 1:
    raise TfpruneError(f'pool {attrs["pool_size"]} is larger than its input '
                       f'{inputs[0]}')
  return hw + (c,)


def _global_pool_shape(attrs, params, inputs):
  del params
  _, _, c = _image(inputs[0], 'global pooling')
  return (1, 1, c) if attrs['keepdims'] else (c,)


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
  h, w, c = _image(inputs[0], 'zero padding')
  (top, bottom), (left, right) = attrs['padding']
  return (h + top + bottom, w + left + right, c)


def _same_shape(attrs, params, inputs):
  del attrs, params
  return inputs[0]


def _layer_norm_shape(attrs, params, inputs):
  axes = attrs['axes']
  if not all(0 <= a < len(inputs[0]) for a in axes):
    raise TfpruneError(f'normalisation axes {axes} do not fit input {inputs[0]}')
  expected = tuple(inputs[0][a] for a in axes)
  for name, value in params.items():
    if value.shape != expected:
      raise TfpruneError(f'{name} of shape {value.shape} does not fit axes '
                         f'{axes} of input {inputs[0]}')
  return inputs[0]


_CONV = ('kernel', 'bias')
OPS: dict[str, OpDef] = {
    'input': OpDef((), (), {}, 0, lambda a, p, i: ()),
    'dense': OpDef(_CONV, ('kernel',), {'kernel': 1}, 1, _dense_shape),
    'conv2d': OpDef(_CONV, ('kernel',), {'kernel': 3}, 1, _conv_shape),
    # A depthwise kernel is (h, w, channels, multiplier): channel c*m+j of the
    # output comes from input channel c.
    'depthwise_conv2d': OpDef(_CONV, ('kernel',), {'kernel': 2}, 1,
                              _depthwise_shape),
    'batch_norm': OpDef(('gamma', 'beta', 'mean', 'variance'),
                        ('gamma', 'beta', 'mean', 'variance'), {}, 1,
                        _channelwise_shape),
    'layer_norm': OpDef(('gamma', 'beta'), (), {}, 1, _layer_norm_shape),
    'normalization': OpDef(('mean', 'variance'), ('mean', 'variance'), {}, 1,
                           _broadcast_shape),
    'rescaling': OpDef(('scale', 'offset'), ('scale', 'offset'), {}, 1,
                       _broadcast_shape),
    'activation': OpDef((), (), {}, 1, _same_shape),
    'identity': OpDef((), (), {}, 1, _same_shape),
    'merge': OpDef((), (), {}, None, _merge_shape),
    'concat': OpDef((), (), {}, None, _concat_shape),
    'max_pool2d': OpDef((), (), {}, 1, _pool_shape),
    'avg_pool2d': OpDef((), (), {}, 1, _pool_shape),
    'global_avg_pool2d': OpDef((), (), {}, 1, _global_pool_shape),
    'global_max_pool2d': OpDef((), (), {}, 1, _global_pool_shape),
    'flatten': OpDef((), (), {}, 1, _flatten_shape),
    'reshape': OpDef((), (), {}, 1, _reshape_shape),
    'zero_pad2d': OpDef((), (), {}, 1, _pad_shape),
}

MERGE_MODES = ('add', 'subtract', 'multiply', 'average', 'maximum', 'minimum')
# Ops whose node carries an `activation` attribute applied after the bias.
WITH_ACTIVATION = ('dense', 'conv2d', 'depthwise_conv2d')


def get(op: str) -> OpDef:
  """The definition of `op`.

  Raises:
    TfpruneError: `op` is not in `OPS`.
  """
  return registry.lookup(OPS, op, 'op')
