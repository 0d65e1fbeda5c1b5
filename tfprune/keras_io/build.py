"""`Graph` -> Keras model: the one builder, for Keras 3 or tf_keras.

`to_keras(graph)` builds a plain functional model of the framework's own
layers (no tfprune class in it), so the model saves as `.keras` and loads
where tfprune is not installed. Each node becomes the layer it was imported
from, named like it; a depthwise + 1x1 pair imported from a SeparableConv2D
becomes a DepthwiseConv2D and a Conv2D (same outputs). A graph made smaller
by compaction builds the same way: layer sizes come from its arrays.
"""

from typing import Callable

import numpy as np

from tfprune import keras_compat
from tfprune.errors import TfpruneError
from tfprune.graph import ops
from tfprune.graph.ir import Graph
from tfprune.graph.ir import Node

FRAMEWORKS = keras_compat.FRAMEWORKS


def _activation_arg(K, activation) -> object:
  """A Keras `activation=` argument computing `activation` exactly."""
  fn = activation['fn']
  if fn == 'relu' and (activation['max_value'] is not None
                       or activation['negative_slope'] or activation['threshold']):
    return None  # needs a ReLU layer; see `_activation_layer`
  if fn == 'swish':
    return 'silu' if K.__name__ == 'keras' else 'swish'
  if fn in ('softmax',) and activation['axis'] != -1:
    return None
  if fn == 'gelu' and activation['approximate']:
    return None
  if fn in ('elu',) and activation['alpha'] != 1:
    return None
  if fn == 'leaky_relu':
    return None
  if fn == 'relu6' and K.__name__ != 'keras':
    return None
  return fn


def _activation_layer(K, activation, name: str):
  fn = activation['fn']
  arg = _activation_arg(K, activation)
  if arg is not None:
    return K.layers.Activation(arg, name=name)
  if fn == 'relu':
    return K.layers.ReLU(activation['max_value'], activation['negative_slope'],
                         activation['threshold'], name=name)
  if fn == 'relu6':
    return K.layers.ReLU(6.0, name=name)
  if fn == 'softmax':
    return K.layers.Softmax(axis=int(activation['axis']), name=name)
  if fn == 'elu':
    return K.layers.ELU(alpha=activation['alpha'], name=name)
  if fn == 'leaky_relu':
    slope = activation['negative_slope']
    return (K.layers.LeakyReLU(negative_slope=slope, name=name)
            if K.__name__ == 'keras' else K.layers.LeakyReLU(alpha=slope, name=name))
  raise TfpruneError(f'activation {dict(activation)} has no Keras layer')


def _conv_kwargs(node: Node) -> dict:
  a = node.attrs
  return {'strides': tuple(a['strides']), 'padding': a['padding'],
          'dilation_rate': tuple(a['dilation']), 'use_bias': 'bias' in node.params}


def _weighted(K, node: Node, make: Callable, weights: list) -> list:
  """The layer of a dense/conv node, plus a separate activation layer if needed."""
  activation = node.attrs['activation']
  arg = _activation_arg(K, activation)
  name = node.name if arg is not None else f'{node.name}_preact'
  layer = make(arg if arg is not None else None, name)
  built = [(layer, weights)]
  if arg is None:
    built.append((_activation_layer(K, activation, node.name), []))
  return built


def _layers_of(K, node: Node) -> list:
  """[(layer, weights)] computing `node`, the last one named like it."""
  p, a, op = node.params, node.attrs, node.op
  bias = [p['bias']] if 'bias' in p else []
  if op == 'dense':
    return _weighted(K, node, lambda act, name: K.layers.Dense(
        p['kernel'].shape[1], activation=act, use_bias=bool(bias), name=name),
        [p['kernel'], *bias])
  if op == 'conv2d':
    return _weighted(K, node, lambda act, name: K.layers.Conv2D(
        p['kernel'].shape[3], p['kernel'].shape[:2], activation=act, name=name,
        **_conv_kwargs(node)), [p['kernel'], *bias])
  if op == 'depthwise_conv2d':
    return _weighted(K, node, lambda act, name: K.layers.DepthwiseConv2D(
        p['kernel'].shape[:2], depth_multiplier=p['kernel'].shape[3],
        activation=act, name=name, **_conv_kwargs(node)), [p['kernel'], *bias])
  if op == 'batch_norm':
    return [(K.layers.BatchNormalization(epsilon=a['epsilon'], name=node.name),
             [p['gamma'], p['beta'], p['mean'], p['variance']])]
  if op == 'layer_norm':
    axes = [x + 1 for x in a['axes']]
    return [(K.layers.LayerNormalization(
        axis=axes, epsilon=a['epsilon'], center='beta' in p, scale='gamma' in p,
        name=node.name), [p[k] for k in ('gamma', 'beta') if k in p])]
  if op == 'normalization':
    return [(K.layers.Normalization(mean=np.asarray(p['mean']),
                                    variance=np.asarray(p['variance']),
                                    name=node.name), None)]
  if op == 'rescaling':
    return [(K.layers.Rescaling(_scalar_or_list(p['scale']),
                                _scalar_or_list(p['offset']), name=node.name), [])]
  if op == 'activation':
    return [(_activation_layer(K, a['activation'], node.name), [])]
  if op == 'identity':
    cls = getattr(K.layers, a['keras_class'], None) or K.layers.Activation
    settings = dict(a['settings']) if cls is not K.layers.Activation else {
        'activation': 'linear'}
    return [(cls(**_plain(settings), name=node.name), [])]
  if op == 'merge':
    cls = {'add': 'Add', 'subtract': 'Subtract', 'multiply': 'Multiply',
           'average': 'Average', 'maximum': 'Maximum', 'minimum': 'Minimum'}
    return [(getattr(K.layers, cls[a['mode']])(name=node.name), [])]
  if op == 'concat':
    return [(K.layers.Concatenate(axis=a['axis'] + 1, name=node.name), [])]
  if op in ('max_pool2d', 'avg_pool2d'):
    cls = K.layers.MaxPooling2D if op == 'max_pool2d' else K.layers.AveragePooling2D
    return [(cls(tuple(a['pool_size']), tuple(a['strides']), a['padding'],
                 name=node.name), [])]
  if op in ('global_avg_pool2d', 'global_max_pool2d'):
    cls = (K.layers.GlobalAveragePooling2D if op == 'global_avg_pool2d'
           else K.layers.GlobalMaxPooling2D)
    return [(cls(keepdims=a['keepdims'], name=node.name), [])]
  if op == 'flatten':
    return [(K.layers.Flatten(name=node.name), [])]
  if op == 'reshape':
    return [(K.layers.Reshape(tuple(a['target_shape']), name=node.name), [])]
  if op == 'zero_pad2d':
    return [(K.layers.ZeroPadding2D(tuple(tuple(x) for x in a['padding']),
                                    name=node.name), [])]
  raise TfpruneError(f'node {node.name}: op {op} has no Keras layer')


def _scalar_or_list(array: np.ndarray):
  return float(array) if array.ndim == 0 else array.tolist()


def _plain(settings) -> dict:
  return {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()}


def to_keras(graph: Graph, framework: str | None = None):
  """A plain Keras model computing `graph`.

  Args:
    graph: any graph (imported, pruned or compacted).
    framework: 'keras3' or 'tf_keras'; default: the framework the graph was
      imported from, else tf_keras (the one TF-MOT wraps).

  Returns:
    An uncompiled functional model with the graph's weights, whose layers
    carry the graph's node names.
  """
  framework = framework or graph.metadata.get('framework', 'tf_keras')
  if framework not in FRAMEWORKS:
    raise TfpruneError(f'unknown framework {framework!r}: choose from '
                       f'{", ".join(FRAMEWORKS)}')
  K = keras_compat.keras_module(framework)
  tensors = {}
  first = graph.input
  tensors[first.name] = K.Input(graph.input_shape, name=first.name)
  pending = []
  for node in graph.nodes[1:]:
    inputs = [tensors[s] for s in node.inputs]
    x = inputs[0] if ops.get(node.op).arity == 1 else inputs
    for layer, weights in _layers_of(K, node):
      x = layer(x)
      if weights:
        pending.append((layer, weights))
    tensors[node.name] = x
  name = str(graph.metadata.get('model_name', 'tfprune_model'))
  model = K.Model(tensors[first.name], tensors[graph.output], name=name)
  for layer, weights in pending:
    layer.set_weights([np.asarray(w) for w in weights])
  return model


# The arrays of a node that are Keras variables, in the layer's weight order
# (`_layers_of` passes them in this order).
_VARIABLE_PARAMS = {
    'dense': ('kernel', 'bias'), 'conv2d': ('kernel', 'bias'),
    'depthwise_conv2d': ('kernel', 'bias'),
    'batch_norm': ('gamma', 'beta', 'mean', 'variance'),
    'layer_norm': ('gamma', 'beta')}


def layer_of(model, node_name: str):
  """The layer of `to_keras`'s `model` holding node `node_name`'s arrays.

  A node whose activation has no `activation=` argument is built as a layer
  named `<node>_preact` followed by the activation layer named `<node>`; a
  pruning wrapper (TF-MOT) is looked through.
  """
  layers = {getattr(l, 'layer', l).name: getattr(l, 'layer', l)
            for l in model.layers}
  layer = layers.get(f'{node_name}_preact') or layers.get(node_name)
  if layer is None:
    raise TfpruneError(f'model {model.name} has no layer {node_name}: build it '
                       'with tfprune.to_keras')
  return layer


def variables(model, node: Node) -> dict:
  """Param name -> the Keras variable holding it, for `node` of `model`'s graph."""
  names = [p for p in _VARIABLE_PARAMS.get(node.op, ()) if p in node.params]
  if not names:
    return {}
  return dict(zip(names, layer_of(model, node.name).weights, strict=True))
