"""The Keras layers the importer reads, each turned into graph nodes.

`LAYERS` maps a Keras layer class name (the same in tf_keras and Keras 3) to
a converter that reads the layer's config and weights and returns its graph
nodes: one node, named like the layer (or by its path, for a layer of a
nested model whose name is not unique: `LayerCall.name`), or two for a
SeparableConv2D (its depthwise and its pointwise convolution). A setting
the evaluator does not compute (a channels-first or grouped conv, a custom
activation, ...) is refused with one `TfpruneError` line naming the layer
and its type.
"""

import dataclasses
from typing import Any, Callable

import numpy as np

from tfprune import keras_compat
from tfprune.errors import TfpruneError
from tfprune.graph import ops
from tfprune.graph.ir import Node

# Keras activation names (both frameworks) -> `ops.ACTIVATIONS` names.
_ACTIVATION_NAMES = {name: name for name in ops.ACTIVATIONS}
_ACTIVATION_NAMES.update({'silu': 'swish'})


@dataclasses.dataclass
class LayerCall:
  """What a converter sees of one Keras layer call."""
  layer: Any
  config: dict
  weights: dict[str, np.ndarray]
  inputs: list[str]
  input_shapes: list[tuple]
  framework: str
  node_name: str = ''

  @property
  def name(self) -> str:
    """The node's name: the layer's, or its path in a nested model (`trace`)."""
    return self.node_name or self.layer.name

  def refuse(self, why: str) -> TfpruneError:
    return refusal(self.layer, why, self.name)


def refusal(layer, why: str, name: str | None = None) -> TfpruneError:
  """The one-line refusal of a Keras layer (called `name` in the graph)."""
  return TfpruneError(f'layer {name or layer.name} ({type(layer).__name__}) '
                      f'cannot be imported: {why}')


def framework_of(model) -> str:
  """'keras3' or 'tf_keras', from the Keras classes the model derives from."""
  for cls in type(model).__mro__:
    module = cls.__module__
    if module.startswith('tf_keras'):
      return 'tf_keras'
    if module.startswith('keras.'):
      return 'keras3'
  raise TfpruneError(f'{type(model).__name__} from {type(model).__module__} is '
                     'not a Keras model: pass a tf_keras or Keras 3 model')


def _activation(l: LayerCall, value) -> dict:
  if value is None:
    return ops.LINEAR
  if not isinstance(value, str) or value not in _ACTIVATION_NAMES:
    raise l.refuse(f'activation {value!r} is not supported: use one of '
                   f'{", ".join(sorted(_ACTIVATION_NAMES))}')
  fn = _ACTIVATION_NAMES[value]
  # Keras 3's 'leaky_relu' activation uses negative_slope 0.2, its default.
  return ops.activation(fn)


def _pair(l: LayerCall, value, what: str) -> tuple[int, int]:
  value = (value, value) if isinstance(value, int) else tuple(value)
  if len(value) != 2:
    raise l.refuse(f'{what} {value} is not 2-D')
  return tuple(int(v) for v in value)


def _channels_last(l: LayerCall) -> None:
  if l.config.get('data_format', 'channels_last') != 'channels_last':
    raise l.refuse('data_format channels_first is not supported: use '
                   'channels_last')


def _conv_attrs(l: LayerCall) -> dict:
  _channels_last(l)
  c = l.config
  if c['padding'] not in ('valid', 'same'):
    raise l.refuse(f'padding {c["padding"]!r} is not supported: use valid or same')
  return {'strides': _pair(l, c['strides'], 'strides'), 'padding': c['padding'],
          'dilation': _pair(l, c['dilation_rate'], 'dilation_rate')}


def _bias(l: LayerCall) -> dict:
  return {'bias': l.weights['bias']} if l.config.get('use_bias', True) else {}


def _check_plain(l: LayerCall) -> None:
  if l.config.get('lora_rank') or l.config.get('quantization_config'):
    raise l.refuse('LoRA and quantized layers are not supported')


def _dense(l: LayerCall) -> list[Node]:
  _check_plain(l)
  return [Node(l.name, 'dense', l.inputs,
               {'activation': _activation(l, l.config['activation'])},
               {'kernel': l.weights['kernel'], **_bias(l)})]


def _conv2d(l: LayerCall) -> list[Node]:
  _check_plain(l)
  if l.config.get('groups', 1) != 1:
    raise l.refuse(f'groups={l.config["groups"]} is not supported: use groups=1')
  return [Node(l.name, 'conv2d', l.inputs,
               {**_conv_attrs(l), 'activation': _activation(l, l.config['activation'])},
               {'kernel': l.weights['kernel'], **_bias(l)})]


def _depthwise_kernel(l: LayerCall) -> np.ndarray:
  return l.weights.get('depthwise_kernel', l.weights.get('kernel'))


def _depthwise(l: LayerCall) -> list[Node]:
  _check_plain(l)
  return [Node(l.name, 'depthwise_conv2d', l.inputs,
               {**_conv_attrs(l), 'activation': _activation(l, l.config['activation'])},
               {'kernel': _depthwise_kernel(l), **_bias(l)})]


def _separable(l: LayerCall) -> list[Node]:
  attrs = _conv_attrs(l)
  depthwise = Node(f'{l.name}_depthwise', 'depthwise_conv2d', l.inputs,
                   {**attrs, 'activation': ops.LINEAR},
                   {'kernel': l.weights['depthwise_kernel']})
  pointwise = Node(l.name, 'conv2d', [depthwise.name],
                   {'strides': (1, 1), 'padding': 'valid', 'dilation': (1, 1),
                    'activation': _activation(l, l.config['activation']),
                    'separable': True},
                   {'kernel': l.weights['pointwise_kernel'], **_bias(l)})
  return [depthwise, pointwise]


def _last_axis(l: LayerCall, axis) -> None:
  axes = [axis] if isinstance(axis, int) else list(axis)
  rank = len(l.input_shapes[0]) + 1
  if len(axes) != 1 or axes[0] not in (-1, rank - 1):
    raise l.refuse(f'axis {axis} is not supported: normalise the last '
                   '(channels) axis')


def _batch_norm(l: LayerCall) -> list[Node]:
  _last_axis(l, l.config['axis'])
  w, channels = l.weights, l.input_shapes[0][-1]
  return [Node(l.name, 'batch_norm', l.inputs, {'epsilon': float(l.config['epsilon'])},
               {'gamma': w.get('gamma', np.ones(channels)),
                'beta': w.get('beta', np.zeros(channels)),
                'mean': w['moving_mean'], 'variance': w['moving_variance']})]


def _layer_norm(l: LayerCall) -> list[Node]:
  if l.config.get('rms_scaling'):
    raise l.refuse('rms_scaling is not supported')
  axis = l.config['axis']
  rank = len(l.input_shapes[0])
  axes = tuple(sorted((a if a >= 0 else a + rank + 1) - 1
                      for a in ([axis] if isinstance(axis, int) else axis)))
  params = {k: v for k, v in l.weights.items() if k in ('gamma', 'beta')}
  return [Node(l.name, 'layer_norm', l.inputs,
               {'axes': axes, 'epsilon': float(l.config['epsilon'])},
               {k: v.reshape([l.input_shapes[0][a] for a in axes])
                for k, v in params.items()})]


def _per_example(array, rank: int) -> np.ndarray:
  array = np.asarray(array, np.float32)
  return array.reshape(array.shape[1:]) if array.ndim == rank + 1 else array


def _normalization(l: LayerCall) -> list[Node]:
  if l.config.get('invert'):
    raise l.refuse('invert=True is not supported')
  rank = len(l.input_shapes[0])
  mean, variance = (_per_example(np.asarray(getattr(l.layer, k)), rank)
                    for k in ('mean', 'variance'))
  return [Node(l.name, 'normalization', l.inputs, {'epsilon': float(keras_compat.keras_module(l.framework).backend.epsilon())},
               {'mean': mean, 'variance': variance})]


def _rescaling(l: LayerCall) -> list[Node]:
  return [Node(l.name, 'rescaling', l.inputs, {},
               {'scale': np.asarray(l.config['scale'], np.float32),
                'offset': np.asarray(l.config['offset'], np.float32)})]


def _activation_layer(fn: Callable[[LayerCall], dict]) -> Callable:
  return lambda l: [Node(l.name, 'activation', l.inputs, {'activation': fn(l)})]


def _relu(l: LayerCall) -> dict:
  c = l.config
  max_value = None if c.get('max_value') is None else float(c['max_value'])
  return ops.activation('relu', max_value=max_value,
                        negative_slope=float(c.get('negative_slope', 0.0)),
                        threshold=float(c.get('threshold', 0.0)))


def _softmax(l: LayerCall) -> dict:
  axis = l.config.get('axis', -1)
  if not isinstance(axis, int) or axis == 0:
    raise l.refuse(f'softmax over axis {axis} is not supported: use one axis')
  return ops.activation('softmax', axis=axis)


def _merge(mode: str) -> Callable:
  return lambda l: [Node(l.name, 'merge', l.inputs, {'mode': mode})]


def _concat(l: LayerCall) -> list[Node]:
  axis, rank = int(l.config['axis']), len(l.input_shapes[0])
  if axis == 0 or not -rank - 1 <= axis <= rank:
    raise l.refuse(f'axis {axis} is not supported: concatenate a non-batch axis')
  return [Node(l.name, 'concat', l.inputs,
               {'axis': axis + rank if axis < 0 else axis - 1})]


def _pool(op: str) -> Callable:
  def convert(l: LayerCall) -> list[Node]:
    _channels_last(l)
    c = l.config
    size = _pair(l, c['pool_size'], 'pool_size')
    strides = size if c.get('strides') is None else _pair(l, c['strides'], 'strides')
    return [Node(l.name, op, l.inputs, {'pool_size': size, 'strides': strides,
                                        'padding': c['padding']})]
  return convert


def _global_pool(op: str) -> Callable:
  def convert(l: LayerCall) -> list[Node]:
    _channels_last(l)
    return [Node(l.name, op, l.inputs,
                 {'keepdims': bool(l.config.get('keepdims', False))})]
  return convert


def _flatten(l: LayerCall) -> list[Node]:
  _channels_last(l)
  return [Node(l.name, 'flatten', l.inputs)]


def _zero_pad(l: LayerCall) -> list[Node]:
  _channels_last(l)
  padding = l.config['padding']
  if isinstance(padding, int):
    padding = ((padding, padding), (padding, padding))
  padding = tuple(_pair(l, p, 'padding') if not isinstance(p, int) else (p, p)
                  for p in padding)
  return [Node(l.name, 'zero_pad2d', l.inputs, {'padding': padding})]


# Layers that compute the identity at inference; to_keras rebuilds them from
# the class and the settings kept here, so fine-tuning trains as the user did.
IDENTITY_SETTINGS = {
    'Dropout': ('rate', 'noise_shape', 'seed'), 'SpatialDropout2D': ('rate',),
    'GaussianDropout': ('rate',), 'GaussianNoise': ('stddev',),
    'AlphaDropout': ('rate',), 'ActivityRegularization': ('l1', 'l2'),
    'Identity': (),
}


def _identity(l: LayerCall) -> list[Node]:
  cls = type(l.layer).__name__
  settings = {k: l.config.get(k) for k in IDENTITY_SETTINGS[cls]}
  return [Node(l.name, 'identity', l.inputs,
               {'keras_class': cls, 'settings': settings})]


LAYERS: dict[str, Callable[[LayerCall], list[Node]]] = {
    'Dense': _dense,
    'Conv2D': _conv2d,
    'DepthwiseConv2D': _depthwise,
    'SeparableConv2D': _separable,
    'BatchNormalization': _batch_norm,
    'LayerNormalization': _layer_norm,
    'Normalization': _normalization,
    'Rescaling': _rescaling,
    'Activation': _activation_layer(lambda l: _activation(l, l.config['activation'])),
    'ReLU': _activation_layer(_relu),
    'LeakyReLU': _activation_layer(lambda l: ops.activation(
        'leaky_relu', negative_slope=float(
            l.config.get('negative_slope', l.config.get('alpha', 0.3))))),
    'ELU': _activation_layer(lambda l: ops.activation(
        'elu', alpha=float(l.config.get('alpha', 1.0)))),
    'Softmax': _activation_layer(_softmax),
    'Add': _merge('add'), 'Subtract': _merge('subtract'),
    'Multiply': _merge('multiply'), 'Average': _merge('average'),
    'Maximum': _merge('maximum'), 'Minimum': _merge('minimum'),
    'Concatenate': _concat,
    'MaxPooling2D': _pool('max_pool2d'),
    'AveragePooling2D': _pool('avg_pool2d'),
    'GlobalAveragePooling2D': _global_pool('global_avg_pool2d'),
    'GlobalMaxPooling2D': _global_pool('global_max_pool2d'),
    'Flatten': _flatten,
    'Reshape': lambda l: [Node(l.name, 'reshape', l.inputs,
                               {'target_shape': tuple(l.config['target_shape'])})],
    'ZeroPadding2D': _zero_pad,
    **{name: _identity for name in IDENTITY_SETTINGS},
}
SUPPORTED = ', '.join(sorted(LAYERS))
