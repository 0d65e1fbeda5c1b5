"""The allocations by name: one overall level k -> one level per pruned layer.

Every allocation is a pure function `(kernels, k, scan) -> {name: level}`:
`kernels` maps each pruned layer's name to its kernel, `k` is the overall
level in percent of all their weights together, `scan` a sensitivity scan
(only `sensitivity` reads it). The levels are percentages for the criteria of
`tfprune.criteria`, chosen so that a weight criterion prunes exact counts:

  uniform      k% of every layer (floor(k·n/100) each; today's rule).
  global       one magnitude threshold over all layers: exactly
               floor(k·N/100) of the N weights, the smallest |w| anywhere.
  erk          Erdős–Rényi-kernel densities (RigL), exactly floor(k·N/100).
  sensitivity  the least predicted damage from a scan, exactly floor(k·N/100).

With the `weight` criterion, `global` levels reproduce the global mask
(`global_masks`) exactly: layer l loses the c_l weights of smallest |w|, and
among equal |w| the lower index, as the global ranking does.
"""

from typing import Callable, Mapping, Sequence

import numpy as np

from tfprune import registry
from tfprune.allocation import counts as counts_lib
from tfprune.allocation import erk as erk_lib
from tfprune.allocation import scan as scan_lib
from tfprune.allocation import sensitivity as sensitivity_lib
from tfprune.criteria import pruning
from tfprune.errors import TfpruneError

Kernels = Mapping[str, np.ndarray]
AllocateFn = Callable[[Kernels, float, 'scan_lib.Scan | None'], dict[str, float]]


def global_masks(weights: Sequence[np.ndarray], k: float,
                 masks: Sequence[np.ndarray | None] | None = None
                 ) -> list[np.ndarray]:
  """Prunes the floor(k·N/100) weights of smallest |w| over all arrays at once.

  The one global-magnitude rule (Studies A and C, the `global` allocation):
  one threshold for the whole network, so a layer of small weights loses
  more than k%, a layer of large ones less. It is `pruning.weight_magnitude_mask`
  on the concatenation of the flattened arrays, in order: ties go to the
  lower index there.

  Args:
    weights: the N weights, as one array per layer.
    k: percentage of all N weights to prune, in [0, 100].
    masks: current masks (None entries: all kept); weights they already
      pruned count first towards the k% and are never revived.

  Returns:
    One new boolean mask per array, False where pruned.

  Raises:
    TfpruneError: no array, or not one mask per array.
  """
  if not len(weights):
    raise TfpruneError('global pruning needs at least one weight array')
  if masks is not None and len(masks) != len(weights):
    raise TfpruneError(
        f'{len(masks)} masks for {len(weights)} weight arrays: give one each')
  flat = np.concatenate([np.ravel(w) for w in weights])
  flat_mask = None
  if masks is not None:
    flat_mask = np.concatenate([
        np.ones(np.size(w), bool) if m is None else np.ravel(np.asarray(m, bool))
        for w, m in zip(weights, masks)])
  keep = pruning.weight_magnitude_mask(flat, k, flat_mask)
  bounds = np.cumsum([np.size(w) for w in weights])[:-1]
  return [part.reshape(np.shape(w))
          for part, w in zip(np.split(keep, bounds), weights)]


def _levels(kernels: Kernels, prune_counts: Mapping[str, int]) -> dict[str, float]:
  return {name: counts_lib.level_for_count(prune_counts[name], kernel.size)
          for name, kernel in kernels.items()}


def uniform(kernels: Kernels, k: float,
            scan: scan_lib.Scan | None = None) -> dict[str, float]:
  """k% of every layer."""
  del scan
  k = pruning.check_level(k)
  return {name: k for name in kernels}


def global_(kernels: Kernels, k: float,
            scan: scan_lib.Scan | None = None) -> dict[str, float]:
  """Each layer's share of the floor(k·N/100) smallest |w| of all layers."""
  del scan
  masks = global_masks(list(kernels.values()), k)
  return _levels(kernels, {name: int(mask.size - np.count_nonzero(mask))
                           for name, mask in zip(kernels, masks)})


def erk(kernels: Kernels, k: float,
        scan: scan_lib.Scan | None = None) -> dict[str, float]:
  """Erdős–Rényi-kernel densities with exact counts (see `erk`)."""
  del scan
  return _levels(kernels, erk_lib.prune_counts(
      {name: kernel.shape for name, kernel in kernels.items()}, k))


def sensitivity(kernels: Kernels, k: float,
                scan: scan_lib.Scan | None = None) -> dict[str, float]:
  """The levels of least predicted damage on the scan (see `sensitivity`)."""
  if scan is None:
    raise TfpruneError('the sensitivity allocation needs a scan: pass '
                       '--sensitivity_csv from experiments/sensitivity.py')
  return _levels(kernels, sensitivity_lib.prune_counts(
      {name: kernel.size for name, kernel in kernels.items()}, k, scan))


ALLOCATIONS: dict[str, AllocateFn] = {
    'uniform': uniform,
    'global': global_,
    'erk': erk,
    'sensitivity': sensitivity,
}
NEEDS_SCAN = ('sensitivity',)


def get(name: str) -> AllocateFn:
  """Returns the allocation called `name`.

  Raises:
    TfpruneError: `name` is not in `ALLOCATIONS`, listing the valid names.
  """
  return registry.lookup(ALLOCATIONS, name, 'allocation')


def allocate(name: str, kernels: Kernels, k: float,
             scan: scan_lib.Scan | None = None) -> dict[str, float]:
  """Levels per layer: allocation `name` of overall level k over `kernels`."""
  if not kernels:
    raise TfpruneError('no layer to allocate pruning to: prune at least one layer')
  return get(name)(kernels, k, scan)
