"""The `activation` op: an activation as its own layer (Activation, ReLU,
LeakyReLU, ELU, Softmax) or written as an operator (`keras.ops.relu`, a
tf_keras TFOpLambda `tf.nn.relu`, ...); its values are `activations`'s."""

from typing import Callable

import numpy as np

from tfprune.graph import ir
from tfprune.graph.ops import base
from tfprune.graph.ops.activations import (LINEAR, RELU, activation,
                                           apply_activation, keras_layer,
                                           on_constants, read)


def softmax_over_channels(node, shape_in) -> bool:
  value = node.attrs['activation']
  return value['fn'] in ('softmax', 'log_softmax') and int(value['axis']) in (-1, len(shape_in))


def _channels(walk, call: base.ChannelCall) -> np.ndarray:
  if softmax_over_channels(call.node, call.shapes_in[0]):
    walk.block(call.x, f'{call.node.name} is a softmax over the channels')
  return call.x


def _constants(call: base.ConstantCall) -> np.ndarray:
  if softmax_over_channels(call.node, call.shapes_in[0]):
    return np.zeros(call.shape_out[-1], bool)
  return call.known[0]


def _exact(node, x: np.ndarray) -> np.ndarray | None:
  value = dict(node.attrs['activation'])
  return on_constants(value, x) if value in (RELU, LINEAR) else None


def _layer(fn: Callable[[base.LayerCall], dict]) -> Callable:
  return lambda l: [ir.Node(l.name, 'activation', l.inputs, {'activation': fn(l)})]


def _relu_layer(l: base.LayerCall) -> dict:
  c = l.config
  max_value = None if c.get('max_value') is None else float(c['max_value'])
  return activation('relu', max_value=max_value,
                    negative_slope=float(c.get('negative_slope', 0.0)),
                    threshold=float(c.get('threshold', 0.0)))


def _softmax_layer(l: base.LayerCall) -> dict:
  axis = l.config.get('axis', -1)
  if not isinstance(axis, int) or axis == 0:
    raise l.refuse(f'softmax over axis {axis} is not supported: use one axis')
  return activation('softmax', axis=axis)


def _operator(fn: str, option: str | None = None, position: int = 1,
              default=None) -> Callable:
  """A reader of an activation written as a `keras.ops` call (Keras 3) or a
  TensorFlow function (tf_keras TFOpLambda), with one option."""
  def read_value(l: base.LayerCall) -> dict:
    if option is None:
      return activation(fn)
    value = base.call_option(l, option, position, default)
    if fn in ('softmax', 'log_softmax') and (value is None or value == -1):
      value = -1
    elif fn in ('softmax', 'log_softmax') and (
        not isinstance(value, int) or value == 0):
      raise l.refuse(f'{fn} over axis {value} is not supported: use one axis')
    return activation(fn, **{_PARAM.get(option, option): value})
  return _layer(read_value)


_PARAM = {'alpha': 'negative_slope'}
# Keras 3 operations (keras.ops.*) and tf_keras TFOpLambda symbols.
_OPERATORS = {
    'ops.Relu': _operator('relu'), 'ops.Relu6': _operator('relu6'),
    'ops.Sigmoid': _operator('sigmoid'), 'ops.Tanh': _operator('tanh'),
    'ops.Softmax': _operator('softmax', 'axis', default=-1),
    'ops.LogSoftmax': _operator('log_softmax', 'axis', default=-1),
    'ops.Silu': _operator('swish'),
    'ops.Gelu': _operator('gelu', 'approximate', default=True),
    'ops.Elu': _operator('elu', 'alpha', default=1.0),
    'ops.LeakyRelu': _operator('leaky_relu', 'negative_slope', default=0.2),
    'ops.Softplus': _operator('softplus'), 'ops.Selu': _operator('selu'),
    'ops.Softsign': _operator('softsign'), 'ops.Exp': _operator('exponential'),
    'ops.HardSigmoid': _operator('hard_sigmoid'),
    'ops.HardSilu': _operator('hard_silu'),
    'tf.nn.relu': _operator('relu'), 'tf.nn.relu6': _operator('relu6'),
    'tf.math.sigmoid': _operator('sigmoid'), 'tf.nn.sigmoid': _operator('sigmoid'),
    'tf.math.tanh': _operator('tanh'), 'tf.nn.tanh': _operator('tanh'),
    'tf.nn.softmax': _operator('softmax', 'axis', default=-1),
    'tf.math.softmax': _operator('softmax', 'axis', default=-1),
    'tf.nn.log_softmax': _operator('log_softmax', 'axis', default=-1),
    'tf.nn.silu': _operator('swish'), 'tf.nn.swish': _operator('swish'),
    'tf.nn.gelu': _operator('gelu', 'approximate', default=False),
    'tf.nn.elu': _operator('elu'),
    'tf.nn.leaky_relu': _operator('leaky_relu', 'alpha', default=0.2),
    'tf.math.softplus': _operator('softplus'), 'tf.nn.softplus': _operator('softplus'),
    'tf.nn.selu': _operator('selu'), 'tf.math.exp': _operator('exponential'),
    'tf.math.softsign': _operator('softsign'), 'tf.nn.softsign': _operator('softsign'),
}
ACTIVATION = base.register(base.OpDef(
    'activation', base.same_shape,
    compute=lambda node, p, xs, shape: apply_activation(
        node.attrs['activation'], xs[0]),
    to_keras=lambda K, node, shapes: [(keras_layer(K, node.attrs['activation'],
                                           node.name), [])],
    keras={
        'Activation': _layer(lambda l: read(l, l.config['activation'])),
        'ReLU': _layer(_relu_layer),
        'LeakyReLU': _layer(lambda l: activation(
            'leaky_relu', negative_slope=float(
                l.config.get('negative_slope', l.config.get('alpha', 0.3))))),
        'ELU': _layer(lambda l: activation(
            'elu', alpha=float(l.config.get('alpha', 1.0)))),
        'Softmax': _layer(_softmax_layer), **_OPERATORS,
    },
    channels=_channels, constants=_constants, exact=_exact))
