"""Dependency groups: the channels of a graph that must be removed together.

A dense or conv node produces channels (its output units). They flow through
channel-preserving ops (batch norm, activations, identities, pooling, zero
padding, per-channel or scalar rescaling/normalization, a depthwise conv with
multiplier 1) to the nodes that read them: a dense kernel's axis 0, a conv
kernel's axis 2 (after a flatten, channel c is every row h*w*C + c). An add
(any `merge`) ties the channels of its inputs one to one, so the producers of
a residual stage form one group; a `concat` on the channel axis gives each
input's channels their slice of the output. The walk labels every channel of
every tensor with a producer channel and joins labels with union-find; each
connected set is one *coupled channel*, and the coupled channels with the
same producers form one `Group`. How channels flow through each op is its
definition's channel rule (`ops.base.OpDef.channels`); an op without one
keeps the channels it reads (their group is refused, naming it) and the rest
of the graph is analysed as usual.

A group lists the `Slice`s it touches: (node, param, axis, indices), where
`indices[c]` are the positions of the group's channel c along that axis.
Channels tied to the network input or output, or passing an op that mixes
channels (a softmax or layer norm over them, a reshape that moves them), can
never be removed: their group is kept, with `refused` naming the node why.
"""

import dataclasses

import numpy as np

from tfprune.errors import TfpruneError
from tfprune.graph import ops
from tfprune.graph.ir import Graph

# Roles of a slice: a producer's output channels, a per-channel array that
# follows them (batch norm, depthwise kernel and bias), a consumer's inputs.
PRODUCER, CHANNEL, CONSUMER = ops.base.PRODUCER, ops.base.CHANNEL, ops.base.CONSUMER


def is_producer(op: str) -> bool:
  """Whether `op` makes new channels from its input's (dense, conv)."""
  return ops.get(op).input_axis is not None


@dataclasses.dataclass(frozen=True, eq=False)
class Slice:
  """Where a group's channels lie in one parameter.

  Attributes:
    node: the node holding the parameter.
    param: its name ('kernel', 'bias', 'gamma', ...).
    axis: the axis the channels index.
    indices: int array (channels, r): positions of channel c along `axis`
      (r > 1 after a flatten or a depthwise multiplier).
    role: PRODUCER, CHANNEL or CONSUMER.
  """
  node: str
  param: str
  axis: int
  indices: np.ndarray
  role: str


@dataclasses.dataclass(frozen=True, eq=False)
class Group:
  """Channels removed together, and every slice they touch.

  Attributes:
    name: the first producer's name (groups are named after it).
    producers: dense/conv nodes whose output channels the group holds.
    size: number of (coupled) channels.
    slices: every parameter slice of the group.
    silence: the channels reach a zero-padded conv (or zero padding), where a
      constant would not stay constant: masking zeroes them completely.
    refused: why the group cannot be pruned (naming the node), or None.
  """
  name: str
  producers: tuple[str, ...]
  size: int
  slices: tuple[Slice, ...]
  silence: bool = False
  refused: str | None = None

  @property
  def nodes(self) -> tuple[str, ...]:
    """Nodes whose output channels the group holds (producers, depthwise)."""
    out = list(self.producers)
    out += [s.node for s in self.slices
            if s.role == CHANNEL and s.param == 'kernel' and s.node not in out]
    return tuple(out)


@dataclasses.dataclass(frozen=True, eq=False)
class Analysis:
  """The groups of a graph and the channel labels they come from.

  Attributes:
    groups: in order of their first producer.
    labels: node -> int array, the group channel of each channel of the
      node's output as (group index, channel) pairs, shape (C, 2); (-1, -1)
      where the channel belongs to no group (it comes from the input).
  """
  groups: tuple[Group, ...]
  labels: dict[str, np.ndarray]

  def group(self, name: str) -> Group:
    for g in self.groups:
      if g.name == name:
        return g
    raise TfpruneError(f'no group named {name!r}: the groups are '
                       f'{", ".join(g.name for g in self.groups)}')


class _Walk:
  """Union-find over producer channels, and what each channel touches."""

  def __init__(self):
    self.parent: list[int] = []
    self.blocked: dict[int, str] = {}
    self.padded: set[int] = set()
    self.records: list[tuple[int, str, str, int, int, str]] = []
    self.producer_of: list[str] = []

  def new(self, node: str, count: int) -> np.ndarray:
    start = len(self.parent)
    self.parent.extend(range(start, start + count))
    self.producer_of.extend([node] * count)
    return np.arange(start, start + count)

  def find(self, a: int) -> int:
    while self.parent[a] != a:
      self.parent[a] = self.parent[self.parent[a]]
      a = self.parent[a]
    return a

  def union(self, a: int, b: int) -> None:
    a, b = self.find(a), self.find(b)
    if a != b:
      self.parent[max(a, b)] = min(a, b)

  def pads(self, labels: np.ndarray) -> None:
    """These channels reach zero padding: masking must silence them."""
    self.padded.update(int(v) for v in labels if v >= 0)

  def block(self, labels: np.ndarray, why: str) -> None:
    for label in labels:
      if label >= 0:
        self.blocked.setdefault(int(label), why)

  def record(self, labels, node, param, axis, role) -> None:
    for position, label in enumerate(labels):
      if label >= 0:
        self.records.append((int(label), node, param, axis, position, role))


def _walk_node(walk: _Walk, graph: Graph, node, labels: dict, padded: dict):
  """The channel labels of `node`'s output, by its op's channel rule.

  An op without a rule keeps the channels it reads (named in the group's
  `refused`); its output channels belong to no group.
  """
  call = ops.base.ChannelCall(
      node, [labels[s] for s in node.inputs],
      [graph.shapes[s] for s in node.inputs], graph.shapes[node.name],
      any(padded[s] for s in node.inputs))
  rule = ops.get(node.op).channels
  if rule is None:
    for x in call.ins:
      walk.block(x, f'{node.name} ({node.op}) has no channel rule')
    out = np.full(call.shape_out[-1] if call.shape_out else 1, -1)
  else:
    out = rule(walk, call)
  padded[node.name] = call.padded_in if call.padded_out is None else call.padded_out
  return out


def analyse(graph: Graph) -> Analysis:
  """The dependency groups of `graph` (see the module docstring)."""
  walk = _Walk()
  labels: dict[str, np.ndarray] = {}
  padded: dict[str, bool] = {}
  for node, shape in zip(graph.inputs, graph.input_shapes):
    labels[node.name] = np.full(shape[-1], -1)
    padded[node.name] = False
  for node in graph.nodes[len(graph.inputs):]:
    labels[node.name] = _walk_node(walk, graph, node, labels, padded)
  article = 'the' if len(graph.outputs) == 1 else 'a'
  for output in graph.outputs:
    walk.block(labels[output], f'{output} is {article} network output')
  return _collect(walk, labels)


def _collect(walk: _Walk, labels: dict) -> Analysis:
  """Groups the coupled channels (union-find roots) by their producers."""
  members: dict[int, list[int]] = {}
  for label in range(len(walk.parent)):
    members.setdefault(walk.find(label), []).append(label)
  by_producers: dict[tuple[str, ...], list[int]] = {}
  for root, labels_of in members.items():
    producers = tuple(dict.fromkeys(walk.producer_of[l] for l in labels_of))
    by_producers.setdefault(producers, []).append(root)
  channel_of = {}  # root -> (group index, channel)
  for g, (producers, roots) in enumerate(by_producers.items()):
    roots.sort()
    for c, root in enumerate(roots):
      channel_of[root] = (g, c)
  # Each group's records with their channels, in the order recorded: one
  # pass over the records, not one per group.
  records_of: list[list[tuple]] = [[] for _ in by_producers]
  channels_of: list[list[int]] = [[] for _ in by_producers]
  for record in walk.records:
    g, c = channel_of[walk.find(record[0])]
    records_of[g].append(record)
    channels_of[g].append(c)
  groups = [_group(walk, producers, roots, members,
                   zip(channels_of[g], records_of[g]))
            for g, (producers, roots) in enumerate(by_producers.items())]
  out_labels = {}
  for name, array in labels.items():
    out_labels[name] = np.array(
        [channel_of[walk.find(int(l))] if l >= 0 else (-1, -1) for l in array],
        dtype=np.int64).reshape(-1, 2)
  return Analysis(tuple(groups), out_labels)


def _group(walk: _Walk, producers, roots, members, records) -> Group:
  """The group of channels `roots`; `records` are its walk records, each
  with its channel in the group: (channel, record)."""
  positions: dict[tuple, dict[int, list[int]]] = {}
  for c, (_, node, param, axis, position, role) in records:
    positions.setdefault((node, param, axis, role), {}).setdefault(
        c, []).append(position)
  refused = next((walk.blocked[l] for root in roots for l in members[root]
                  if l in walk.blocked), None)
  slices = []
  for (node, param, axis, role), by_channel in positions.items():
    counts = {len(v) for v in by_channel.values()}
    if len(by_channel) != len(roots) or len(counts) != 1:
      refused = refused or (f'{node} reads the channels of {producers[0]} '
                            'unevenly')
      continue
    # A channel's one position needs no sort (most channels have one).
    per_channel = (by_channel[c] for c in range(len(roots)))
    indices = np.array([p if len(p) == 1 else sorted(set(p)) for p in per_channel],
                       dtype=np.int64)
    slices.append(Slice(node, param, axis, indices, role))
  silence = any(l in walk.padded for root in roots for l in members[root])
  return Group(producers[0], producers, len(roots), tuple(slices), silence,
               refused)
