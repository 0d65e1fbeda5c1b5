"""The engines side by side: the comparison's TF-MOT run is the gradual study's run; TF-MOT and the callback on one tf_keras model."""

import numpy as np
import pytest

from tests import helpers
from tfprune.drivers import engine_comparison
from tfprune.drivers import gradual_graph
from tfprune.drivers import gradual_study
from tfprune.graph import io as graph_io
from tfprune.training import epoch_log


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


@pytest.mark.parametrize('suffix', ['.keras', '.h5'])
def test_both_engines_prune_one_tf_keras_mlp_exactly(tmp_path, suffix,
                                                    monkeypatch):
  """TF-MOT and the tfprune.keras callback side by side on the same tf_keras
  model file: the callback trains it as tf_keras, and both leave exactly
  90% zeros in each hidden kernel (600 weights: 540, in either engine's
  count)."""
  from tfprune.keras_compat import keras as tf_keras  # pylint: disable=g-import-not-at-top
  tf_keras.utils.set_random_seed(0)
  inputs = tf_keras.Input((20,))
  hidden = tf_keras.layers.Dense(30, activation='relu', name='h1')(inputs)
  hidden = tf_keras.layers.Dense(20, activation='relu', name='h2')(hidden)
  model = tf_keras.Model(inputs, tf_keras.layers.Dense(4, name='out')(hidden))
  model_file = tmp_path / f'mlp{suffix}'
  model.save(model_file)
  rng = np.random.default_rng(0)
  np.savez(tmp_path / 'data.npz',
           x_train=rng.standard_normal((64, 20)).astype(np.float32),
           y_train=rng.integers(0, 4, 64),
           x_test=rng.standard_normal((32, 20)).astype(np.float32),
           y_test=rng.integers(0, 4, 32))
  trained_as = []

  def keras_engine(*args, **kwargs):  # the callback's engine, observed
    trained_as.append(kwargs['framework'])
    return train(*args, **kwargs)
  train = gradual_graph.keras_study.train
  monkeypatch.setattr(gradual_graph.keras_study, 'train', keras_engine)
  for engine in gradual_study.ENGINES:
    config = gradual_study.GradualConfig(
        out_dir=str(tmp_path / engine), weights_dir=None,
        model_file=str(model_file), data=str(tmp_path / 'data.npz'),
        procedures=('gradual',), targets=(90,), epochs=2, batch_size=16,
        learning_rate=1e-3, export_tflite=False, engine=engine)
    study = gradual_study.run(config, command='pytest', verbose=0)
    (row,) = study.results
    assert row.layer_sparsity == '90.00/90.00', (engine, row)
    run_dir = tmp_path / engine / 'runs' / gradual_study.run_name(config.runs()[0])
    graph = graph_io.load(run_dir / gradual_study.GRAPH_NAME)
    assert graph.metadata['framework'] == 'tf_keras'
    for name in ('h1', 'h2'):
      kernel = graph.node(name).params['kernel']
      assert int(np.sum(kernel == 0)) == 540, (engine, name)
    assert int(np.sum(graph.node('out').params['kernel'] == 0)) == 0
    # The epoch log shows the steps trained (2 epochs of 4 batches).
    log = epoch_log.read(run_dir / epoch_log.LOG_NAME)
    assert [r['step'] for r in log] == ['4', '8'], (engine, log)
  assert trained_as == ['tf_keras']  # the keras engine trained tf_keras
