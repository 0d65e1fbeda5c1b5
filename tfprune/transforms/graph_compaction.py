"""The one compaction: physically remove channels a graph does not need, same outputs.

A channel (one coupled channel of a `groups.Group`) can go when it is

* constant: every producer's kernel slice of it is zero, except on input
  rows that are themselves removed constants, so it outputs a constant
  (relu(bias), act(BN(bias)), 0 when silenced). Every consumer absorbs that
  constant into its bias (dense: c @ W; conv: c times the sum of the filter
  taps, exact for a 'valid' or 1x1 conv, or for c = 0), then the channel is
  deleted everywhere: the producers' output channels, the batch-norm and
  depthwise entries, the consumers' input rows;
* or unread: every consumer's input rows of it are zero.

The constants are computed from the parameters, node by node
(`channel_constants.propagate`): a dense or conv producer's constant is its
float64 bias plus the folded constants of its removed inputs, then its
activation; linear and ReLU stay in float64 and other ops run the
evaluator's own float32 op on a tensor filled with the constant. Folding is
float64 and rounded to float32 once, so on a dense chain this is the classic
MLP compaction, bit for bit.

`compact(graph, analysis, removed)` removes the channels `channel_pruning`
chose (after masking them); `compact_zeros(graph)` finds every removable
channel of a pruned graph itself, following constants from layer to layer
(a unit reading only removed constants is constant too). A group that would
lose every channel keeps channel 0, silenced: no input, no bias, no reader.
"""

from typing import Mapping

import numpy as np

from tfprune.errors import TfpruneError
from tfprune.graph import ops
from tfprune.graph.ir import Graph
from tfprune.graph.ir import thaw
from tfprune.transforms import channel_constants as constants
from tfprune.transforms import channel_pruning
from tfprune.graph import groups as groups_lib

_ANALYSES: dict[tuple, groups_lib.Analysis] = {}


def analysis_of(graph: Graph) -> groups_lib.Analysis:
  """`groups.analyse(graph)`, cached by structure (it reads no values)."""
  key = (graph.outputs, graph.input_shapes, tuple(
      (n.name, n.op, n.inputs, repr(thaw(n.attrs)),
       tuple((k, v.shape) for k, v in n.params.items())) for n in graph.nodes))
  if key not in _ANALYSES:
    if len(_ANALYSES) >= 16:
      _ANALYSES.clear()
    _ANALYSES[key] = groups_lib.analyse(graph)
  return _ANALYSES[key]


def _foldable(graph: Graph, group, values: dict, arrays: constants.Arrays):
  """Per channel of `group`: constant where read (and foldable), and unread."""
  constant = np.ones(group.size, bool)
  unread = np.ones(group.size, bool)
  for s in group.slices:
    if s.role == groups_lib.PRODUCER and s.param == 'kernel':
      constant &= ~np.isnan(values[s.node][s.indices[:, 0]])
    if s.role != groups_lib.CONSUMER:
      continue
    node = graph.node(s.node)
    read = values[node.inputs[0]][s.indices]
    ok = ~np.isnan(read).any(axis=1)
    if constants.padded(node):
      ok &= ~np.any(read != 0, axis=1)
    constant &= ok
    rows = np.moveaxis(arrays.nonzero(s.node), s.axis, 0)
    rows = rows.reshape(rows.shape[0], -1).any(axis=1)
    unread &= ~rows[s.indices].any(axis=1)
  return constant, unread


def compact_zeros(graph: Graph) -> Graph:
  """The graph without the channels a pruned `graph` no longer needs.

  Removes every channel of a prunable group that is constant or unread (see
  the module docstring), repeating until none is left: removing constants can
  make a later channel constant. Returns `graph` itself when nothing goes.
  """
  analysis = analysis_of(graph)
  arrays = constants.Arrays(graph)
  groups = [g for g in analysis.groups if not g.refused]
  removed: dict[str, np.ndarray] = {}
  while True:
    entries = constants.removed_entries(analysis, removed)
    propagated = constants.propagate(graph, entries, arrays)
    values = propagated[0]
    found = {}
    for group in groups:
      constant, unread = _foldable(graph, group, values, arrays)
      channels = np.flatnonzero(constant | unread)
      if channels.size:
        found[group.name] = channels
    if found.keys() == removed.keys() and all(
        np.array_equal(found[k], removed[k]) for k in found):
      break
    removed = found
  if not removed:
    return graph
  return _rebuild(graph, analysis, removed, propagated, check=False)


def compact(graph: Graph, analysis: groups_lib.Analysis,
            removed: Mapping[str, np.ndarray]) -> Graph:
  """The smaller graph computing `channel_pruning.mask(graph, analysis, removed)`.

  Args:
    graph: the unpruned (or already masked) graph.
    analysis: `groups.analyse(graph)`.
    removed: group name -> channel indices to remove.

  Raises:
    TfpruneError: a removed channel is not constant where it is read.
  """
  masked = channel_pruning.mask(graph, analysis, removed)
  entries = constants.removed_entries(analysis, removed)
  propagated = constants.propagate(masked, entries, constants.Arrays(masked))
  return _rebuild(masked, analysis, removed, propagated, check=True)


def _rebuild(graph: Graph, analysis, removed, propagated, check: bool) -> Graph:
  """Folds the removed channels' constants and deletes them.

  Args:
    graph: the (masked) graph.
    analysis: its groups.
    removed: group name -> channels to remove (all of them: keep channel 0).
    propagated: `constants.propagate(graph, <removed entries>, ...)`.
    check: refuse a removed channel that is not constant where it is read.
  """
  values, biases = propagated
  biases = {k: v.copy() for k, v in biases.items()}
  changes: dict[str, dict[str, np.ndarray]] = {}

  def param(node: str, name: str) -> np.ndarray:
    if name not in changes.setdefault(node, {}):
      changes[node][name] = np.array(graph.node(node).params[name])
    return changes[node][name]
  deletions: dict[tuple[str, str, int], set[int]] = {}
  deleted = {}
  for name, channels in removed.items():
    group = analysis.group(name)
    channels = np.asarray(channels, np.int64)
    if check and len(channels):
      for s in group.slices:
        node = graph.node(s.node)
        if s.role == groups_lib.CONSUMER and np.isnan(
            values[node.inputs[0]][s.indices[channels]]).any():
          raise TfpruneError(
              f'a removed channel entering {s.node} is not constant in the '
              'masked graph (zero padding or an op that mixes positions): it '
              'cannot be folded into a bias')
    if channels.size == group.size:  # keep channel 0, silenced
      channels = channels[1:]
      for s in group.slices:
        if s.role != groups_lib.CHANNEL and s.param in graph.node(s.node).params:
          index = [slice(None)] * graph.node(s.node).params[s.param].ndim
          index[s.axis] = s.indices[0]
          target = param(s.node, s.param)
          if s.role == groups_lib.PRODUCER and s.param == 'bias' and (
              s.node in biases):
            biases[s.node][s.indices[0]] = 0.0
          target[tuple(index)] = 0.0
    deleted[name] = channels
    for s in group.slices:
      deletions.setdefault((s.node, s.param, s.axis), set()).update(
          s.indices[channels].ravel().tolist())
  nodes = []
  for node in graph.nodes:
    params = {**node.params, **changes.get(node.name, {})}
    bias = biases.get(node.name)
    if bias is not None and ('bias' in node.params or np.any(bias)):
      params['bias'] = bias.astype(np.float32)
      if 'bias' not in node.params:  # a new bias loses the kernel's channels
        axis = ops.get(node.op).kernels['kernel']
        positions = deletions.get((node.name, 'kernel', axis), set())
        params['bias'] = np.delete(params['bias'], sorted(positions))
    for (name, p, axis), positions in deletions.items():
      if name == node.name and p in node.params:
        params[p] = np.delete(params[p], sorted(positions), axis=axis)
    attrs = dict(node.attrs)
    if node.op == 'reshape':
      attrs['target_shape'] = _reshaped(node, analysis, deleted, graph)
    nodes.append(node.__class__(node.name, node.op, node.inputs, attrs, params))
  return graph.replace_nodes(nodes)


def _reshaped(node, analysis, removed, graph) -> tuple[int, ...]:
  """A reshape's target after its input lost channels."""
  target = tuple(graph.shapes[node.name])
  labels = analysis.labels[node.inputs[0]]
  gone = sum(int(np.isin(labels[labels[:, 0] == g, 1], removed.get(group.name, [])).sum())
             for g, group in enumerate(analysis.groups))
  if not gone:  # also a reshape that moves the channels: none is removed
    return tuple(node.attrs['target_shape'])
  width = graph.shapes[node.inputs[0]][-1] - gone
  if len(target) == 1:
    return (int(np.prod(graph.shapes[node.inputs[0]][:-1])) * width,)
  return target[:-1] + (width,)


def prune_and_compact(graph: Graph, method: str, k: float,
                      names=None) -> tuple[Graph, Graph]:
  """The masked and the compacted graph of `channel_pruning.prune`."""
  analysis = groups_lib.analyse(graph)
  removed = channel_pruning.select(
      graph, analysis, method, k, names)
  return (channel_pruning.mask(graph, analysis, removed),
          compact(graph, analysis, removed))
