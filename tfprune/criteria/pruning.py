"""Pruning criteria: pure functions from a weight array (and mask) to a new mask.

A mask is a boolean array shaped like the weights, True where a weight is
kept. Criteria never modify their inputs and know nothing of models or files.

Levels `k` are percentages in [0, 100]: in a layer of n weights (or m units),
exactly floor(k * n / 100) weights (or floor(k * m / 100) units) are pruned.
Ties are broken deterministically: among equal scores the lower flat index
(weights) or column index (units) is pruned first.
"""

import fractions
import math
import numbers
from typing import Any, Mapping

import numpy as np

from tfprune.errors import TfpruneError


def check_level(k: float, name: str = 'k', high: float = 100,
                include_high: bool = True, hint: str = '') -> float:
  """Returns `k` as a float if it lies in [0, high] ([0, high) without `include_high`).

  The one range check of pruning levels: percentages in [0, 100] (the
  default), target sparsities in [0, 100), and fractions in [0, 1).

  Args:
    k: the level.
    name: what `k` is, for the message.
    high: the upper bound, 100 for a percentage or 1 for a fraction.
    include_high: whether `high` itself is allowed.
    hint: appended to the message, e.g. ': pass e.g. --targets=90,95'.

  Raises:
    TfpruneError: `k` is not a finite real number or lies outside the range.
  """
  interval = f'[0, {high:g}{"]" if include_high else ")"}'
  if isinstance(k, bool) or not isinstance(k, numbers.Real) or not math.isfinite(k):
    raise TfpruneError(f'{name} must be a number in {interval}, got {k!r}{hint}')
  if not (0 <= k <= high if include_high else 0 <= k < high):
    note = ' (a fraction, not a percentage)' if high == 1 else ''
    raise TfpruneError(f'{name} must be in {interval}{note}, got {k:g}{hint}')
  return float(k)


def prune_count(k: float, n: int) -> int:
  """floor(k * n / 100), computed exactly for the decimal value of `k`.

  `fractions.Fraction(str(k))` reads 97.3 as 973/10, so no binary rounding
  error moves the count by one.
  """
  return math.floor(fractions.Fraction(str(check_level(k))) * n / 100)


def _keep_highest(scores: np.ndarray, count: int) -> np.ndarray:
  """False on the `count` lowest of 1-D `scores`, ties going to lower index.

  The same set as the first `count` of a stable argsort, found in O(n) with
  `np.partition` and no index arrays: everything above the count-th smallest
  value is kept, and so are the entries equal to it past the first
  count - (number below it) of them.
  """
  if count <= 0:
    return np.ones(scores.size, dtype=bool)
  if count >= scores.size:
    return np.zeros(scores.size, dtype=bool)
  threshold = np.partition(scores, count - 1)[count - 1]
  keep = ~(scores <= threshold)  # NaN scores are never pruned
  ties = np.flatnonzero(scores == threshold)
  below = scores.size - int(np.count_nonzero(keep)) - ties.size
  keep[ties[count - below:]] = True
  return keep


def weight_magnitude_mask(weights: np.ndarray, k: float,
                          mask: np.ndarray | None = None) -> np.ndarray:
  """Prunes the floor(k·n/100) weights of smallest |w| (weight-level pruning).

  Args:
    weights: any array of n weights (a dense or conv kernel).
    k: percentage of the layer's weights to prune, in [0, 100].
    mask: current mask; weights it already pruned count first towards the k%
      and are never revived.

  Returns:
    A new boolean mask shaped like `weights`, False where pruned.
  """
  weights = np.asarray(weights)
  # |w| is exact in the weights' own float type: float32 weights need no copy
  # to float64 (half the memory traffic on large layers).
  dtype = np.float32 if weights.dtype == np.float32 else np.float64
  scores = np.abs(weights.astype(dtype, copy=False)).ravel()
  if mask is not None:
    scores = np.where(np.asarray(mask, dtype=bool).ravel(), scores, dtype(-1))
  keep = _keep_highest(scores, prune_count(k, scores.size))
  keep = keep.reshape(np.shape(weights))
  return keep if mask is None else keep & np.asarray(mask, dtype=bool)


def unit_l2_mask(weights: np.ndarray, k: float,
                 mask: np.ndarray | None = None) -> np.ndarray:
  """Prunes the floor(k·m/100) units of smallest L2 norm (unit-level pruning).

  A unit is one output column (the last axis): a neuron of a dense kernel
  (in, units) or a filter of a conv kernel (h, w, in, filters).

  Args:
    weights: array whose last axis indexes the m units.
    k: percentage of the layer's units to prune, in [0, 100].
    mask: current mask; its norms are taken over the kept weights only, and
      pruned weights are never revived.

  Returns:
    A new boolean mask shaped like `weights`, False on every weight of a
    pruned unit.
  """
  w = np.asarray(weights, dtype=np.float64)
  if w.ndim < 1:
    raise TfpruneError('unit pruning needs an array with a units axis, got a scalar')
  if mask is not None:
    w = np.where(np.asarray(mask, dtype=bool), w, 0.0)
  norms = np.sqrt(np.sum(w.reshape(-1, w.shape[-1]) ** 2, axis=0))
  keep_units = _keep_highest(norms, prune_count(k, w.shape[-1]))
  keep = np.broadcast_to(keep_units, w.shape).copy()
  return keep if mask is None else keep & np.asarray(mask, dtype=bool)


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
  return weight_magnitude_mask(scores, k, mask)


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
  if prune_count(k, units) >= units:
    raise TfpruneError(
        f'structured pruning at k={k:g}% would remove all {units} units of a '
        'layer: use k < 100 (at least one filter is always kept)')
  if mask is not None:
    w = np.where(np.asarray(mask, dtype=bool), w, 0.0)
  norms = w.reshape(-1, units).sum(axis=0)
  keep_units = weight_magnitude_mask(norms, k)
  keep = np.broadcast_to(keep_units, w.shape).copy()
  return keep if mask is None else keep & np.asarray(mask, dtype=bool)


def layer_level(k: 'float | Mapping[Any, float]', layer) -> float:
  """The level of `layer`: `k` itself, or `k[layer]` for per-layer levels.

  Per-layer levels come from an allocation (`tfprune.allocation`); a plain
  number is the same level for every layer.
  """
  return k[layer] if isinstance(k, Mapping) else k
