"""The one network graph: an immutable DAG of named nodes, each an op with its arrays.

Every network tfprune works on can be held as a `Graph`: a dense chain, LeNet-5,
ResNet-18, MobileNetV2 or a user's functional Keras model. A node is one op
of `ops.OPS` (a Keras layer, mostly, named like it), the names of the nodes it
reads, its attributes (strides, padding, activation, ...) and its parameters
(kernel, bias, batch-norm statistics, ...) as read-only float32 arrays.
Nodes are stored in topological order, the input nodes first (one per
network input, `input_shapes` giving each one's per-example shape), and
`outputs` names the nodes whose values are the network's outputs. A network
with one input and one output is the same type: `input_shape`, `input`,
`output` and `output_shape` name its one input and output (and refuse, in
one line, a graph with several). Constructing a graph checks every node
against its op and infers every shape, so a graph that exists is consistent.

Graphs are values: pruning returns a new graph (`with_params`), never
changes one in place.
"""

import dataclasses
import types
from typing import Any, Iterable, Mapping

import numpy as np

from tfprune.errors import TfpruneError
from tfprune.graph import ops


def _freeze_value(value: Any) -> Any:
  if isinstance(value, Mapping):
    return types.MappingProxyType({k: _freeze_value(v) for k, v in value.items()})
  if isinstance(value, (list, tuple)):
    return tuple(_freeze_value(v) for v in value)
  if isinstance(value, np.generic):
    return value.item()
  return value


def thaw(value: Any) -> Any:
  """An attribute value as plain dicts and lists (e.g. for JSON)."""
  if isinstance(value, Mapping):
    return {k: thaw(v) for k, v in value.items()}
  if isinstance(value, tuple):
    return [thaw(v) for v in value]
  return value


def _frozen_array(value) -> np.ndarray:
  array = np.array(value, dtype=np.float32, copy=True)
  array.setflags(write=False)
  return array


@dataclasses.dataclass(frozen=True, eq=False)
class Node:
  """One operation of a graph.

  Attributes:
    name: unique within the graph (the Keras layer's name when imported).
    op: a key of `ops.OPS`.
    inputs: names of the nodes whose outputs this node reads, in order.
    attrs: the op's attributes (read-only mapping).
    params: the op's arrays by name (read-only float32 arrays).
  """
  name: str
  op: str
  inputs: tuple[str, ...] = ()
  attrs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  params: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    definition = ops.get(self.op)
    object.__setattr__(self, 'inputs', tuple(self.inputs))
    object.__setattr__(self, 'attrs', _freeze_value(dict(self.attrs)))
    params = {k: v if isinstance(v, np.ndarray) and not v.flags.writeable
              and v.dtype == np.float32 else _frozen_array(v)
              for k, v in self.params.items()}
    unknown = set(params) - set(definition.params)
    missing = set(definition.required) - set(params)
    if unknown or missing:
      raise TfpruneError(
          f'node {self.name} ({self.op}): parameters {sorted(params)} but the '
          f'op takes {list(definition.params)} with {list(definition.required)} '
          'required')
    object.__setattr__(self, 'params', types.MappingProxyType(params))
    arity = definition.arity
    if (arity is not None and len(self.inputs) != arity) or (
        arity is None and len(self.inputs) < 2):
      raise TfpruneError(
          f'node {self.name} ({self.op}) reads {len(self.inputs)} inputs, '
          f'expected {arity if arity is not None else "two or more"}')

  def replace(self, **changes) -> 'Node':
    """A copy with some fields changed (params merged, not replaced)."""
    if 'params' in changes:
      changes['params'] = {**self.params, **changes['params']}
    return dataclasses.replace(self, **changes)


def _shape(value) -> tuple[int, ...]:
  return tuple(int(d) for d in value)


def _is_shape(value) -> bool:
  return all(isinstance(d, (int, np.integer)) for d in value)


@dataclasses.dataclass(frozen=True, eq=False)
class Graph:
  """A network as a DAG of nodes (see the module docstring).

  Attributes:
    nodes: in topological order, the 'input' nodes first.
    outputs: names of the nodes whose values are the network's outputs, in
      order (a single name is taken for one output).
    input_shapes: the per-example shape of each input node, in order (a
      single shape is taken for one input).
    metadata: where the graph came from (framework, model name, ...).
  """
  nodes: tuple[Node, ...]
  outputs: tuple[str, ...]
  input_shapes: tuple[tuple[int, ...], ...]
  metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    object.__setattr__(self, 'nodes', tuple(self.nodes))
    outputs = self.outputs
    object.__setattr__(self, 'outputs', (outputs,) if isinstance(outputs, str)
                       else tuple(outputs))
    shapes_in = tuple(self.input_shapes)
    object.__setattr__(self, 'input_shapes', (_shape(shapes_in),)
                       if _is_shape(shapes_in) else tuple(_shape(s) for s in shapes_in))
    object.__setattr__(self, 'metadata', _freeze_value(dict(self.metadata)))
    count = len(self.input_shapes)
    if (not count or len(self.nodes) < count
        or any(n.op != 'input' for n in self.nodes[:count])):
      raise TfpruneError(f'a graph starts with its {count} input node(s), one '
                         'per input shape')
    if not self.outputs or len(set(self.outputs)) != len(self.outputs):
      raise TfpruneError(f'a graph names one or more distinct outputs, got '
                         f'{list(self.outputs)}')
    shapes: dict[str, tuple[int, ...]] = {}
    for i, node in enumerate(self.nodes):
      if node.name in shapes:
        raise TfpruneError(f'two nodes are named {node.name}: names are unique')
      if node.op == 'input':
        if i >= count:
          raise TfpruneError(f'node {node.name}: the input nodes come first, '
                             'one per input shape')
        shapes[node.name] = self.input_shapes[i]
        continue
      for source in node.inputs:
        if source not in shapes:
          raise TfpruneError(
              f'node {node.name} reads {source}, which is not an earlier node')
      try:
        shapes[node.name] = tuple(int(d) for d in ops.get(node.op).shape(
            node.attrs, node.params, [shapes[s] for s in node.inputs]))
      except TfpruneError as e:
        raise TfpruneError(f'node {node.name} ({node.op}): {e}') from None
      except KeyError as e:
        raise TfpruneError(
            f'node {node.name} ({node.op}) lacks attribute {e}') from None
    for output in self.outputs:
      if output not in shapes:
        raise TfpruneError(f'the output {output} is not a node of the graph')
    object.__setattr__(self, '_shapes', types.MappingProxyType(shapes))
    object.__setattr__(self, '_index', {n.name: n for n in self.nodes})

  @property
  def inputs(self) -> tuple[Node, ...]:
    """The input nodes, in order (one per network input)."""
    return self.nodes[:len(self.input_shapes)]

  def _one(self, items: tuple, what: str):
    if len(items) != 1:
      names = [getattr(i, 'name', i) for i in items]
      raise TfpruneError(
          f'this step reads networks with one {what}, and this one has '
          f'{len(items)} ({", ".join(names)}): use a single-{what} model here')
    return items[0]

  @property
  def input(self) -> Node:
    """The one input node (refused for a graph with several)."""
    return self._one(self.inputs, 'input')

  @property
  def input_shape(self) -> tuple[int, ...]:
    """The one input's per-example shape (refused for several inputs)."""
    self._one(self.inputs, 'input')
    return self.input_shapes[0]

  @property
  def output(self) -> str:
    """The name of the one output node (refused for several outputs)."""
    return self._one(self.outputs, 'output')

  @property
  def shapes(self) -> Mapping[str, tuple[int, ...]]:
    """Per-example output shape of every node, by name."""
    return self._shapes  # pylint: disable=no-member

  @property
  def output_shape(self) -> tuple[int, ...]:
    """The one output's per-example shape (refused for several outputs)."""
    return self.shapes[self.output]

  @property
  def output_shapes(self) -> tuple[tuple[int, ...], ...]:
    """Per-example shape of each output, in order."""
    return tuple(self.shapes[o] for o in self.outputs)

  def node(self, name: str) -> Node:
    """The node called `name`.

    Raises:
      TfpruneError: no such node; the message lists the prunable ones.
    """
    try:
      return self._index[name]  # pylint: disable=no-member
    except KeyError:
      raise TfpruneError(
          f'no node named {name!r}: the layers with kernels are '
          f'{", ".join(n.name for n in self.weighted()) or "none"}') from None

  def consumers(self, name: str) -> list[Node]:
    """The nodes that read `name`'s output."""
    return [n for n in self.nodes if name in n.inputs]

  def weighted(self) -> list[Node]:
    """The nodes with a prunable kernel, in order."""
    return [n for n in self.nodes if ops.get(n.op).kernels]

  def with_params(self, changes: Mapping[str, Mapping[str, np.ndarray]]) -> 'Graph':
    """A new graph where node `name`'s params are updated by `changes[name]`."""
    unknown = set(changes) - set(self._index)  # pylint: disable=no-member
    if unknown:
      raise TfpruneError(f'no nodes named {sorted(unknown)} in the graph')
    nodes = tuple(n.replace(params=changes[n.name]) if n.name in changes else n
                  for n in self.nodes)
    return dataclasses.replace(self, nodes=nodes)

  def replace_nodes(self, nodes: Iterable[Node]) -> 'Graph':
    """A new graph with these nodes (checked again)."""
    return dataclasses.replace(self, nodes=tuple(nodes))

  @property
  def num_params(self) -> int:
    """Entries of every array in the graph."""
    return sum(a.size for n in self.nodes for a in n.params.values())
