"""Every method of `importances.REGISTRY` on a dense chain's graph: exact sparsity, untouched layers, purity, errors.

Parameterized over the whole registry, so a new method inherits the suite.
Each runs through the one graph entry point, `channel_pruning.prune_graph`,
on the graph a weight folder of a dense chain loads as.
"""

import numpy as np
import pytest

from tests import helpers
from tfprune.criteria import importances
from tfprune.criteria import pruning
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.transforms import channel_pruning

SHAPES = ((20, 16), (16, 12), (12, 4))
NAMES = ['layer_1', 'layer_2']  # the hidden layers; layer_3 is the output
# Methods that prune whole columns; the rest prune weights.
UNIT_LEVEL = {'unit', 'unit_l1', 'unit_bn', 'filter_l1'}
# Methods that rank by batch norms, which a dense chain has not: refused.
BATCH_NORM = {'unit_bn'}


def _calibration(n=64):
  return np.random.default_rng(5).random((n, SHAPES[0][0]), dtype=np.float32)


def _kernel(graph, i):
  return graph.node(f'layer_{i + 1}').params['kernel']


def _bias(graph, i):
  return graph.node(f'layer_{i + 1}').params['bias']


def test_unit_level_set_names_registered_methods():
  assert UNIT_LEVEL | BATCH_NORM <= set(importances.REGISTRY)
  assert {n for n, m in importances.REGISTRY.items() if m.removes_channels} == UNIT_LEVEL


@pytest.mark.parametrize('name', sorted(BATCH_NORM))
def test_batch_norm_ranks_are_refused_on_a_dense_chain(name):
  with pytest.raises(TfpruneError, match=(
      f"^method '{name}' ranks channels by batch-norm gamma, but this network "
      'has no batch norm on the channels it prunes: use unit or unit_l1$')):
    channel_pruning.prune_graph(helpers.random_chain(SHAPES), name, 50, NAMES)


# Every method that runs on a dense chain (those ranking by batch norms are refused).
CHAIN_METHODS = sorted(set(importances.REGISTRY) - BATCH_NORM)


@pytest.mark.parametrize('name', CHAIN_METHODS)
@pytest.mark.parametrize('k', [0, 50, 90, 100])
def test_prunes_exactly_and_leaves_other_layers_alone(name, k):
  graph = helpers.random_chain(SHAPES, seed=3)
  pruned = channel_pruning.prune_graph(graph, name, k, NAMES, _calibration())
  for i, (rows, cols) in enumerate(SHAPES[:2]):
    kernel = _kernel(pruned, i)
    zeros = kernel.size - np.count_nonzero(kernel)
    if name in UNIT_LEVEL:  # every channel group keeps one channel
      assert zeros == min(pruning.prune_count(k, cols), cols - 1) * rows
    else:
      assert zeros == pruning.prune_count(k, rows * cols)
  np.testing.assert_array_equal(_kernel(pruned, 2), _kernel(graph, 2))
  np.testing.assert_array_equal(_bias(pruned, 2), _bias(graph, 2))


@pytest.mark.parametrize('name', CHAIN_METHODS)
def test_inputs_are_not_modified(name):
  graph = helpers.random_chain(SHAPES, seed=4)
  before = {(n.name, p): a.copy() for n in graph.nodes for p, a in n.params.items()}
  calibration = _calibration()
  calibration_before = calibration.copy()
  channel_pruning.prune_graph(graph, name, 70, NAMES, calibration)
  for n in graph.nodes:
    for p, a in n.params.items():
      np.testing.assert_array_equal(a, before[n.name, p])
  np.testing.assert_array_equal(calibration, calibration_before)


@pytest.mark.parametrize('name', sorted(n for n, m in importances.REGISTRY.items()
                                        if m.needs_calibration))
def test_data_aware_method_without_calibration_is_refused(name):
  with pytest.raises(TfpruneError, match=f'{name} needs calibration data: pass '
                     'calibration='):
    channel_pruning.prune_graph(helpers.random_chain(SHAPES), name, 50, NAMES)


def test_unknown_method_lists_the_valid_ones():
  with pytest.raises(ValueError, match='choose one of weight, unit, random, wanda, obs, '
                     'unit_l1, unit_bn'):
    importances.get('lottery')


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
