"""A dense chain's units ranked as channel groups: L1 of every weight they touch, batch-norm gamma.

On a graph, `transforms.channel_pruning` ranks coupled channel groups. On a
dense chain (a weight folder's `Network` without specs) a group is one
layer's units, each touching its column of the layer's kernel and its row of
the next layer's kernel. `masks` ranks them the same way, so `unit_l1`
removes the same units from a weight folder as from the same network
imported as a graph. As on a graph, exactly floor(k * m / 100) of a layer's
m units go (ties to the lower index) but at least one is kept, and the output
layer's units (the network output) are never removed.
"""

import logging
from typing import Mapping, Sequence

import numpy as np

from tfprune.criteria import pruning
from tfprune.errors import TfpruneError
from tfprune.graph.network import Network


def l1_scores(network: Network, layer: int) -> np.ndarray:
  """L1 norm of every kernel weight each unit of `layer` touches (column and next row)."""
  kernel = np.asarray(network.kernels[layer], np.float64)
  units = kernel.shape[-1]
  total = np.zeros(units) + np.abs(np.moveaxis(kernel, -1, 0)).reshape(
      units, -1).sum(axis=1)
  if layer + 1 < network.num_layers:
    following = np.asarray(network.kernels[layer + 1], np.float64)
    total = total + np.abs(following.reshape(units, -1)).sum(axis=1)
  return total


# The criteria ranked here (`masks`); others rank a kernel alone.
IMPORTANCES = ('unit_l1', 'unit_bn')


def check(network: Network, method: str) -> None:
  """Refuses, before any work, a method this module cannot rank `network` by.

  Raises:
    TfpruneError: `network` is not a dense chain, or `method` is `unit_bn`
      (a dense chain has no batch norm).
  """
  if method not in IMPORTANCES:
    return
  if network.specs is not None:
    raise TfpruneError(
        f'method {method!r} ranks coupled channels, which a CNN weight folder '
        'has through its graph: load it with tfprune.load and prune the graph')
  if method == 'unit_bn':
    raise TfpruneError(f'method {method!r} ranks units by batch-norm gamma, but '
                       'a dense chain has no batch norm: use unit or unit_l1')


def lowest(scores: np.ndarray, k: float) -> np.ndarray:
  """The floor(k*m/100) lowest of m scores (at most m - 1), ties to lower index."""
  count = min(pruning.prune_count(k, scores.size), scores.size - 1)
  return np.sort(np.argsort(scores, kind='stable')[:max(count, 0)])


def masks(network: Network, method: str, k: float | Mapping[int, float],
          layers: Sequence[int]) -> list[np.ndarray | None]:
  """One kernel mask per layer (None where kept whole): `method` at level k on `layers`.

  Args:
    network: a dense chain.
    method: a key of `IMPORTANCES` (`unit_bn` is refused: a dense chain has
      no batch norm).
    k: one level, or a mapping from layer index to that layer's level.
    layers: 0-based indices of the layers to prune.

  Raises:
    TfpruneError: the network is not a dense chain, or has no batch norm to
      rank by, or a level is outside [0, 100].
  """
  check(network, method)
  score = l1_scores
  out: list[np.ndarray | None] = [None] * network.num_layers
  last = network.num_layers - 1
  for i in sorted(set(layers)):
    level = pruning.check_level(pruning.layer_level(k, i))
    if i == last:
      logging.warning('units of layer_%d are kept: they are the network output',
                      i + 1)
      continue
    kernel = network.kernels[i]
    keep = np.ones(kernel.shape[-1], dtype=bool)
    keep[lowest(score(network, i), level)] = False
    out[i] = np.broadcast_to(keep, kernel.shape).copy()
  return out

