"""Pruning criteria: exact counts, magnitude order, purity, ties, bad levels.

Every test is parameterized over every registered criterion that masks one
kernel alone without data (`MASKS`: the weight criteria's `mask`, the channel
criteria's `kernel_mask`), so a new criterion inherits the suite by
declaring how it scores and groups weights in `_GROUPS` below.
"""

import math

import numpy as np
import pytest

from tfprune.criteria import importances
from tfprune.criteria import protocol
from tfprune.criteria import pruning
from tfprune.errors import TfpruneError

# For each method: (number of prunable groups of an array, score of each group,
# group index of every weight). Weight pruning: each weight is a group scored
# by |w|. Unit pruning: each column (last axis) is a group scored by its L2 norm.
_GROUPS = {
    'weight': (lambda w: w.size, lambda w: np.abs(w).ravel(),
               lambda w: np.arange(w.size).reshape(w.shape)),
    'unit': (lambda w: w.shape[-1],
             lambda w: np.sqrt((w.reshape(-1, w.shape[-1]) ** 2).sum(axis=0)),
             lambda w: np.broadcast_to(np.arange(w.shape[-1]), w.shape)),
    'filter_l1': (lambda w: w.shape[-1],
                lambda w: np.abs(w.reshape(-1, w.shape[-1])).sum(axis=0),
                lambda w: np.broadcast_to(np.arange(w.shape[-1]), w.shape)),
    # random ranks weights by seeded uniform scores (seed 0, the default).
    'random': (lambda w: w.size,
               lambda w: np.random.default_rng(0).random(w.shape).ravel(),
               lambda w: np.arange(w.size).reshape(w.shape)),
}
# Each criterion's mask of one kernel: (weights, k, mask=None) -> new mask.
MASKS = {name: (imp.mask if isinstance(imp, protocol.WeightImportance)
                else imp.kernel_mask)
         for name, imp in importances.REGISTRY.items()
         if imp.per_layer and not imp.needs_calibration}
METHODS = sorted(MASKS)
# Criteria that keep at least one unit refuse to prune a whole layer.
KEEPS_ONE = ('filter_l1',)
SHAPES = [(784, 1000), (1000, 10), (37, 3), (3, 3, 8, 16), (1, 1)]
LEVELS = [0, 0.1, 10, 25, 33.3, 50, 90, 97.5, 99, 100]


def test_every_pruner_is_described():
  assert set(_GROUPS) == set(MASKS)


def _expected_count(k: float, n: int) -> int:
  # k has at most one decimal here: floor(k*n/100) in integers.
  return (round(k * 10) * n) // 1000


def _weights(shape, seed=0):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('shape', SHAPES, ids=str)
@pytest.mark.parametrize('k', LEVELS)
def test_prunes_exactly_floor_k_n_over_100_groups(method, shape, k):
  w = _weights(shape)
  count, _, group_of = _GROUPS[method]
  if method in KEEPS_ONE and _expected_count(k, count(w)) == count(w) > 0:
    with pytest.raises(TfpruneError, match='use k < 100'):
      MASKS[method](w, k)
    return
  mask = MASKS[method](w, k)
  assert mask.shape == w.shape and mask.dtype == bool
  # Weights pruned and kept per group (bincounts: sets of the 784,000 group
  # indices of the largest shape cost a tenth of a second per case).
  groups = np.asarray(group_of(w))
  pruned_in = np.bincount(groups[~mask], minlength=count(w))
  kept_in = np.bincount(groups[mask], minlength=count(w))
  assert np.count_nonzero(pruned_in) == _expected_count(k, count(w))
  # A group is pruned whole or kept whole.
  assert not np.any((pruned_in > 0) & (kept_in > 0))


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('k', [10, 50, 90, 99])
def test_every_kept_score_at_least_every_pruned_score(method, k):
  w = _weights((300, 40), seed=1)
  _, score, group_of = _GROUPS[method]
  mask = MASKS[method](w, k)
  scores = score(w)
  groups = group_of(w)
  kept = scores[np.unique(groups[mask])]
  pruned = scores[np.unique(groups[~mask])]
  assert kept.min() >= pruned.max()


@pytest.mark.parametrize('method', METHODS)
def test_inputs_are_not_mutated(method):
  w = _weights((50, 20))
  previous = MASKS[method](w, 30)
  w_copy, previous_copy = w.copy(), previous.copy()
  w.setflags(write=False)
  previous.setflags(write=False)
  MASKS[method](w, 60, mask=previous)
  np.testing.assert_array_equal(w, w_copy)
  np.testing.assert_array_equal(previous, previous_copy)


@pytest.mark.parametrize('method', sorted(set(METHODS) - {'random'}))
def test_ties_are_broken_by_lowest_index(method):
  w = np.ones((4, 10), dtype=np.float32)
  mask = MASKS[method](w, 50)
  np.testing.assert_array_equal(mask, MASKS[method](w, 50))
  _, _, group_of = _GROUPS[method]
  pruned = np.unique(group_of(w)[~mask])
  np.testing.assert_array_equal(pruned, np.arange(len(pruned)))


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('steps', [(20, 50, 80), (50, 30), (90, 99, 100)])
def test_masks_given_back_only_ever_lose_weights(method, steps):
  w = _weights((60, 30), seed=2)
  mask = None
  for k in steps:
    if method in KEEPS_ONE and k == 100:
      continue
    new = MASKS[method](w, k, mask=mask)
    if mask is not None:
      assert not (new & ~mask).any()  # nothing revived
    mask = new


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('bad', [-1, 100.5, math.nan, math.inf, '50', None, True])
def test_bad_level_is_refused_with_its_value(method, bad):
  with pytest.raises(TfpruneError, match=r'k must be .*\[0, 100\]'):
    MASKS[method](_weights((5, 5)), bad)


def test_prune_count_reads_decimal_levels_exactly():
  # 0.29 * 100 is 28.999999999999996 in binary floating point.
  assert pruning.prune_count(0.29, 10_000) == 29
  assert pruning.prune_count(97.3, 1000) == 973


@pytest.mark.parametrize('count', [0, 1, 5, 17, 38, 40])
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('nans', [False, True])
def test_keep_highest_prunes_what_a_stable_sort_puts_first(count, dtype, nans):
  scores = np.random.default_rng(4).integers(0, 6, size=40).astype(dtype)
  if nans:
    scores[[3, 20]] = np.nan  # sorted last: never among the 38 lowest
    count = min(count, 38)
  expected = np.sort(np.argsort(scores, kind='stable')[:count])
  keep = pruning._keep_highest(scores, count)
  assert keep.dtype == bool and keep.shape == scores.shape
  np.testing.assert_array_equal(np.flatnonzero(~keep), expected)
