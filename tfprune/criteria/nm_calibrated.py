"""N:M patterns ranked by calibration data on a graph: Wanda's and SparseGPT's N:M modes.

Node after node in graph order, with X a Dense node's inputs through the
graph pruned so far (float64, `pre_activations`): `wanda` keeps, in every
group of M consecutive inputs, each unit's N weights of highest
|w_ij| · ||x_i||₂ (kept weights and biases unchanged); `obs` re-fits the node
to the dense graph's pre-activation and prunes with SparseGPT's N:M mode
(`obs.obs_from_moments`), bias included where the node has one. Convolutions
are refused: their data-aware patterns are not built.
"""

from typing import Sequence

import numpy as np

from tfprune.criteria import importances
from tfprune.criteria import obs
from tfprune.criteria import patterns
from tfprune.criteria import pre_activations
from tfprune.criteria import pruning
from tfprune.errors import TfpruneError
from tfprune.graph.ir import Graph


def prune(graph: Graph, criterion, names: Sequence[str], pattern: str,
          calibration: np.ndarray) -> Graph:
  """`graph` with `pattern` on the Dense nodes `names`, ranked by `wanda` or `obs`.

  Args:
    graph: the dense graph (not modified).
    criterion: `wanda` or `obs` (a name or the importance object).
    names: the nodes to prune, all Dense.
    pattern: 'N:M'.
    calibration: (n, ...) training examples.

  Raises:
    TfpruneError: a node is not Dense, or the criterion ranks no N:M pattern
      by data.
  """
  importance = importances.get(criterion)
  p = patterns.parse(pattern)
  if not isinstance(importance, (importances.Wanda,
                                 importances.OptimalBrainSurgeon)):
    raise TfpruneError(f'{importance.name} ranks no N:M pattern by calibration '
                       'data: use wanda or obs')
  for name in names:
    if graph.node(name).op != 'dense':
      raise TfpruneError(
          f'--pattern with {importance.name} prunes Dense nodes only, and '
          f'{name} is {graph.node(name).op}: use weight or random on this '
          'network, or prune its Dense layers only (--prune_layers)')
  x = pre_activations.calibration_batch(graph, calibration)
  pruned = graph
  for name in [n.name for n in graph.nodes if n.name in set(names)]:
    if isinstance(importance, importances.Wanda):
      params = _wanda(pruned, name, x, p)
    else:
      params = _obs(graph, pruned, name, x, p, importance)
    pruned = pruned.with_params({name: params})
  return pruned


def _rows(inputs: np.ndarray) -> np.ndarray:
  return inputs.reshape(-1, inputs.shape[-1])


def _wanda(pruned: Graph, name: str, x: np.ndarray,
           pattern: patterns.Pattern) -> dict[str, np.ndarray]:
  sums = sum(np.einsum('ij,ij->j', a, a) for a in map(
      _rows, pre_activations.node_inputs(pruned, name, x)))
  kernel = pruned.node(name).params['kernel']
  mask = patterns.nm_mask(np.abs(kernel) * np.sqrt(sums)[:, None], pattern)
  return {'kernel': np.where(mask, kernel, np.float32(0))}


def _obs(dense: Graph, pruned: Graph, name: str, x: np.ndarray,
         pattern: patterns.Pattern, importance) -> dict[str, np.ndarray]:
  node = dense.node(name)
  kernel = np.asarray(node.params['kernel'], np.float64)
  bias = node.params.get('bias')
  w0 = kernel if bias is None else np.vstack(
      [kernel, np.asarray(bias, np.float64)[None]])
  ata = aty = 0.0
  for a, a_dense in zip(pre_activations.node_inputs(pruned, name, x),
                        pre_activations.node_inputs(dense, name, x)):
    y = _rows(pre_activations.pre_activation(dense, name, a_dense))
    a = _rows(a)
    if bias is not None:
      a = np.hstack([a, np.ones((len(a), 1))])
    ata, aty = ata + a.T @ a, aty + a.T @ y
  rows = kernel.shape[0]
  w = obs.obs_from_moments(ata, aty, w0, rows,
                           pruning.prune_count(pattern.level, kernel.size),
                           float(importance.damping),
                           int(importance.block_size), pattern)
  params = {'kernel': w[:rows].astype(np.float32)}
  if bias is not None:
    params['bias'] = w[rows].astype(np.float32)
  return params
