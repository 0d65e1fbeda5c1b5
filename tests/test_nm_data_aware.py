"""N:M patterns ranked by Wanda and OBS on graphs: exactly N survivors in every group of M."""

import numpy as np
import pytest

import tfprune
from tests import helpers
from tfprune.criteria import nm_calibrated
from tfprune.criteria import patterns
from tfprune.drivers import folder_graph
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.graph import weights

SHAPES = ((16, 10), (10, 8), (8, 3))
NAMES = ['layer_1', 'layer_2']


def _graph():
  return helpers.random_chain(SHAPES)


def _calibration(n=96, seed=3):
  return np.random.default_rng(seed).random((n, SHAPES[0][0])).astype(np.float32)


def _kernel(graph, name):
  return graph.node(name).params['kernel']


@pytest.mark.parametrize('method', ['wanda', 'obs'])
@pytest.mark.parametrize('text', ['2:4', '1:4', '3:8', '4:4'])
def test_every_group_keeps_exactly_n(method, text):
  pattern = patterns.parse(text)
  graph = _graph()
  pruned = nm_calibrated.prune(graph, method, NAMES, text, _calibration())
  for name in NAMES:
    kernel = _kernel(pruned, name)
    for start in range(0, kernel.shape[0], pattern.m):
      group = kernel[start:start + pattern.m] != 0
      np.testing.assert_array_equal(group.sum(axis=0),
                                    min(pattern.n, len(group)))
  np.testing.assert_array_equal(_kernel(pruned, 'layer_3'),
                                _kernel(graph, 'layer_3'))


def test_wanda_keeps_the_n_largest_weight_times_input_norm_of_each_group():
  # Oracle: the inputs by numpy (ReLU chain through the pruned first layer),
  # each group of 4 inputs of each unit keeping its 2 largest |w|·‖x‖.
  kernels, biases = helpers.stored_arrays(_graph())
  x = _calibration().astype(np.float64)
  pruned = nm_calibrated.prune(_graph(), 'wanda', NAMES, '2:4', x)
  inputs = x
  for i, name in enumerate(NAMES):
    kernel = kernels[i]
    scores = np.abs(kernel) * np.sqrt((inputs ** 2).sum(axis=0))[:, None]
    expected = np.zeros(kernel.shape, bool)
    for start in range(0, kernel.shape[0], 4):
      top = np.argsort(-scores[start:start + 4], axis=0, kind='stable')[:2]
      for unit in range(kernel.shape[1]):
        expected[start + top[:, unit], unit] = True
    np.testing.assert_array_equal(_kernel(pruned, name) != 0, expected)
    kept = np.where(expected, kernel, 0)
    np.testing.assert_array_equal(_kernel(pruned, name), kept)
    inputs = np.maximum(inputs @ kept + biases[i], 0)


def test_obs_refits_the_kept_weights_and_wanda_does_not():
  graph = _graph()
  wanda = nm_calibrated.prune(graph, 'wanda', ['layer_1'], '2:4', _calibration())
  kept = _kernel(wanda, 'layer_1') != 0
  np.testing.assert_array_equal(_kernel(wanda, 'layer_1')[kept],
                                _kernel(graph, 'layer_1')[kept])
  obs = nm_calibrated.prune(graph, 'obs', ['layer_1'], '2:4', _calibration())
  kept = _kernel(obs, 'layer_1') != 0
  assert not np.allclose(_kernel(obs, 'layer_1')[kept],
                         _kernel(graph, 'layer_1')[kept])


def test_a_conv_node_and_a_criterion_without_data_are_refused():
  graph = helpers.random_chain(SHAPES)
  with pytest.raises(TfpruneError, match='weight ranks no N:M pattern by '
                     'calibration data: use wanda or obs'):
    nm_calibrated.prune(graph, 'weight', NAMES, '2:4', _calibration())
  lenet = folder_graph.to_graph(
      weights.load(helpers.REPO / 'weights' / 'lenet5-mnist'))
  conv = next(n.name for n in lenet.weighted() if n.op == 'conv2d')
  with pytest.raises(TfpruneError, match=f'prunes Dense nodes only, and {conv} '
                     'is conv2d'):
    nm_calibrated.prune(lenet, 'wanda', [conv], '2:4',
                        np.zeros((4, 28, 28, 1), np.float32))


def test_sweep_rows_for_wanda_and_obs_patterns(tmp_path, mnist_slice_dir):
  # The first 512 training (256 drawn to calibrate) and 1,000 test images:
  # the rows' bookkeeping and the ranking's order need no more.
  config = sweep.SweepConfig(weights_dir=str(helpers.PREBUILT),
                             out_dir=str(tmp_path / 'out'),
                             methods=('weight', 'wanda', 'obs'), levels=(0,),
                             pattern='2:4', calibration_size=256,
                             data_dir=mnist_slice_dir)
  by_name = {r.method: r for r in sweep.run(config)}
  for name in ('weight-2:4', 'wanda-2:4', 'obs-2:4'):
    assert by_name[name].sparsity == 0.5 and by_name[name].k == 50
  # Data-aware ranking beats magnitude at 2:4 on the MLP.
  assert by_name['obs-2:4'].accuracy > by_name['weight-2:4'].accuracy


@pytest.mark.parametrize('method', ['wanda', 'obs'])
def test_public_api_takes_a_data_aware_pattern(method):
  # tfprune.prune(graph, method, pattern=..., calibration=...) is the graph
  # path the sweep takes: the same weights, every group keeping exactly N.
  graph, x = _graph(), _calibration()
  pruned = tfprune.prune(graph, method, layers=NAMES, pattern='2:4',
                         calibration=x)
  expected = nm_calibrated.prune(graph, method, NAMES, '2:4', x)
  for name in NAMES:
    np.testing.assert_array_equal(_kernel(pruned, name), _kernel(expected, name))
    kernel = _kernel(pruned, name)
    for start in range(0, kernel.shape[0], 4):
      np.testing.assert_array_equal((kernel[start:start + 4] != 0).sum(axis=0), 2)
  with pytest.raises(TfpruneError, match='pass calibration='):
    tfprune.prune(graph, method, layers=NAMES, pattern='2:4')
