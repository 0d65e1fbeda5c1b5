"""Pruning rounds of a fraction p of the surviving weights: exact counts and masks.

A round prunes floor(p * m) of the m surviving weights of a kernel by weight
magnitude (the registry's `weight` criterion), so after R rounds a kernel of n
weights keeps `remaining_counts(n, p, R)[-1]`, the exact integer form of
n * (1 - p)^R. Pure functions of arrays and masks.
"""

import fractions
import math
from typing import Sequence

import numpy as np

from tfprune.criteria import importances
from tfprune.criteria import pruning
from tfprune.errors import TfpruneError
from tfprune.training import schedules


def prune_remaining(weights: np.ndarray, p: float,
                    mask: np.ndarray | None = None) -> np.ndarray:
  """Prunes floor(p * m) of the m weights `mask` keeps, the smallest |w| first.

  The registry's `weight` criterion (|w|) ranks the surviving weights
  only, so p applies to what is left (ties: lower flat index first).

  Returns:
    A new boolean mask, a subset of `mask`.
  """
  mask = (np.ones(np.shape(weights), dtype=bool) if mask is None
          else np.asarray(mask, dtype=bool))
  survivors = np.asarray(weights)[mask]
  new = mask.copy()
  new[mask] = importances.get('weight').mask(survivors, _percent(p))
  return new


def _percent(p: float) -> float:
  """The exact percentage of the decimal p: 0.07 -> 7, not 7.000000000000001."""
  p = schedules.check_sparsity(p, 'prune_fraction')
  return float(fractions.Fraction(str(p)) * 100)


def remaining_counts(n: int, p: float, rounds: int) -> list[int]:
  """Weights kept by a kernel of n after 0, 1, ..., `rounds` rounds of p."""
  counts = [n]
  for _ in range(rounds):
    counts.append(counts[-1] - pruning.prune_count(_percent(p), counts[-1]))
  return counts


def prune_epochs(points: Sequence[fractions.Fraction], epochs: int) -> list[int]:
  """The 0-based epochs at whose start dynamic pruning happens: floor(f * epochs).

  Raises:
    TfpruneError: a point is outside (0, 1), falls on epoch 0, or two points
      fall on the same epoch.
  """
  if not points:
    raise TfpruneError('dynamic pruning needs prune points: pass e.g. 1/3,2/3')
  result = []
  for f in points:
    if not 0 < f < 1:
      raise TfpruneError(f'prune point {f} is outside (0, 1): give fractions of '
                         'training such as 1/3,2/3')
    epoch = math.floor(fractions.Fraction(f) * epochs)
    if epoch < 1 or epoch in result:
      raise TfpruneError(
          f'prune point {f} of {epochs} epochs falls on epoch {epoch}, which is '
          'the start of training or already a prune point: train for more '
          'epochs or use fewer, more distant points')
    result.append(epoch)
  return result


def kept_fraction(masks: Sequence[np.ndarray]) -> float:
  """Fraction of kept entries over all masks."""
  return sum(int(np.count_nonzero(m)) for m in masks) / sum(m.size for m in masks)


def sparsity(masks: Sequence[np.ndarray]) -> float:
  """Fraction of pruned entries over all masks."""
  return 1 - kept_fraction(masks)
