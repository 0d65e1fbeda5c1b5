"""Compaction of any graph: physically remove masked channels, same outputs.

`compact(graph, analysis, removed)` takes the dense graph and the channels
`channel_pruning.select` chose, and returns a smaller graph computing what
the masked graph (`channel_pruning.mask`) computes. A masked channel outputs
a constant (e.g. relu(bias), or act(BN(bias)) after a batch norm, 0 when
silenced); every consumer absorbs that constant into its bias (dense:
c @ W[rows]; conv: c times the sum of the filter taps, exact for a 'valid'
or 1x1 conv), then every slice of the group is deleted: the producers' output
channels, the batch-norm and depthwise entries, the consumers' input rows.
The constants are read from the masked graph itself on two random inputs and
must be the same everywhere, or compaction refuses naming the consumer; a
constant meeting zero padding must be 0 (the mask silences such channels).
This is `compaction.compact` (dense chains) for every graph.
"""

from typing import Mapping

import numpy as np

from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph.ir import Graph
from tfprune.transforms import channel_pruning
from tfprune.transforms import groups as groups_lib

# A masked channel's value must agree across inputs and positions to this
# relative tolerance (float32 round-off of pooling) to be folded as constant.
CONSTANT_RTOL = 1e-5


def _constants(graph: Graph, masked: Graph, analysis, removed) -> dict:
  """(consumer, input positions) -> the constant each removed position carries."""
  wanted = []
  for name, channels in removed.items():
    for s in analysis.group(name).slices:
      if s.role == groups_lib.CONSUMER and len(channels):
        wanted.append((s, s.indices[channels].ravel()))
  sources = sorted({graph.node(s.node).inputs[0] for s, _ in wanted})
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, *graph.input_shape)).astype(np.float32)
  values = evaluator.node_outputs(masked, x, sources) if sources else {}
  out = []
  for s, positions in wanted:
    tensor = values[graph.node(s.node).inputs[0]]
    picked = tensor[..., positions].reshape(-1, positions.size)
    constant = picked.mean(axis=0, dtype=np.float64)
    scale = np.maximum(np.abs(constant), 1e-30)
    if np.any(np.abs(picked - constant) > CONSTANT_RTOL * scale + 1e-7):
      raise TfpruneError(
          f'a removed channel entering {s.node} is not constant in the masked '
          'graph (zero padding or an op that mixes positions): it cannot be '
          'folded into a bias')
    out.append((s, positions, constant))
  return out


def _fold(node, positions: np.ndarray, constant: np.ndarray) -> np.ndarray:
  """What the removed input positions add to `node`'s pre-activation."""
  kernel = np.asarray(node.params['kernel'], np.float64)
  if node.op == 'dense':
    return constant @ kernel[positions]
  taps = kernel[:, :, positions, :]
  if np.any(constant) and node.attrs['padding'] == 'same' and max(
      kernel.shape[:2]) > 1:
    raise TfpruneError(
        f'{node.name} zero-pads a removed channel holding a non-zero constant, '
        'so it cannot be folded into the bias: mask with silence')
  return np.einsum('hwpo,p->o', taps, constant)


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
  biases: dict[str, np.ndarray] = {}
  for s, positions, constant in _constants(graph, masked, analysis, removed):
    node = masked.node(s.node)
    delta = _fold(node, positions, constant)
    biases[s.node] = biases.get(s.node, 0.0) + delta
  deletions: dict[tuple[str, str, int], set[int]] = {}
  for name, channels in removed.items():
    for s in analysis.group(name).slices:
      deletions.setdefault((s.node, s.param, s.axis), set()).update(
          s.indices[channels].ravel().tolist())
  nodes = []
  for node in masked.nodes:
    params = dict(node.params)
    if node.name in biases and ('bias' in node.params or np.any(biases[node.name])):
      out_units = params['kernel'].shape[-1]
      bias = np.asarray(params.get('bias', np.zeros(out_units)), np.float64)
      params['bias'] = (bias + biases[node.name]).astype(np.float32)
      if 'bias' not in node.params:  # a new bias loses the kernel's channels
        out_axis = params['kernel'].ndim - 1
        positions = deletions.get((node.name, 'kernel', out_axis), set())
        params['bias'] = np.delete(params['bias'], sorted(positions))
    for (name, param, axis), positions in deletions.items():
      if name == node.name and not (param == 'bias' and param not in node.params):
        params[param] = np.delete(params[param], sorted(positions), axis=axis)
    attrs = dict(node.attrs)
    if node.op == 'reshape':
      attrs['target_shape'] = _reshaped(node, analysis, removed, graph)
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
