"""Bias correction: shift each pruned node's bias by its mean pre-activation error.

Leaves the kernels (and so the sparsity) untouched; runs after any
criterion (`sweep --bias_correction`), on calibration inputs pushed through
the dense graph and through the pruned graph corrected so far, node after
node in graph order (`pre_activations`, float64).
"""

from typing import Sequence

import numpy as np

from tfprune.criteria import pre_activations
from tfprune.errors import TfpruneError
from tfprune.graph.ir import Graph


def correct_biases(dense: Graph, pruned: Graph, names: Sequence[str],
                   calibration: np.ndarray, active_only: bool = True) -> Graph:
  """Shifts the biases of the nodes `names` by the mean pre-activation error.

  Node after node in graph order, with X the node's inputs through the
  corrected pruned graph so far, each chosen node's bias becomes b + the mean
  over the calibration examples (and output positions) of (dense
  pre-activation − pruned pre-activation), so the pruned node's mean
  pre-activation matches the dense one's. Kernels, and so the sparsity, are
  unchanged.

  On ReLU layers whose units are mostly inactive (the prebuilt MNIST MLP's are
  active on 13-36% of examples) that mean is dominated by negative
  pre-activations the ReLU discards, and matching it costs accuracy
  (measured on the MLP at k=90: 75.3% -> 10.3%); `active_only` averages each
  channel's error only where its dense pre-activation is > 0 (75.3% ->
  96.4%), except on the graph's output node, which has no ReLU after it (all
  examples count there). A channel never active keeps its bias.

  Args:
    dense: the graph before pruning.
    pruned: its pruned copy (same nodes and shapes).
    names: the nodes whose bias to correct (dense or conv, with a bias).
    calibration: (n, ...) calibration inputs (training data).
    active_only: average over the active examples only (see above).

  Returns:
    `pruned` with corrected biases.

  Raises:
    TfpruneError: the graphs differ in shape, or a node has no bias.
  """
  if [(n.name, {k: v.shape for k, v in n.params.items()}) for n in dense.nodes] != [
      (n.name, {k: v.shape for k, v in n.params.items()}) for n in pruned.nodes]:
    raise TfpruneError('the dense and pruned graphs have different shapes: pass '
                       'the pruned copy of the same graph')
  for name in names:
    if 'bias' not in dense.node(name).params:
      raise TfpruneError(f'node {name} has no bias to correct: drop '
                         '--bias_correction or keep the biases')
  x = pre_activations.calibration_batch(dense, calibration)
  corrected = pruned
  for name in [n.name for n in dense.nodes if n.name in set(names)]:
    errors = counts = 0.0
    for dense_in, pruned_in in zip(pre_activations.node_inputs(dense, name, x),
                                   pre_activations.node_inputs(corrected, name, x)):
      y = pre_activations.pre_activation(dense, name, dense_in)
      error = y - pre_activations.pre_activation(corrected, name, pruned_in)
      error = error.reshape(-1, y.shape[-1])
      if active_only and name != dense.output:
        active = y.reshape(-1, y.shape[-1]) > 0
        error = np.where(active, error, 0.0)
        counts = counts + active.sum(axis=0)
      else:
        counts = counts + len(error)
      errors = errors + error.sum(axis=0)
    bias = corrected.node(name).params['bias']
    corrected = corrected.with_params({name: {'bias': (
        bias + errors / np.maximum(counts, 1)).astype(np.float32)}})
  return corrected
