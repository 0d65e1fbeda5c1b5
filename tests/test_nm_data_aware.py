"""N:M patterns ranked by Wanda and OBS: exactly N survivors in every group of M."""

import numpy as np
import pytest

from tests import helpers
from tfprune.criteria import patterns
from tfprune.criteria import reconstruction
from tfprune.data import datasets
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError

SHAPES = ((16, 10), (10, 8), (8, 3))
PRUNERS = {'wanda': reconstruction.prune_wanda, 'obs': reconstruction.prune_obs}


def _calibration(n=96, seed=3):
  return np.random.default_rng(seed).random((n, SHAPES[0][0])).astype(np.float32)


@pytest.mark.parametrize('method', sorted(PRUNERS))
@pytest.mark.parametrize('text', ['2:4', '1:4', '3:8', '4:4'])
def test_every_group_keeps_exactly_n(method, text):
  pattern = patterns.parse(text)
  network = helpers.random_network(SHAPES)
  pruned = PRUNERS[method](network, pattern.level, [0, 1], _calibration(),
                           pattern=pattern)
  for i in (0, 1):
    kernel = pruned.kernels[i]
    for start in range(0, kernel.shape[0], pattern.m):
      group = kernel[start:start + pattern.m] != 0
      expected = min(pattern.n, len(group))
      np.testing.assert_array_equal(group.sum(axis=0), expected)
  np.testing.assert_array_equal(pruned.kernels[2], network.kernels[2])


def test_obs_refits_the_kept_weights_and_wanda_does_not():
  pattern = patterns.parse('2:4')
  network = helpers.random_network(SHAPES)
  wanda = reconstruction.prune_wanda(network, 50, [0], _calibration(),
                                     pattern=pattern)
  kept = wanda.kernels[0] != 0
  np.testing.assert_array_equal(wanda.kernels[0][kept], network.kernels[0][kept])
  obs = reconstruction.prune_obs(network, 50, [0], _calibration(), pattern=pattern)
  assert not np.allclose(obs.kernels[0][obs.kernels[0] != 0],
                         network.kernels[0][obs.kernels[0] != 0])


def test_sweep_rows_for_wanda_and_obs_patterns(prebuilt, mnist_slice_dir):
  # The first 512 training (256 drawn to calibrate) and 1,000 test images:
  # the rows' bookkeeping and the ranking's order need no more.
  config = sweep.SweepConfig(weights_dir=str(helpers.PREBUILT), out_dir='unused',
                             methods=('weight', 'wanda', 'obs'), levels=(0,),
                             pattern='2:4', calibration_size=256,
                             data_dir=mnist_slice_dir)
  calibration = sweep.calibration(config)
  test = datasets.load('mnist', 'test', mnist_slice_dir)
  rows = sweep.sweep(config, prebuilt.network, test, calibration)
  by_name = {r.method: r for r in rows}
  for name in ('weight-2:4', 'wanda-2:4', 'obs-2:4'):
    assert by_name[name].sparsity == 0.5 and by_name[name].k == 50
  # Data-aware ranking beats magnitude at 2:4 on the MLP.
  assert by_name['obs-2:4'].accuracy > by_name['weight-2:4'].accuracy


def test_data_aware_pattern_on_a_graph_is_refused(tmp_path, data_dir):
  config = sweep.SweepConfig(
      weights_dir=str(helpers.REPO / 'weights' / 'lenet5-mnist'),
      out_dir=str(tmp_path / 'out'), methods=('weight', 'wanda'), levels=(0,),
      pattern='2:4', data_dir=data_dir)
  with pytest.raises(TfpruneError, match='--pattern with wanda runs on '
                     'dense-chain weight folders only') as info:
    sweep.run(config)
  assert not (tmp_path / 'out' / sweep.CSV_NAME).exists(), info
