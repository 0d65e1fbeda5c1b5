"""Keras model -> `Graph`: the one tracer, for tf_keras (Keras 2) and Keras 3 alike.

`trace(model)` walks a functional or Sequential model backwards from each
of its outputs through each tensor's Keras history (the same in both frameworks: a
tensor's `_keras_history` names the layer and the call that made it) and
turns every layer call into graph nodes with `layers.LAYERS`.

Nested models (a `keras.applications` backbone in a Sequential model, a block
built as a functional model) are flattened: where the walk meets a call of a
nested model, it continues inside that model's own graph, from the output
called for back to the model's inputs, which stand for the tensors the model
was called on. Its layers become nodes of the one graph, named as
`node_names` says: the layer's own name when no other layer of the whole
model has it, else its path, the enclosing nested models' names and its own
joined by '.' (`stage.block_a.conv`). Each nested model is a `Scope`, so
verification can compare its layers inside it.

A model with several inputs and outputs gives a graph with one input node
per model input (in the order of `model.inputs`, named like the input
layers) and the outputs in the order of `model.outputs`.

Refused in one line: a subclassed model, outer or nested (no graph to walk),
an input of unknown size, a layer or nested model
called more than once (shared weights) or with `training=True`, and any
layer or setting the table does not read. Use `keras_io.importer.from_keras`,
which also verifies the graph against the model.
"""

import collections
import contextlib
import dataclasses
import sys
from typing import Any

import numpy as np

from tfprune import keras_compat
from tfprune.errors import TfpruneError
from tfprune.graph.ir import Graph
from tfprune.graph.ir import Node
from tfprune.keras_io import layers as layers_lib

SEPARATOR = '.'
# The walk recurses a few frames per layer along the longest path of the
# model; deep models (EfficientNets, ResNet-152) need more than Python's 1000.
RECURSION_LIMIT = 20_000


@dataclasses.dataclass(frozen=True)
class Scope:
  """A Keras model whose own graph holds traced tensors.

  Attributes:
    model: the traced model (scope 0) or a nested model flattened into it.
    parent: index in `Traced.scopes` of the scope it is called in (None: 0).
    feeds: the parent scope's tensors it is called on, one per model input.
  """
  model: Any
  parent: int | None = None
  feeds: tuple = ()


@dataclasses.dataclass(frozen=True)
class Traced:
  """A traced model.

  Attributes:
    graph: the model as a graph.
    tensors: graph node name -> the Keras tensor it computes, for the nodes
      that stand for a whole Keras layer (what verification compares).
    framework: 'tf_keras' or 'keras3'.
    scopes: the traced model, then each nested model in the order entered.
    scope_of: node name -> index in `scopes` of the model holding its tensor.
    calls: (node name, scope, Keras tensor, nested model name) for each
      output of a nested model call, as the model calling it sees it (the
      node computes it too), so verification checks the wiring of the call.
  """
  graph: Graph
  tensors: dict[str, Any]
  framework: str
  scopes: tuple[Scope, ...] = ()
  scope_of: dict[str, int] = dataclasses.field(default_factory=dict)
  calls: tuple[tuple[str, int, Any, str], ...] = ()


def _weights(layer) -> dict[str, np.ndarray]:
  out = {}
  for w in getattr(layer, 'weights', ()):  # a Keras 3 operation has none
    name = w.name.split('/')[-1].split(':')[0]
    out[name] = np.asarray(w.numpy(), dtype=np.float32)
  return out


def _inbound(node, framework: str) -> list:
  if framework == 'tf_keras':
    return list(node.keras_inputs)
  return list(node.input_tensors)


def _call_kwargs(node, framework: str) -> dict:
  if framework == 'tf_keras':
    return dict(getattr(node, 'call_kwargs', None) or {})
  arguments = getattr(node, 'arguments', None)
  return dict(getattr(arguments, 'kwargs', None) or {})


def _call_args(node, framework: str) -> tuple:
  if framework == 'tf_keras':
    return tuple(getattr(node, 'call_args', None) or ())
  arguments = getattr(node, 'arguments', None)
  return tuple(getattr(arguments, 'args', None) or ())


def _placeheld(value, inbound: list):
  """`value` with each Keras tensor replaced by its `TensorArg` in `inbound`."""
  if hasattr(value, '_keras_history'):
    return layers_lib.TensorArg(next(i for i, t in enumerate(inbound)
                                     if t is value))
  if isinstance(value, (list, tuple)):
    return type(value)(_placeheld(v, inbound) for v in value)
  if isinstance(value, dict):
    return {k: _placeheld(v, inbound) for k, v in value.items()}
  return value


def reader_key(layer) -> str:
  """The key of `layers.LAYERS` that reads `layer`: its class name; for an
  operation Keras 3 records for an operator or a `keras.ops` call,
  'ops.<class>'; for a tf_keras TFOpLambda, 'tf.<symbol>'."""
  cls = type(layer).__name__
  if cls in ('TFOpLambda', 'SlicingOpLambda'):
    return f'tf.{getattr(layer, "symbol", "")}'
  if type(layer).__module__.startswith('keras.src.ops'):
    return f'ops.{cls}'
  return cls


def _io(model, which: str) -> list:
  tensors = getattr(model, which, None)
  if not tensors:
    raise TfpruneError(
        f'model {model.name} ({type(model).__name__}) has no traced {which}: a '
        'subclassed model, or one never built, has no graph to read. Build it '
        'with keras.Input(shape) as a functional or Sequential model')
  return list(tensors)


def node_names(model, model_class) -> tuple[dict[int, str], dict[int, tuple]]:
  """How the layers of `model` and of its nested models are named and ordered.

  Returns:
    id(layer) -> node name: the layer's own name if no other layer (at any
    depth; nested models' input layers aside) has it, else the names of its
    enclosing nested models and its own joined by `SEPARATOR`; and
    id(layer) -> its position, the indices in `layers` from the top down.
  """
  leaves, seen = [], set()

  def add(layer, path: tuple[str, ...], position: tuple[int, ...]) -> None:
    if id(layer) not in seen:  # a layer shared between levels: once
      seen.add(id(layer))
      leaves.append((layer, path, position))

  def walk(m, path: tuple[str, ...], position: tuple[int, ...]) -> None:
    for i, layer in enumerate(getattr(m, 'layers', None) or ()):
      if isinstance(layer, model_class):
        walk(layer, (*path, layer.name), (*position, i))
      elif not (path and type(layer).__name__ == 'InputLayer'):
        add(layer, path, (*position, i))
  walk(model, (), ())
  for tensor in getattr(model, 'inputs', None) or ():
    add(tensor._keras_history[0], (), (-1,))
  counts = collections.Counter(layer.name for layer, _, _ in leaves)
  names, positions, holders = {}, {}, {}
  for layer, path, position in leaves:
    qualified = SEPARATOR.join((*path, layer.name))
    name = qualified if counts[layer.name] > 1 else layer.name
    names[id(layer)], positions[id(layer)] = name, position
    other = holders.setdefault(name, layer)
    if other is not layer:
      raise TfpruneError(
          f'model {model.name}: two layers would both be named {name} once its '
          f'nested models are flattened ({other.name} and {qualified}): rename one')
  return names, positions


class _Tracer:
  """The walk of `trace`: Keras tensors to graph nodes, nested models flattened."""

  def __init__(self, framework: str, names: dict[int, str]):
    self.framework, self.names = framework, names
    self.model_class = keras_compat.keras_module(framework).Model
    self.nodes, self.tensors, self.scope_of, self.owner = [], {}, {}, {}
    self.scopes: list[Scope] = []
    self.calls = []
    self.done = {}     # (id(layer), node index, tensor index) -> node name
    self.used = {}     # id(layer) -> the index of its one call
    self.entered = {}  # (id(nested model), node index) -> its scope
    self.bound = {}    # id(a nested model's InputLayer) -> node it stands for

  def name(self, layer) -> str:
    return self.names.get(id(layer), layer.name)

  def refusal(self, layer, why: str) -> TfpruneError:
    return layers_lib.refusal(layer, why, self.name(layer))

  def visit(self, tensor, scope: int) -> str:
    """The node computing `tensor` (of scope `scope`), tracing what it reads."""
    layer, node_index, tensor_index = tensor._keras_history[:3]
    key = (id(layer), node_index, tensor_index)
    if key in self.done:
      return self.done[key]
    nested = isinstance(layer, self.model_class)
    if self.used.setdefault(id(layer), node_index) != node_index:
      raise self.refusal(layer, (
          'it is called more than once (shared weights): call a separate copy '
          'each time (keras.models.clone_model)') if nested else (
          'it is called more than once (shared weights): give each call its '
          'own layer'))
    if type(layer).__name__ == 'InputLayer':
      name = self.bound.get(id(layer))
      if name is None:
        name = self.name(layer)
        self.nodes.append(Node(name, 'input'))
        self.owner[name] = layer
    elif nested:
      name = self._nested(layer, node_index, tensor_index, scope)
      self.calls.append((name, scope, tensor, layer.name))
    else:
      name = self._layer(tensor, layer, node_index, tensor_index, scope)
    self.done[key] = name
    return name

  def _called(self, layer, node_index: int) -> list:
    keras_node = layer._inbound_nodes[node_index]
    if _call_kwargs(keras_node, self.framework).get('training') is True:
      raise self.refusal(layer, 'it is called with training=True, so Keras '
                         'runs it in training mode: call it without training=True')
    return _inbound(keras_node, self.framework)

  def _nested(self, model, node_index: int, tensor_index: int, scope: int) -> str:
    inputs, outputs = (getattr(model, w, None) for w in ('inputs', 'outputs'))
    if not inputs or not outputs:
      raise self.refusal(model, 'a subclassed nested model (or one never '
                         'built) has no graph to read: build it with '
                         'keras.Input(shape) as a functional or Sequential model')
    entered = self.entered.get((id(model), node_index))
    if entered is None:
      inbound = self._called(model, node_index)
      if len(inbound) != len(inputs):
        raise self.refusal(model, f'it is called on {len(inbound)} tensor(s) but '
                           f'has {len(inputs)} inputs: call it on a list of '
                           'one tensor per input')
      sources = [self.visit(t, scope) for t in inbound]
      entered = len(self.scopes)
      self.scopes.append(Scope(model, scope, tuple(inbound)))
      self.entered[(id(model), node_index)] = entered
      for tensor, source in zip(inputs, sources):
        self.bound[id(tensor._keras_history[0])] = source
    return self.visit(outputs[tensor_index], entered)

  def _layer(self, tensor, layer, node_index: int, tensor_index: int,
             scope: int) -> str:
    cls = type(layer).__name__
    if tensor_index != 0:
      raise self.refusal(layer, 'layers with several outputs are not supported')
    inbound = self._called(layer, node_index)
    inputs = [self.visit(t, scope) for t in inbound]
    key = reader_key(layer)
    converter = layers_lib.LAYERS.get(key)
    module = type(layer).__module__
    if converter is None or not module.startswith(('keras', 'tf_keras')):
      what = key if key != cls else cls
      raise self.refusal(
          layer, f'{what} is not supported; supported layers: {layers_lib.SUPPORTED}')
    keras_node = layer._inbound_nodes[node_index]
    call = layers_lib.LayerCall(
        layer, layer.get_config(), _weights(layer), inputs,
        [tuple(t.shape[1:]) for t in inbound], self.framework, self.name(layer),
        _placeheld(_call_args(keras_node, self.framework), inbound),
        _placeheld(_call_kwargs(keras_node, self.framework), inbound))
    try:
      new = converter(call)
    except TfpruneError:
      raise
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as e:
      # A reader meeting a configuration it was not written for: refused,
      # never a traceback.
      raise self.refusal(layer, f'its configuration or weights are not read '
                         f'({type(e).__name__}: {e})') from None
    self.nodes.extend(new)
    self.owner.update((n.name, layer) for n in new)
    self.tensors[new[-1].name] = tensor
    self.scope_of[new[-1].name] = scope
    return new[-1].name


@contextlib.contextmanager
def _deep_recursion():
  limit = sys.getrecursionlimit()
  sys.setrecursionlimit(max(limit, RECURSION_LIMIT))
  try:
    yield
  finally:
    sys.setrecursionlimit(limit)


def trace(model) -> Traced:
  """The graph of a functional or Sequential Keras `model` (not yet verified).

  Nested functional and Sequential models are flattened into it (see the
  module docstring for how their layers are named).

  Raises:
    TfpruneError: naming the first layer, nested model or connection it
      cannot express.
  """
  framework = layers_lib.framework_of(model)
  sources, targets = _io(model, 'inputs'), _io(model, 'outputs')
  input_shapes = [tuple(source.shape[1:]) for source in sources]
  for input_shape in input_shapes:
    if any(d is None for d in input_shape):
      raise TfpruneError(
          f'model {model.name} takes inputs of shape {input_shape} with unknown '
          'sizes: build it with a fixed keras.Input(shape=...)')
  model_class = keras_compat.keras_module(framework).Model
  names, positions = node_names(model, model_class)
  tracer = _Tracer(framework, names)
  tracer.scopes.append(Scope(model))
  with _deep_recursion():
    inputs = [tracer.visit(source, 0) for source in sources]
    outputs = [tracer.visit(target, 0) for target in targets]
  metadata = {'framework': framework, 'model_name': model.name}
  # The inputs first, in the model's order; then the nodes in the order of
  # `model.layers`, a nested model's layers at its place (topological in both
  # frameworks), so weight layers are numbered as the model lists them.
  nodes = tracer.nodes
  ordered = sorted(nodes, key=lambda n: (0, (inputs.index(n.name),)) if
                   n.name in inputs else
                   (1, positions.get(id(tracer.owner[n.name]), (-1,))))
  try:
    try:
      graph = Graph(tuple(ordered), outputs, input_shapes, metadata)
    except TfpruneError:
      graph = Graph(tuple(nodes), outputs, input_shapes, metadata)
  except TfpruneError as e:
    raise TfpruneError(f'model {model.name}: {e}') from None
  return Traced(graph, tracer.tensors, framework, tuple(tracer.scopes),
                tracer.scope_of, tuple(tracer.calls))
