"""Exact integer counts: per-layer prune counts that add up to a total.

Allocations compute real-valued per-layer counts; `apportion` rounds them so
the total is exact, and `level_for_count` gives the level k at which a
criterion prunes exactly a chosen count (`pruning.prune_count`).
"""

from typing import Sequence

import numpy as np

from tfprune.errors import TfpruneError


def level_for_count(count: int, size: int) -> float:
  """A level k (percent) at which `pruning.prune_count(k, size)` is `count`.

  The midpoint 100·(count + ½)/size is half a weight away from either
  neighbouring count, so the decimal reading of the float is exact enough.
  """
  if not 0 <= count <= size:
    raise TfpruneError(f'cannot prune {count} of {size} weights')
  if count == 0:
    return 0.0
  if count == size:
    return 100.0
  return 100 * (count + 0.5) / size


def apportion(real: Sequence[float], total: int,
              caps: Sequence[int]) -> list[int]:
  """Integer counts near `real` (each in [0, cap]) that sum to exactly `total`.

  Largest remainders: every count is floored, then the missing units go to
  the largest fractional parts (the lower index first among ties), or surplus
  units are taken from the smallest.

  Raises:
    TfpruneError: `total` does not fit in the caps.
  """
  caps = np.asarray(caps, dtype=np.int64)
  if not 0 <= total <= caps.sum():
    raise TfpruneError(f'cannot place {total} pruned weights in layers of '
                       f'{caps.sum()} weights')
  real = np.clip(np.asarray(real, dtype=np.float64), 0, caps)
  counts = np.floor(real).astype(np.int64)
  frac = real - counts
  missing = int(total - counts.sum())
  while missing > 0:
    room = np.flatnonzero(counts < caps)
    best = room[np.argsort(-frac[room], kind='stable')][:missing]
    counts[best] += 1
    frac[best] = -1.0
    missing -= len(best)
  while missing < 0:
    some = np.flatnonzero(counts > 0)
    worst = some[np.argsort(frac[some], kind='stable')][:-missing]
    counts[worst] -= 1
    frac[worst] = 2.0
    missing += len(worst)
  return counts.tolist()
