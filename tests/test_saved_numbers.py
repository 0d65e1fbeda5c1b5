"""A sweep row describes the model the sweep saves: row == `evaluate.py` on the file.

For weight, unit (which removes channels: the saved files are compacted) and
obs, on a Keras CNN (both Keras frameworks) and on the MLP and LeNet-5 weight
folders:
every column the row shares with `scoring.score` (what
`experiments/evaluate.py` prints) of the `--save_pruned` file is equal, and
the `--save_keras` file has the same non-zero parameters and multiply-adds.
"""

import numpy as np
import pytest

from tests import helpers
from tests import keras_zoo
from tfprune.drivers import scoring
from tfprune.drivers import sweep

METHODS = ('weight', 'unit', 'obs')


def _check_saved(rows, out_dir, method, data=None, dataset='mnist',
                 data_dir=None, test_size=None):
  assert rows
  for row in rows:
    stem = out_dir / 'pruned' / f'{method}-k{row.k:g}'
    saved = scoring.score(f'{stem}.npz', dataset, data_dir, data)
    assert (saved.accuracy, saved.nonzero_params, saved.flops, saved.size_bytes,
            saved.units) == (row.accuracy, row.nonzero_params, row.flops,
                             row.size_bytes, row.units)
    keras_file = scoring.score(f'{stem}.keras', dataset, data_dir, data)
    assert (keras_file.nonzero_params, keras_file.flops) == (row.nonzero_params,
                                                             row.flops)
    # Keras computes in another order than the evaluator: at most one test
    # example in a few hundred may flip.
    assert keras_file.accuracy == pytest.approx(row.accuracy,
                                                abs=2 / test_size + 1e-12)


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('method', METHODS)
def test_keras_cnn_rows_are_the_saved_files(tmp_path, method, framework):
  model = keras_zoo.build('cnn', framework)
  model.save(tmp_path / 'cnn.keras')
  rng = np.random.default_rng(0)
  data = tmp_path / 'data.npz'
  np.savez(data, x_test=rng.standard_normal((200, 12, 12, 3)).astype(np.float32),
           y_test=rng.integers(0, 4, 200),
           x_train=rng.standard_normal((64, 12, 12, 3)).astype(np.float32),
           y_train=rng.integers(0, 4, 64))
  rows = sweep.run(sweep.SweepConfig(
      weights_dir=None, model_file=str(tmp_path / 'cnn.keras'), data=str(data),
      out_dir=str(tmp_path / 'out'), methods=(method,), levels=(0, 60),
      calibration_size=64, save_pruned=True, save_keras=True))
  _check_saved(rows, tmp_path / 'out', method, data=str(data), test_size=200)
  if method == 'unit':  # channels are gone from the saved model
    assert rows[1].nonzero_params < rows[0].nonzero_params // 2


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('folder', ['mlp-mnist', 'lenet5-mnist'])
def test_weight_folder_rows_are_the_saved_files(tmp_path, folder, method,
                                                mnist_slice_dir):
  rows = sweep.run(sweep.SweepConfig(
      weights_dir=str(helpers.REPO / 'weights' / folder),
      out_dir=str(tmp_path / 'out'), data_dir=mnist_slice_dir,
      methods=(method,), levels=(50, 90), calibration_size=256,
      save_pruned=True, save_keras=True))
  _check_saved(rows, tmp_path / 'out', method, data_dir=mnist_slice_dir,
               test_size=1000)
  if method == 'unit':  # the saved network is the compacted one
    assert rows[1].nonzero_params < rows[0].nonzero_params
