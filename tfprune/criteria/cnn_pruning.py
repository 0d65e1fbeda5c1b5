"""Mask criteria for the CNN studies: random, L1 units, and global magnitude.

Pure functions from weight arrays (and masks) to new boolean masks, True where
a weight is kept, with the exact counts of `pruning.prune_count`: per layer
floor(k·n/100) weights or floor(k·m/100) units, globally floor(k·N/100) of the
N weights of all layers together. They work on dense (in, out) and conv
(h, w, in, filters) kernels alike; a unit is one slice of the last axis.

`LAYER_PRUNERS` are the per-layer criteria compared in the LeNet-5 study:
seeded random weights (the baseline every method must beat), the weights of
smallest |w| (L1 unstructured), and whole units of smallest L1 norm
(structured; see `structured` for the physical compaction).
"""

from typing import Callable, Sequence

import numpy as np

from tfprune import registry
from tfprune.criteria import pruning
from tfprune.errors import TfpruneError
from tfprune.graph.network import Network


def random_mask(weights: np.ndarray, k: float, mask: np.ndarray | None = None,
                seed: int = 0) -> np.ndarray:
  """Prunes floor(k·n/100) weights chosen uniformly at random (seeded).

  Args:
    weights: any array of n weights; only its shape is used.
    k: percentage of the weights to prune, in [0, 100].
    mask: current mask; weights it already pruned count first towards the k%
      and are never revived.
    seed: the same seed, shape, k and mask give the same mask.

  Returns:
    A new boolean mask shaped like `weights`, False where pruned.
  """
  scores = np.random.default_rng(seed).random(np.shape(weights))
  # Random scores in [0, 1) ranked like magnitudes: the lowest are pruned.
  return pruning.weight_magnitude_mask(scores, k, mask)


def unit_l1_mask(weights: np.ndarray, k: float,
                 mask: np.ndarray | None = None) -> np.ndarray:
  """Prunes the floor(k·m/100) units (filters) of smallest L1 norm.

  Ties go to the lower unit index. At least one unit is always kept: k = 100
  is refused, since it would remove every filter of the layer.

  Args:
    weights: array whose last axis indexes the m units.
    k: percentage of the units to prune, in [0, 100).
    mask: current mask; norms are taken over kept weights only, and pruned
      weights are never revived.

  Returns:
    A new boolean mask shaped like `weights`, False on every weight of a
    pruned unit.

  Raises:
    TfpruneError: k would remove every unit.
  """
  w = np.abs(np.asarray(weights, dtype=np.float64))
  units = w.shape[-1] if w.ndim else 0
  if pruning.prune_count(k, units) >= units:
    raise TfpruneError(
        f'structured pruning at k={k:g}% would remove all {units} units of a '
        'layer: use k < 100 (at least one filter is always kept)')
  if mask is not None:
    w = np.where(np.asarray(mask, dtype=bool), w, 0.0)
  norms = w.reshape(-1, units).sum(axis=0)
  keep_units = pruning.weight_magnitude_mask(norms, k)
  keep = np.broadcast_to(keep_units, w.shape).copy()
  return keep if mask is None else keep & np.asarray(mask, dtype=bool)


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


MaskFn = Callable[..., np.ndarray]

LAYER_PRUNERS: dict[str, MaskFn] = {
    'random': random_mask,
    'l1': pruning.weight_magnitude_mask,
    'structured_l1': unit_l1_mask,
}


def get(name: str) -> MaskFn:
  """Returns the per-layer criterion called `name`.

  Raises:
    ValueError: `name` is not in `LAYER_PRUNERS`.
  """
  return registry.lookup(LAYER_PRUNERS, name, 'pruning method')


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
