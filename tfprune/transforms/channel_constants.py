"""What constant each channel of a graph carries, computed from the parameters.

`propagate(graph, entries, arrays)` walks the nodes in order and
gives, for every entry of every node's output (its last axis), the value the
entry holds whatever the input, or NaN where it depends on the input:

* a dense or conv producer's output channel is constant when its kernel
  slice is zero except on input rows that are removed constants; its value
  is its float64 bias plus those inputs' constants folded through the kernel
  (`c @ W`, or `c` times the sum of a conv's taps), then its activation. The
  folded bias is returned too: it is the bias the compacted graph gets;
* linear and ReLU activations act in float64 (so a dense chain's constants
  are exactly the classic MLP compaction's);
* every other op (batch norm, other activations, depthwise convs, pooling,
  merges, reshapes) runs its own float32 computation on a tensor filled
  with the constants, and an entry that varies over positions (next to zero
  padding, say) is not constant. Which entries can be constant is the op
  definition's constant rule (`ops.base.OpDef.constants`; none: no entry);
  a depthwise filter that is all zero outputs its bias whatever its input.
"""

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import groups as groups_lib
from tfprune.graph import ops
from tfprune.graph.ir import Graph

# A constant read off a float32 op must agree across positions to this
# relative tolerance (round-off of pooling near borders) to count as constant.
CONSTANT_RTOL = 1e-5


class Arrays:
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


def removed_entries(analysis: groups_lib.Analysis, removed) -> dict[str, np.ndarray]:
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


def padded(node) -> bool:
  """A producer whose window reads zero padding: only a zero constant folds."""
  return ops.get(node.op).zero_pads(node)


def _produce(node, x, folded, arrays: Arrays):
  """A producer's constant outputs, and its bias with the folded inputs added."""
  definition = ops.get(node.op)
  axis, out_axis = definition.input_axis, definition.kernels['kernel']
  # The kernel's non-zero pattern as (inputs, taps..., outputs).
  rows = np.moveaxis(arrays.nonzero(node.name), (axis, out_axis), (0, -1))
  bias = np.array(node.params['bias'], np.float64) if 'bias' in node.params \
      else np.zeros(rows.shape[-1])
  folded = folded & ~np.isnan(x)
  activation = node.attrs['activation']
  if not folded.any():
    live = rows.reshape(-1, rows.shape[-1]).any(axis=0)
    return ops.activations.on_constants(activation,
                                        np.where(live, np.nan, bias)), None
  vector = np.where(folded, x, 0.0)
  if rows.ndim == 2:
    bias = bias + vector @ arrays.f64(node.name)
  else:
    read = rows.reshape(rows.shape[0], -1).any(axis=1)
    if padded(node) and np.any(vector[read]):
      raise TfpruneError(
          f'{node.name} zero-pads a removed channel holding a non-zero '
          'constant, so it cannot be folded into the bias: mask with silence')
    # c times the sum of the taps of each input channel ('hwpo,p->o').
    letters = [chr(ord('a') + i) for i in range(rows.ndim)]
    letters[axis], letters[out_axis] = 'p', 'o'
    bias = bias + np.einsum(f'{"".join(letters)},p->o', arrays.f64(node.name),
                            vector)
  live = rows[~folded].reshape(-1, rows.shape[-1]).any(axis=0)
  return ops.activations.on_constants(activation,
                                      np.where(live, np.nan, bias)), bias


def _filled(graph: Graph, node, values: dict) -> np.ndarray:
  """Per output entry, the constant of the op's computation on constant inputs."""
  inputs = [tf.constant(np.broadcast_to(
      np.nan_to_num(values[s], nan=0.0).astype(np.float32),
      (1, *graph.shapes[s]))) for s in node.inputs]
  out = np.asarray(ops.get(node.op).compute(
      node, node.params, inputs, graph.shapes[node.name]))
  picked = out.reshape(-1, out.shape[-1])
  constant = picked.mean(axis=0, dtype=np.float64)
  scale = np.abs(constant)
  varies = np.any(np.abs(picked - constant) > CONSTANT_RTOL * scale + 1e-7,
                  axis=0)
  return np.where(varies, np.nan, constant)


def _known(graph: Graph, node, values: dict) -> np.ndarray:
  """Which output entries of a non-producer are constant if their inputs are
  (its op's constant rule; none: no entry)."""
  rule = ops.get(node.op).constants
  if rule is None:
    return np.zeros(graph.shapes[node.name][-1], bool)
  return rule(ops.base.ConstantCall(
      node, [~np.isnan(values[s]) for s in node.inputs],
      [graph.shapes[s] for s in node.inputs], graph.shapes[node.name]))


def propagate(graph: Graph, entries: dict, arrays: Arrays
              ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
  """Every node's constant outputs (float64, NaN: not constant), and the new biases.

  Args:
    graph: the graph.
    entries: `removed_entries(...)`: per node, its output entries that are
      removed channels; a producer folds those of its inputs that are constant.
    arrays: `graph`'s float64 kernels.

  Returns:
    node -> constant of each entry of its output's last axis, and producer ->
    its float64 bias with the folded constants added (where any were).
  """
  values = {node.name: np.full(shape[-1], np.nan)
            for node, shape in zip(graph.inputs, graph.input_shapes)}
  biases = {}
  for node in graph.nodes[len(values):]:
    x = values[node.inputs[0]]
    definition = ops.get(node.op)
    if definition.input_axis is not None:
      values[node.name], bias = _produce(node, x, entries[node.inputs[0]], arrays)
      if bias is not None:
        biases[node.name] = bias
      continue
    known = _known(graph, node, values)
    exact = definition.exact(node, x) if definition.exact and known.any() else None
    if not known.any():
      values[node.name] = np.full(known.shape, np.nan)
    elif exact is not None:
      values[node.name] = exact
    else:
      values[node.name] = np.where(known, _filled(graph, node, values), np.nan)
  return values, biases
