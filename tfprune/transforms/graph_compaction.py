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

The constants are computed from the parameters, node by node (`_propagate`):
a dense or conv producer's constant is its float64 bias plus the folded
constants of its removed inputs, then its activation; linear and ReLU stay in
float64 and other ops run the evaluator's own float32 op on a tensor filled
with the constant (a value that varies over positions, e.g. next to zero
padding, is not constant). Folding is float64 and rounded to float32 once,
so on a dense chain this is the classic MLP compaction, bit for bit.

`compact(graph, analysis, removed)` removes the channels `channel_pruning`
chose (after masking them); `compact_zeros(graph)` finds every removable
channel of a pruned graph itself, following constants from layer to layer
(a unit reading only removed constants is constant too). A group that would
lose every channel keeps channel 0, silenced: no input, no bias, no reader.
"""

from typing import Mapping

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import ops
from tfprune.graph.ir import Graph
from tfprune.graph.ir import thaw
from tfprune.transforms import channel_pruning
from tfprune.transforms import groups as groups_lib

# A constant read off a float32 op must agree across positions to this
# relative tolerance (round-off of pooling near borders) to count as constant.
CONSTANT_RTOL = 1e-5
# Ops whose output channel e is a function of input channel e alone.
_CHANNELWISE = ('batch_norm', 'normalization', 'rescaling', 'activation',
                'layer_norm') + groups_lib.PASS_THROUGH
_RELU = ops.activation('relu')
_ANALYSES: dict[tuple, groups_lib.Analysis] = {}


def analysis_of(graph: Graph) -> groups_lib.Analysis:
  """`groups.analyse(graph)`, cached by structure (it reads no values)."""
  key = (graph.output, graph.input_shape, tuple(
      (n.name, n.op, n.inputs, repr(thaw(n.attrs)),
       tuple((k, v.shape) for k, v in n.params.items())) for n in graph.nodes))
  if key not in _ANALYSES:
    if len(_ANALYSES) >= 16:
      _ANALYSES.clear()
    _ANALYSES[key] = groups_lib.analyse(graph)
  return _ANALYSES[key]


class _Arrays:
  """Float64 kernels and non-zero patterns of one graph, made once per call."""

  def __init__(self, graph: Graph):
    self.graph = graph
    self._f64: dict[str, np.ndarray] = {}
    self._nonzero: dict[str, np.ndarray] = {}

  def f64(self, name: str) -> np.ndarray:
    if name not in self._f64:
      self._f64[name] = np.array(self.graph.node(name).params['kernel'],
                                 dtype=np.float64)
    return self._f64[name]

  def nonzero(self, name: str) -> np.ndarray:
    if name not in self._nonzero:
      self._nonzero[name] = self.graph.node(name).params['kernel'] != 0
    return self._nonzero[name]


def _in_removed(analysis: groups_lib.Analysis, removed) -> dict[str, np.ndarray]:
  """Per node, which entries of its output's last axis are removed channels."""
  flags = [np.zeros(g.size, bool) for g in analysis.groups]
  for g, group in enumerate(analysis.groups):
    flags[g][np.asarray(removed.get(group.name, []), np.int64)] = True
  out = {}
  for name, labels in analysis.labels.items():
    hit = np.zeros(len(labels), bool)
    for g in np.unique(labels[:, 0]):
      if g >= 0:
        at = labels[:, 0] == g
        hit[at] = flags[g][labels[at, 1]]
    out[name] = hit
  return out


def _padded(node) -> bool:
  """A conv whose window reads zero padding: only a zero constant folds."""
  return (node.op == 'conv2d' and node.attrs['padding'] == 'same'
          and max(node.params['kernel'].shape[:2]) > 1)


def _activate(activation, pre: np.ndarray) -> np.ndarray:
  """An activation of per-channel constants (NaN: not constant)."""
  if activation['fn'] == 'linear':
    return pre
  if dict(activation) == _RELU:
    return np.maximum(pre, 0.0)
  if activation['fn'] == 'softmax':
    return np.full(pre.shape, np.nan)
  known = ~np.isnan(pre)
  x = tf.constant(np.where(known, pre, 0.0)[None].astype(np.float32))
  out = evaluator.apply_activation(activation, x).numpy()[0].astype(np.float64)
  return np.where(known, out, np.nan)


def _produce(node, x, folded, arrays: _Arrays):
  """A producer's constant outputs, and its bias with the folded inputs added."""
  bias = np.array(node.params['bias'], np.float64) if 'bias' in node.params \
      else np.zeros(node.params['kernel'].shape[-1])
  nonzero = arrays.nonzero(node.name)
  folded = folded & ~np.isnan(x)
  if not folded.any():
    live = nonzero.reshape(-1, nonzero.shape[-1]).any(axis=0)
    return _activate(node.attrs['activation'], np.where(live, np.nan, bias)), None
  vector = np.where(folded, x, 0.0)
  if node.op == 'dense':
    bias = bias + vector @ arrays.f64(node.name)
    live = nonzero[~folded].any(axis=0)
  else:
    read = nonzero.any(axis=(0, 1, 3))
    if _padded(node) and np.any(vector[read]):
      raise TfpruneError(
          f'{node.name} zero-pads a removed channel holding a non-zero '
          'constant, so it cannot be folded into the bias: mask with silence')
    bias = bias + np.einsum('hwpo,p->o', arrays.f64(node.name), vector)
    live = nonzero[:, :, ~folded, :].any(axis=(0, 1, 2))
  return _activate(node.attrs['activation'], np.where(live, np.nan, bias)), bias


def _filled(graph: Graph, node, values: dict) -> np.ndarray:
  """Per output entry, the constant of the evaluator's op on constant inputs."""
  inputs = [tf.constant(np.broadcast_to(
      np.nan_to_num(values[s], nan=0.0).astype(np.float32),
      (1, *graph.shapes[s]))) for s in node.inputs]
  out = evaluator.apply_node(graph, node, node.params, inputs).numpy()
  picked = out.reshape(-1, out.shape[-1])
  constant = picked.mean(axis=0, dtype=np.float64)
  scale = np.abs(constant)
  varies = np.any(np.abs(picked - constant) > CONSTANT_RTOL * scale + 1e-7,
                  axis=0)
  return np.where(varies, np.nan, constant)


def _known(graph: Graph, node, values: dict) -> np.ndarray:
  """Which output entries of a non-producer are constant if their inputs are."""
  known = [~np.isnan(values[s]) for s in node.inputs]
  size = graph.shapes[node.name][-1]
  shape_in = graph.shapes[node.inputs[0]]
  op = node.op
  if op == 'depthwise_conv2d':
    kernel = node.params['kernel']
    silent = ~(kernel != 0).reshape(-1, kernel.shape[2] * kernel.shape[3]).any(axis=0)
    return np.repeat(known[0], kernel.shape[3]) | silent
  if op == 'activation' and node.attrs['activation']['fn'] == 'softmax' and int(
      node.attrs['activation']['axis']) in (-1, len(shape_in)):
    return np.zeros(size, bool)
  if op == 'layer_norm' and len(shape_in) - 1 in node.attrs['axes']:
    return np.zeros(size, bool)
  if op in _CHANNELWISE:
    return known[0]
  if op == 'concat' and node.attrs['axis'] == len(shape_in) - 1:
    return np.concatenate(known)
  if op in ('merge', 'concat') and len({k.size for k in known}) == 1:
    return np.logical_and.reduce(known)
  if op in ('flatten', 'reshape'):
    if len(graph.shapes[node.name]) == 1:
      return np.tile(known[0], size // known[0].size)
    if size == shape_in[-1]:
      return known[0]
  return np.zeros(size, bool)


def _propagate(graph: Graph, removed_entries: dict, arrays: _Arrays
               ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
  """Every node's constant outputs (float64, NaN: not constant), and the new biases.

  Args:
    graph: the graph.
    removed_entries: per node, its output entries that are removed channels;
      a producer folds those of its inputs that are constant.
    arrays: `graph`'s float64 kernels.

  Returns:
    node -> constant of each entry of its output's last axis, and producer ->
    its float64 bias with the folded constants added (where any were).
  """
  values = {graph.input.name: np.full(graph.input_shape[-1], np.nan)}
  biases = {}
  for node in graph.nodes[1:]:
    x = values[node.inputs[0]]
    if node.op in groups_lib.PRODUCERS:
      values[node.name], bias = _produce(node, x, removed_entries[node.inputs[0]],
                                         arrays)
      if bias is not None:
        biases[node.name] = bias
      continue
    known = _known(graph, node, values)
    if not known.any():
      values[node.name] = np.full(known.shape, np.nan)
    elif node.op == 'activation' and dict(node.attrs['activation']) in (
        _RELU, ops.LINEAR):
      values[node.name] = _activate(node.attrs['activation'], x)
    elif node.op == 'identity':
      values[node.name] = x
    else:
      values[node.name] = np.where(known, _filled(graph, node, values), np.nan)
  return values, biases


def _foldable(graph: Graph, group, values: dict, arrays: _Arrays):
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
    if _padded(node):
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
  arrays = _Arrays(graph)
  groups = [g for g in analysis.groups if not g.refused]
  removed: dict[str, np.ndarray] = {}
  while True:
    entries = _in_removed(analysis, removed)
    propagated = _propagate(graph, entries, arrays)
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
  propagated = _propagate(masked, _in_removed(analysis, removed),
                          _Arrays(masked))
  return _rebuild(masked, analysis, removed, propagated, check=True)


def _rebuild(graph: Graph, analysis, removed, propagated, check: bool) -> Graph:
  """Folds the removed channels' constants and deletes them.

  Args:
    graph: the (masked) graph.
    analysis: its groups.
    removed: group name -> channels to remove (all of them: keep channel 0).
    propagated: `_propagate(graph, <removed entries>, ...)`.
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
        positions = deletions.get((node.name, 'kernel', params['kernel'].ndim - 1),
                                  set())
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
  width = graph.shapes[node.inputs[0]][-1] - gone
  if len(target) == 1:
    return (int(np.prod(graph.shapes[node.inputs[0]][:-1])) * width,)
  return target[:-1] + (width,)


def prune_and_compact(graph: Graph, method: str, k: float,
                      names=None) -> tuple[Graph, Graph]:
  """The masked and the compacted graph of `channel_pruning.prune`."""
  analysis = groups_lib.analyse(graph)
  removed = channel_pruning.select(
      graph, analysis, channel_pruning.METHODS[method], k, names)
  return (channel_pruning.mask(graph, analysis, removed),
          compact(graph, analysis, removed))
