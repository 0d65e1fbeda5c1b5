"""Pruning a dense chain (a weight folder's `Network`) with any registered criterion.

The criteria are the importance objects of the one registry
(`importances.REGISTRY`); this module runs them on the dense-chain network
type, which the graph will replace: a weight-level criterion masks each
chosen layer by its scores; a channel criterion that ranks one kernel alone
(`unit`, `filter_l1`) masks each layer's units; `unit_l1` and `unit_bn` rank a
chain's units as channel groups (`unit_groups`); `wanda` and `obs` walk the
chain on calibration inputs (`reconstruction`).
"""

from typing import Mapping, Sequence

import numpy as np

from tfprune.criteria import importances
from tfprune.criteria import protocol
from tfprune.criteria import pruning
from tfprune.criteria import reconstruction
from tfprune.criteria import unit_groups
from tfprune.errors import TfpruneError
from tfprune.graph.network import Network

Criterion = 'str | protocol.Importance'


def get(name: Criterion) -> protocol.Importance:
  """The registered criterion `name` (or the importance object itself)."""
  return importances.get(name)


def _chain(importance: protocol.Importance, network: Network,
           k: float | Mapping[int, float], layers: Sequence[int],
           calibration: np.ndarray | None, use_biases: bool) -> Network:
  """`importance` on a dense chain, without bias correction."""
  name = importance.name
  if isinstance(importance, importances.Wanda):
    return reconstruction.prune_wanda(network, k, layers, calibration,
                                      use_biases=use_biases)
  if isinstance(importance, importances.OptimalBrainSurgeon):
    return reconstruction.prune_obs(network, k, layers, calibration, use_biases,
                                    importance.damping, importance.block_size)
  if name in unit_groups.IMPORTANCES:
    return network.masked(unit_groups.masks(network, name, k, layers))
  chosen = set(layers)
  if isinstance(importance, protocol.WeightImportance):
    # Layer i's seed is i, so equal shapes draw different `random` masks.
    return network.masked([
        importance.mask(w, pruning.layer_level(k, i), seed=i) if i in chosen
        else None for i, w in enumerate(network.kernels)])
  if isinstance(importance, protocol.ChannelImportance) and importance.per_layer:
    return network.masked([
        importance.kernel_mask(w, pruning.layer_level(k, i)) if i in chosen
        else None for i, w in enumerate(network.kernels)])
  raise TfpruneError(
      f'criterion {name!r} runs on graphs, not on a dense-chain weight folder: '
      'load the folder with tfprune.load and prune the graph')


def prune(name: Criterion, network: Network, k: float | Mapping[int, float],
          layers: Sequence[int], calibration: np.ndarray | None = None,
          use_biases: bool = True) -> Network:
  """Prunes `network` with criterion `name` at level k on `layers`.

  Args:
    name: a registered criterion name or an importance object.
    network: the dense network (not modified).
    k: level in percent, or {layer index: level}.
    layers: 0-based indices of the layers to prune.
    calibration: (n, inputs) training inputs, for criteria that need them.
    use_biases: whether the forward pass adds biases.

  Raises:
    TfpruneError: the criterion or bias correction needs calibration data and
      none was given, or the criterion does not run on a dense chain.
  """
  importance = get(name)
  if importance.needs_calibration and calibration is None:
    raise TfpruneError(
        f'method {importance.name!r} needs calibration data: set '
        '--calibration_size to a positive number')
  return _chain(importance, network, k, layers, calibration, use_biases)
