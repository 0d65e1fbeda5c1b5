"""Keras model -> `Graph`: the one tracer, for tf_keras (Keras 2) and Keras 3 alike.

`trace(model)` walks a functional or Sequential model backwards from its
output through each tensor's Keras history (the same in both frameworks: a
tensor's `_keras_history` names the layer and the call that made it) and
turns every layer call into graph nodes with `layers.LAYERS`. Refused in one
line: a subclassed model (no graph to walk), several inputs or outputs, a
layer called twice, nested models, and any layer or setting the table does
not read. Use `keras_io.importer.from_keras`, which also verifies the graph
against the model.
"""

import dataclasses
from typing import Any

import numpy as np

from tfprune.errors import TfpruneError
from tfprune.graph.ir import Graph
from tfprune.graph.ir import Node
from tfprune.keras_io import layers as layers_lib


@dataclasses.dataclass(frozen=True)
class Traced:
  """A traced model.

  Attributes:
    graph: the model as a graph.
    tensors: graph node name -> the Keras tensor it computes, for the nodes
      that stand for a whole Keras layer (what verification compares).
    framework: 'tf_keras' or 'keras3'.
  """
  graph: Graph
  tensors: dict[str, Any]
  framework: str


def _weights(layer) -> dict[str, np.ndarray]:
  out = {}
  for w in layer.weights:
    name = w.name.split('/')[-1].split(':')[0]
    out[name] = np.asarray(w.numpy(), dtype=np.float32)
  return out


def _inbound(node, framework: str) -> list:
  if framework == 'tf_keras':
    return list(node.keras_inputs)
  return list(node.input_tensors)


def _io(model, which: str) -> Any:
  tensors = getattr(model, which, None)
  if not tensors:
    raise TfpruneError(
        f'model {model.name} ({type(model).__name__}) has no traced {which}: a '
        'subclassed model, or one never built, has no graph to read. Build it '
        'with keras.Input(shape) as a functional or Sequential model')
  if len(tensors) != 1:
    raise TfpruneError(
        f'model {model.name} has {len(tensors)} {which}: tfprune reads models '
        'with one input and one output')
  return tensors[0]


def trace(model) -> Traced:
  """The graph of a functional or Sequential Keras `model` (not yet verified).

  Raises:
    TfpruneError: naming the first layer or connection it cannot express.
  """
  framework = layers_lib.framework_of(model)
  source, target = _io(model, 'inputs'), _io(model, 'outputs')
  input_shape = tuple(source.shape[1:])
  if any(d is None for d in input_shape):
    raise TfpruneError(
        f'model {model.name} takes inputs of shape {input_shape} with unknown '
        'sizes: build it with a fixed keras.Input(shape=...)')
  nodes, tensors, names, used, owner = [], {}, {}, {}, {}

  def visit(tensor) -> str:
    history = tensor._keras_history
    layer, node_index, tensor_index = history[0], history[1], history[2]
    key = (id(layer), node_index)
    if key in names:
      return names[key]
    if used.setdefault(id(layer), node_index) != node_index:
      raise layers_lib.refusal(layer, 'it is called more than once (shared '
                               'weights): give each call its own layer')
    cls = type(layer).__name__
    if cls == 'InputLayer':
      nodes.append(Node(layer.name, 'input'))
      owner[layer.name] = layer
      names[key] = layer.name
      return layer.name
    if tensor_index != 0 or hasattr(layer, 'layers') and cls not in layers_lib.LAYERS:
      raise layers_lib.refusal(layer, 'nested models and layers with several '
                               'outputs are not supported: flatten the model')
    keras_node = layer._inbound_nodes[node_index]
    inbound = _inbound(keras_node, framework)
    inputs = [visit(t) for t in inbound]
    converter = layers_lib.LAYERS.get(cls)
    module = type(layer).__module__
    if converter is None or not module.startswith(('keras', 'tf_keras')):
      raise layers_lib.refusal(
          layer, f'{cls} is not supported; supported layers: {layers_lib.SUPPORTED}')
    call = layers_lib.LayerCall(
        layer, layer.get_config(), _weights(layer), inputs,
        [tuple(t.shape[1:]) for t in inbound], framework)
    new = converter(call)
    nodes.extend(new)
    owner.update((n.name, layer) for n in new)
    names[key] = new[-1].name
    tensors[new[-1].name] = tensor
    return new[-1].name

  output = visit(target)
  metadata = {'framework': framework, 'model_name': model.name}
  # Nodes in the order of `model.layers` (topological in both frameworks),
  # so weight layers are numbered as the model lists them.
  rank = {id(layer): i for i, layer in enumerate(model.layers)}
  ordered = sorted(nodes, key=lambda n: rank.get(id(owner[n.name]), -1))
  try:
    try:
      graph = Graph(tuple(ordered), output, input_shape, metadata)
    except TfpruneError:
      graph = Graph(tuple(nodes), output, input_shape, metadata)
  except TfpruneError as e:
    raise TfpruneError(f'model {model.name}: {e}') from None
  return Traced(graph, tensors, framework)
