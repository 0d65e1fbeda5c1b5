"""Every method of `importances.REGISTRY`: exact sparsity, untouched layers, purity, errors.

Parameterized over the whole registry, so a new method inherits the suite.
"""

import numpy as np
import pytest

from tests import helpers
from tfprune.criteria import importances
from tfprune.criteria import methods
from tfprune.criteria import pruning
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError

SHAPES = ((20, 16), (16, 12), (12, 4))
# Methods that prune whole columns; the rest prune weights.
UNIT_LEVEL = {'unit', 'unit_l1', 'unit_bn', 'filter_l1'}
# Methods that rank by batch norms, which a dense chain has not: refused.
BATCH_NORM = {'unit_bn'}


def _expected_units(name, k, units):
  """Units removed from a layer: groups ranked across layers keep one (as on graphs)."""
  count = pruning.prune_count(k, units)
  return count if methods.get(name).per_layer else min(count, units - 1)


def _calibration(n=64):
  return np.random.default_rng(5).random((n, SHAPES[0][0]), dtype=np.float32)


def test_unit_level_set_names_registered_methods():
  assert UNIT_LEVEL | BATCH_NORM <= set(importances.REGISTRY)
  assert {n for n, m in importances.REGISTRY.items() if m.removes_channels} == UNIT_LEVEL


@pytest.mark.parametrize('name', sorted(BATCH_NORM))
def test_batch_norm_ranks_are_refused_on_a_dense_chain(name):
  with pytest.raises(TfpruneError, match=(
      f"^method '{name}' ranks units by batch-norm gamma, but a dense chain has "
      'no batch norm: use unit or unit_l1$')):
    methods.prune(name, helpers.random_network(SHAPES), 50, [0, 1])


# Every method that runs on a dense chain (those ranking by batch norms are refused).
CHAIN_METHODS = sorted(set(importances.REGISTRY) - BATCH_NORM)


@pytest.mark.parametrize('name', CHAIN_METHODS)
@pytest.mark.parametrize('k', [0, 50, 90, 100])
def test_prunes_exactly_and_leaves_other_layers_alone(name, k):
  net = helpers.random_network(SHAPES, seed=3)
  if name == 'filter_l1' and k == 100:  # it always keeps one filter
    with pytest.raises(TfpruneError, match='would remove all 16 units'):
      methods.prune(name, net, k, [0, 1], _calibration())
    return
  pruned = methods.prune(name, net, k, [0, 1], _calibration())
  for i, (rows, cols) in enumerate(SHAPES[:2]):
    zeros = pruned.kernels[i].size - np.count_nonzero(pruned.kernels[i])
    if name in UNIT_LEVEL:
      assert zeros == _expected_units(name, k, cols) * rows
    else:
      assert zeros == pruning.prune_count(k, rows * cols)
  np.testing.assert_array_equal(pruned.kernels[2], net.kernels[2])
  np.testing.assert_array_equal(pruned.biases[2], net.biases[2])


@pytest.mark.parametrize('name', CHAIN_METHODS)
def test_inputs_are_not_modified(name):
  net = helpers.random_network(SHAPES, seed=4)
  before = [a.copy() for a in net.kernels + net.biases]
  calibration = _calibration()
  calibration_before = calibration.copy()
  methods.prune(name, net, 70, [0, 1], calibration)
  for a, b in zip(net.kernels + net.biases, before):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(calibration, calibration_before)


@pytest.mark.parametrize('name', sorted(n for n, m in importances.REGISTRY.items()
                                        if m.needs_calibration))
def test_data_aware_method_without_calibration_names_the_flag(name):
  with pytest.raises(TfpruneError, match='needs calibration data: set --calibration_size'):
    methods.prune(name, helpers.random_network(SHAPES), 50, [0])


def test_unknown_method_lists_the_valid_ones():
  with pytest.raises(ValueError, match='choose one of weight, unit, random, wanda, obs, '
                     'unit_l1, unit_bn'):
    methods.get('lottery')


@pytest.mark.parametrize('fields,pattern', [
    (dict(methods=('obs',), calibration_size=0), "method 'obs' needs calibration data"),
    (dict(bias_correction=True, calibration_size=0), 'bias correction needs calibration'),
    (dict(calibration_size=-3), 'calibration_size must be >= 0'),
    (dict(bias_correction=True, use_biases=False), 'drop --bias_correction'),
])
def test_sweep_config_refuses_missing_calibration(fields, pattern):
  with pytest.raises(TfpruneError, match=pattern):
    sweep.SweepConfig('w', 'o', **fields)


def test_calibration_larger_than_training_set_is_refused(tmp_path):
  helpers.write_dataset(tmp_path, split='train', n=30)
  config = sweep.SweepConfig('w', 'o', data_dir=str(tmp_path), methods=('wanda',),
                             calibration_size=31)
  with pytest.raises(TfpruneError, match='calibration_size 31 exceeds the 30 training'):
    sweep.calibration(config)
  assert sweep.calibration(sweep.SweepConfig('w', 'o', methods=('weight',))) is None
