"""Which arrays of a Keras 3 model a pruner masks, found without wrapping any layer.

Weight criteria mask kernels, found by layer type (`PRUNABLE`, as TF-MOT's
`prune_registry` for Keras 2): Dense, EinsumDense (so the query, key, value
and output projections inside a MultiHeadAttention), Conv1D/2D/3D, the
depthwise kernel of DepthwiseConv1D/2D and both kernels of a SeparableConv.
The layers are walked through nested layers and models in `model.layers`
order; the last kernel found is the output layer's.

Channel criteria read the model's graph (`tfprune.from_keras`): the
dependency groups of `transforms.groups` say which kernel slices, biases and
batch-norm arrays a channel touches. `graph_variables` maps each (node,
param) of that graph to the Keras variable holding it, through the node
names the importer gives layers (`keras_io.trace.node_names`); a
MultiHeadAttention `mha` is the nodes `mha_query`, `mha_key`, `mha_value` and
`mha` (the output projection) of `graph.ops.attention`, held in its four
EinsumDense sublayers (their kernels reshaped: (d, heads, size) there,
(d, heads * size) in the graph).
"""

import dataclasses
from typing import Sequence

import keras
import numpy as np

from tfprune.errors import TfpruneError
from tfprune.graph.ir import Graph
from tfprune.graph.ops import attention
from tfprune.keras_io import trace

PRUNABLE: dict[str, tuple[str, ...]] = {
    'Dense': ('kernel',), 'EinsumDense': ('kernel',),
    'Conv1D': ('kernel',), 'Conv2D': ('kernel',), 'Conv3D': ('kernel',),
    'DepthwiseConv1D': ('kernel',), 'DepthwiseConv2D': ('kernel',),
    'SeparableConv1D': ('depthwise_kernel', 'pointwise_kernel'),
    'SeparableConv2D': ('depthwise_kernel', 'pointwise_kernel'),
}


@dataclasses.dataclass(frozen=True, eq=False)
class Target:
  """One masked array.

  Attributes:
    name: the variable's path, e.g. 'dense/kernel' or 'mha/query/kernel'.
    layer: the name of the (top-level or nested) layer holding it.
    variable: the Keras variable.
  """
  name: str
  layer: str
  variable: keras.Variable


def check_model(model) -> None:
  """Refuses anything but a built Keras 3 model.

  Raises:
    TfpruneError: a tf_keras model (TF-MOT prunes those), or an unbuilt one.
  """
  if not isinstance(model, keras.Model):
    raise TfpruneError(
        f'{type(model).__name__} is not a Keras 3 model: tfprune.keras prunes '
        'keras.Model objects (for tf_keras models use TF-MOT, e.g. '
        'experiments/gradual.py --engine=tfmot)')
  if not model.built:
    raise TfpruneError(f'model {model.name} is not built: call it on a batch or '
                       'build it with keras.Input(shape) before pruning')


def _walk(layer):
  """`layer`'s sublayers in order, depth first (nested models and MultiHeadAttention too)."""
  for sub in layer._flatten_layers(include_self=False, recursive=False):  # pylint: disable=protected-access
    yield sub
    yield from _walk(sub)


def prunable_kernels(model) -> list[Target]:
  """Every prunable kernel of `model` (see `PRUNABLE`), in layer order."""
  out, seen = [], set()
  for layer in _walk(model):
    for attr in PRUNABLE.get(type(layer).__name__, ()):
      variable = getattr(layer, attr)
      if id(variable) not in seen:
        seen.add(id(variable))
        out.append(Target(variable.path, layer.name, variable))
  return out


def choose(found: Sequence, names: Sequence[str] | None, prune_output_layer: bool,
           what: str = 'layer') -> list:
  """`found` (in order, each with a `.layer`) restricted to `names`, the last kept unless asked.

  Raises:
    TfpruneError: a name matches nothing, or nothing is left to prune.
  """
  found = list(found)
  if names:
    known = list(dict.fromkeys(t.layer for t in found))
    missing = [n for n in names if n not in known]
    if missing:
      raise TfpruneError(f'{", ".join(missing)} is not a prunable {what}: choose '
                         f'from {", ".join(known)}')
    found = [t for t in found if t.layer in set(names)]
  elif not prune_output_layer and found:
    last = found[-1].layer
    found = [t for t in found if t.layer != last]
  if not found:
    raise TfpruneError('the model has no kernel to prune: it needs a Dense, '
                       'EinsumDense, Conv or DepthwiseConv layer besides the '
                       'output layer (or pass prune_output_layer=True)')
  return found


# Graph param -> Keras attribute, per graph op (the importer's reading).
_ATTRS = {
    'dense': {'kernel': 'kernel', 'bias': 'bias'},
    'conv2d': {'kernel': 'kernel', 'bias': 'bias'},
    'depthwise_conv2d': {'kernel': 'kernel', 'bias': 'bias'},
    'batch_norm': {'gamma': 'gamma', 'beta': 'beta', 'mean': 'moving_mean',
                   'variance': 'moving_variance'},
    'layer_norm': {'gamma': 'gamma', 'beta': 'beta'},
}


def _layers_by_node(model) -> dict[str, object]:
  names, _ = trace.node_names(model, keras.Model)
  by_id = {id(layer): layer for layer in _walk(model)}
  return {name: by_id[i] for i, name in names.items() if i in by_id}


def _attention_part(layers: dict, name: str):
  """The EinsumDense of a MultiHeadAttention holding graph node `name`, or None."""
  layer = layers.get(name)
  if isinstance(layer, keras.layers.MultiHeadAttention):
    return layer._output_dense  # pylint: disable=protected-access
  base, _, projection = name.rpartition('_')
  layer = layers.get(base)
  if projection in attention.PROJECTIONS and isinstance(
      layer, keras.layers.MultiHeadAttention):
    return getattr(layer, f'_{projection}_dense')
  return None


def graph_variables(model, graph: Graph) -> dict[tuple[str, str], keras.Variable]:
  """(node, param) -> the Keras variable holding it, for every array of `graph` held in one.

  A variable may hold its array in another shape (attention kernels): the
  same entries in the same (row-major) order.

  Raises:
    TfpruneError: a node of the graph matches no layer of `model`.
  """
  layers = _layers_by_node(model)
  out = {}
  for node in graph.nodes:
    attrs = _ATTRS.get(node.op)
    if not attrs or not node.params:
      continue
    layer = _attention_part(layers, node.name) or layers.get(node.name)
    if layer is None and node.name.endswith('_depthwise'):
      layer = layers.get(node.name[:-len('_depthwise')])  # a SeparableConv
      attrs = {'kernel': 'depthwise_kernel'}
    elif node.attrs.get('separable'):
      attrs = {'kernel': 'pointwise_kernel', 'bias': 'bias'}
    if layer is None:
      raise TfpruneError(f'node {node.name} of the graph matches no layer of '
                         f'model {model.name}')
    for param in node.params:
      variable = getattr(layer, attrs.get(param, ''), None)
      if isinstance(variable, keras.Variable):
        out[(node.name, param)] = variable
  return out


def kernel_sparsity(model) -> dict[str, tuple[int, int]]:
  """Variable path -> (zero entries, size) of every prunable kernel of `model`."""
  out = {}
  for target in prunable_kernels(model):
    value = keras.ops.convert_to_numpy(target.variable)
    out[target.name] = (int(np.sum(value == 0)), int(value.size))
  return out
