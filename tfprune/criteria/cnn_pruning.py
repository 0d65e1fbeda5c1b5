"""Masks over several layers for the CNN studies: global magnitude, and per-layer masks.

Pure functions from weight arrays (and masks) to new boolean masks, True where
a weight is kept, with the exact counts of `pruning.prune_count`: globally
floor(k·N/100) of the N weights of all layers together.

`LAYER_PRUNERS` gives the LeNet-5 study's names to three criteria of
`pruning.PRUNERS` (the one table): seeded random weights (the baseline every
method must beat), the weights of smallest |w| (L1 unstructured), and whole
units of smallest L1 norm (structured; see `structured` for the physical
compaction).
"""

from typing import Sequence

import numpy as np

from tfprune import registry
from tfprune.criteria import pruning
from tfprune.errors import TfpruneError
from tfprune.graph.network import Network


def global_magnitude_masks(weights: Sequence[np.ndarray], k: float,
                           masks: Sequence[np.ndarray | None] | None = None
                           ) -> list[np.ndarray]:
  """Prunes the floor(k·N/100) weights of smallest |w| over all arrays at once.

  One threshold for the whole network: a layer of small weights loses more
  than k%, a layer of large ones less. Ties go to the lower index in the
  concatenation of the flattened arrays, in order.

  Args:
    weights: the N weights, as one array per layer.
    k: percentage of all N weights to prune, in [0, 100].
    masks: current masks (None entries: all kept); weights they already
      pruned count first towards the k% and are never revived.

  Returns:
    One new boolean mask per array, False where pruned.
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


# Study B's names for three criteria of `pruning.PRUNERS`.
LAYER_PRUNERS: dict[str, str] = {
    'random': 'random',
    'l1': 'weight',
    'structured_l1': 'unit_l1',
}


def get(name: str) -> pruning.MaskFn:
  """Returns the criterion Study B calls `name`.

  Raises:
    TfpruneError: `name` is not in `LAYER_PRUNERS`.
  """
  return pruning.get(registry.lookup(LAYER_PRUNERS, name, 'pruning method'))


def layer_masks(method: str, kernels: Sequence[np.ndarray], k: float,
                layers: Sequence[int],
                masks: Sequence[np.ndarray | None] | None = None,
                seed: int = 0) -> list[np.ndarray | None]:
  """One mask per kernel: `method` at level k on `layers`, None elsewhere.

  Args:
    method: a key of `LAYER_PRUNERS`.
    kernels: the kernels of every layer.
    k: per-layer level in percent.
    layers: 0-based indices of the layers to prune.
    masks: current masks (only ever shrunk), or None.
    seed: for `random`; layer i uses seed + i.
  """
  criterion = get(method)
  masks = list(masks) if masks is not None else [None] * len(kernels)
  out = []
  for i, kernel in enumerate(kernels):
    if i not in layers:
      out.append(masks[i])
    elif method == 'random':
      out.append(criterion(kernel, k, masks[i], seed=seed + i))
    else:
      out.append(criterion(kernel, k, masks[i]))
  return out


def network_masks(network: Network, method: str, k: float,
                  layers: Sequence[int], seed: int = 0
                  ) -> list[np.ndarray | None]:
  """`layer_masks` on the kernels of `network`, for `Network.masked`."""
  return layer_masks(method, network.kernels, k, layers, seed=seed)
