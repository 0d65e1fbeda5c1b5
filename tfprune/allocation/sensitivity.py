"""Sensitivity allocation: per-layer levels with the least predicted damage.

Each layer's damage curve (loss increase on held-out training data when that
layer alone is pruned, `scan.damage`) is interpolated on a fine grid of
levels up to the highest scanned one. Damages are taken as additive; a
Lagrange multiplier λ (damage per pruned weight) is bisected until every
layer, choosing the level that maximises λ·(weights pruned) - damage, prunes
at least the target together. The surplus (the grid and the jumps between
convex-hull points overshoot) is handed back by the layers whose damage rises
steepest at their chosen level, so the total is exact.
"""

from typing import Mapping

import numpy as np

from tfprune.allocation import scan as scan_lib
from tfprune.criteria import pruning
from tfprune.errors import TfpruneError

GRID_STEP = 0.25  # percent


def _grid(curve: scan_lib.Curve) -> np.ndarray:
  top = curve.levels[-1]
  return np.union1d(np.arange(0, top, GRID_STEP), curve.levels)


def _choose(lam: float, grids, damages, sizes) -> list[int]:
  """Each layer's grid index maximising lam·pruned - damage (ties: the larger)."""
  picks = []
  for g, d, n in zip(grids, damages, sizes):
    gain = lam * g * n / 100 - d
    picks.append(len(g) - 1 - int(np.argmax(gain[::-1])))
  return picks


def prune_counts(sizes: Mapping[str, int], k: float,
                 scan: scan_lib.Scan) -> dict[str, int]:
  """Weights to prune per layer, exactly floor(k·N/100) in all, least damage first.

  Args:
    sizes: {layer name: kernel weights} of the layers to prune.
    k: overall level in percent.
    scan: the layers' sensitivity curves (same names and sizes).

  Raises:
    TfpruneError: the scan is for other layers, or its highest levels cannot
      reach k overall.
  """
  scan_lib.check_matches(scan, sizes)
  names = list(sizes)
  n = [sizes[name] for name in names]
  target = pruning.prune_count(k, sum(n))
  curves = [scan.curves[name] for name in names]
  grids = [_grid(c) for c in curves]
  damages = [scan_lib.damage(c, g) for c, g in zip(curves, grids)]
  reach = sum(pruning.prune_count(g[-1], size) for g, size in zip(grids, n))
  if reach < target:
    raise TfpruneError(
        f'the sensitivity scan stops at levels that prune at most {reach} of '
        f'{sum(n)} weights, fewer than k={k:g}% asks: rescan with higher '
        '--levels (e.g. up to 99.5)')

  def pruned(picks):
    return sum(pruning.prune_count(g[p], size)
               for g, p, size in zip(grids, picks, n))

  lo, hi = 0.0, 1.0
  while pruned(_choose(hi, grids, damages, n)) < target:
    hi *= 4
  for _ in range(100):
    mid = (lo + hi) / 2
    if pruned(_choose(mid, grids, damages, n)) >= target:
      hi = mid
    else:
      lo = mid
  picks = _choose(hi, grids, damages, n)
  counts = [pruning.prune_count(g[p], size) for g, p, size in zip(grids, picks, n)]
  # Hand the surplus back from the layers whose damage per weight rises
  # steepest just below their chosen level.
  surplus = sum(counts) - target
  slopes = []
  for g, d, p, size in zip(grids, damages, picks, n):
    below = max(p - 1, 0)
    step = (g[p] - g[below]) * size / 100
    slopes.append((d[p] - d[below]) / step if step else 0.0)
  for i in np.argsort(slopes, kind='stable')[::-1]:
    back = min(surplus, counts[i])
    counts[i] -= back
    surplus -= back
  return dict(zip(names, counts))
