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
  merges, reshapes) runs the evaluator's own float32 op on a tensor filled
  with the constants, and an entry that varies over positions (next to zero
  padding, say) is not constant. A depthwise filter that is all zero outputs
  its bias whatever its input.
"""

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import activations
from tfprune.graph import node_ops
from tfprune.graph import ops
from tfprune.graph.ir import Graph
from tfprune.transforms import groups as groups_lib

# A constant read off a float32 op must agree across positions to this
# relative tolerance (round-off of pooling near borders) to count as constant.
CONSTANT_RTOL = 1e-5
# Ops whose output channel e is a function of input channel e alone.
_CHANNELWISE = ('batch_norm', 'normalization', 'rescaling', 'activation',
                'layer_norm') + groups_lib.PASS_THROUGH
_RELU = ops.activation('relu')


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
  out = activations.apply_activation(activation, x).numpy()[0].astype(np.float64)
  return np.where(known, out, np.nan)


def _produce(node, x, folded, arrays: Arrays):
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
    if padded(node) and np.any(vector[read]):
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
  out = node_ops.apply_node(graph, node, node.params, inputs).numpy()
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
  values = {graph.input.name: np.full(graph.input_shape[-1], np.nan)}
  biases = {}
  for node in graph.nodes[1:]:
    x = values[node.inputs[0]]
    if node.op in groups_lib.PRODUCERS:
      values[node.name], bias = _produce(node, x, entries[node.inputs[0]], arrays)
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
