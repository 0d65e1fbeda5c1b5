"""The engine comparison trains on the gradual study's batches: its TF-MOT run is the study's run."""

import numpy as np

from tests import helpers
from tfprune.drivers import engine_comparison
from tfprune.drivers import gradual_study


def test_tfmot_engine_retrains_the_gradual_study_run(tmp_path, mnist_slice_dir):
  study = gradual_study.run(gradual_study.GradualConfig(
      out_dir=str(tmp_path / 'study'), weights_dir=str(helpers.PREBUILT),
      data_dir=mnist_slice_dir, procedures=('gradual',), targets=(90,),
      epochs=2, train_limit=384, batch_size=128, learning_rate=1e-3,
      export_tflite=False), verbose=0)
  config = engine_comparison.EngineComparison(
      out_dir=str(tmp_path / 'engines'), weights_dir=str(helpers.PREBUILT),
      data_dir=mnist_slice_dir, targets=(90,), epochs=2, train_limit=384)
  order = engine_comparison.batch_order(config, 384)
  assert order.shape == (2, 384)
  for row in order:
    np.testing.assert_array_equal(np.sort(row), np.arange(384))
  assert not np.array_equal(order[0], order[1])  # a new order each epoch
  record = engine_comparison.train_run(config, 'tfmot', 90.0, order)
  (row,) = study.results
  # The same batches, weights, schedule and optimizer: the same model, so
  # the same test accuracy (1,000 images) and zeros.
  assert record['accuracy'] == row.accuracy
  assert [z for z, _ in record['layers'].values()] == [
      705600, 900000, 450000, 90000]
