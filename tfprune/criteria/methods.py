"""Pruning a dense chain (a weight folder's `Network`) with any registered criterion.

The criteria are the importance objects of the one registry
(`importances.REGISTRY`); this module runs them on the dense-chain network
type, which the graph will replace: a weight-level criterion masks each
chosen layer by its scores; a channel criterion that ranks one kernel alone
(`unit`, `filter_l1`) masks each layer's units; `unit_l1` and `unit_bn` rank a
chain's units as channel groups (`unit_groups`); `wanda` and `obs` walk the
chain on calibration inputs (`reconstruction`). Any of them can be followed
by bias correction.
"""

from typing import Mapping, Sequence

import numpy as np

from tfprune.criteria import bias_correction as bias_correction_lib
from tfprune.criteria import importances
from tfprune.criteria import protocol
from tfprune.criteria import pruning
from tfprune.criteria import reconstruction
from tfprune.criteria import unit_groups
from tfprune.errors import TfpruneError
from tfprune.graph.network import Network

Criterion = 'str | protocol.Importance'
# The registry itself, under the name the scripts' --methods flags read (they
# move into the package with the `cli` work; then they read `importances`).
METHODS = importances.REGISTRY


def get(name: Criterion) -> protocol.Importance:
  """The registered criterion `name` (or the importance object itself)."""
  return importances.get(name)


def needs_calibration(names: Sequence[Criterion], bias_correction: bool) -> bool:
  """Whether running `names` (with or without bias correction) needs calibration."""
  return bias_correction or any(get(n).needs_calibration for n in names)


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
          use_biases: bool = True, bias_correction: bool = False) -> Network:
  """Prunes `network` with criterion `name` at level k on `layers`.

  Args:
    name: a registered criterion name or an importance object.
    network: the dense network (not modified).
    k: level in percent, or {layer index: level}.
    layers: 0-based indices of the layers to prune.
    calibration: (n, inputs) training inputs, for criteria that need them.
    use_biases: whether the forward pass adds biases.
    bias_correction: afterwards, shift each pruned layer's bias so its mean
      pre-activation, over the calibration examples where the dense unit is
      active, matches the dense network's.

  Raises:
    TfpruneError: the criterion or bias correction needs calibration data and
      none was given, or the criterion does not run on a dense chain.
  """
  importance = get(name)
  if needs_calibration([importance], bias_correction) and calibration is None:
    raise TfpruneError(
        f'method {importance.name!r}'
        f'{" with bias correction" if bias_correction else ""} '
        'needs calibration data: set --calibration_size to a positive number')
  pruned = _chain(importance, network, k, layers, calibration, use_biases)
  if bias_correction:
    # Averaging over all examples lets the negative pre-activations that ReLU
    # discards dominate (measured: 75.3% -> 10.3% at k=90); only the examples
    # where the dense unit is active count (75.3% -> 96.4%).
    pruned = bias_correction_lib.correct_biases(network, pruned, layers,
                                                calibration, active_only=True)
  return pruned
