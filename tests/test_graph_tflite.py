"""TFLite for CNN graphs: the gradual study's export and the sweep's `.keras` files.

A user's model with conv, batch-norm and depthwise layers (a MobileNet block
in miniature), fine-tuned for one short epoch by the gradual study with
`export_tflite`, writes `model.tflite`: its outputs are the handed-back Keras
model's and the pruned graph's, and its accuracy is the Keras accuracy. The
compacted `unit` file of `sweep --save_keras` (residual, concat, the block,
MobileNetV2's blocks in miniature) converts to TFLite and predicts what the
`.keras` model predicts, with the sweep row's accuracy.
"""

import pathlib

import numpy as np
import pytest

from tests import helpers
from tests import keras_zoo
from tfprune.drivers import gradual_study
from tfprune.drivers import sweep
from tfprune.graph import evaluator
from tfprune.graph import io as graph_io
from tfprune.keras_compat import keras_module
from tfprune.keras_io import load
from tfprune.training import tflite


def block(K):
  """Conv-BN-ReLU, depthwise-BN-ReLU6, 1x1 conv, pooled, dense: conv and depthwise."""
  i = K.Input((10, 10, 3))
  x = K.layers.Conv2D(8, 3, padding='same', use_bias=False)(i)
  x = K.layers.ReLU()(K.layers.BatchNormalization()(x))
  x = K.layers.DepthwiseConv2D(3, padding='same', use_bias=False)(x)
  x = K.layers.ReLU(6.0)(K.layers.BatchNormalization()(x))
  x = K.layers.Conv2D(6, 1, activation='relu')(x)
  x = K.layers.GlobalAveragePooling2D()(x)
  return K.Model(i, K.layers.Dense(3, activation='softmax')(x))


def _model(name: str, framework: str):
  if name == 'block':
    K = keras_module(framework)
    K.utils.set_random_seed(0)
    return keras_zoo.randomized(block(K))
  return keras_zoo.build(name, framework)


def _files(tmp_path, name, framework, train=False):
  """The model as a `.keras` file and an `.npz` labelled by its own predictions."""
  model = _model(name, framework)
  model.save(tmp_path / 'model.keras')
  rng = np.random.default_rng(0)
  shape = tuple(model.input_shape[1:])
  x = rng.standard_normal((96, *shape)).astype(np.float32)
  arrays = {'x_test': x, 'y_test': np.argmax(model.predict(x, verbose=0), 1)}
  if train:
    arrays['x_train'] = rng.standard_normal((64, *shape)).astype(np.float32)
    arrays['y_train'] = rng.integers(0, model.output_shape[-1], 64)
  np.savez(tmp_path / 'data.npz', **arrays)
  return str(tmp_path / 'model.keras'), str(tmp_path / 'data.npz'), x, model


@pytest.mark.parametrize('granularity,framework', [('weight', 'keras3'),
                                                   ('unit', 'tf_keras')])
def test_gradual_export_tflite_of_a_conv_depthwise_model(granularity, framework,
                                                         tmp_path):
  model_file, data, x, _ = _files(tmp_path, 'block', framework, train=True)
  config = gradual_study.GradualConfig(
      out_dir=str(tmp_path / 'out'), weights_dir=None, model_file=model_file,
      data=data, procedures=('gradual',), granularity=granularity,
      targets=(50,), epochs=1, batch_size=16, learning_rate=1e-3,
      export_tflite=True)
  study = gradual_study.run(config, verbose=0)
  run_dir = pathlib.Path(config.out_dir) / 'runs' / gradual_study.run_name(
      config.runs()[0])
  flatbuffer = (run_dir / 'model.tflite').read_bytes()
  (row,) = study.results
  assert row.tflite_bytes == len(flatbuffer)
  graph = graph_io.load(run_dir / gradual_study.GRAPH_NAME)
  ops = {graph.node(n).op for n in (n.name for n in graph.weighted()[:-1])}
  assert ops == {'conv2d', 'depthwise_conv2d'}
  depthwise = next(n for n in graph.weighted() if n.op == 'depthwise_conv2d')
  assert np.mean(depthwise.params['kernel'] == 0) == 0.5  # pruned, exported
  outputs = tflite.predict(flatbuffer, x)
  handed_back = load.load_model(run_dir / gradual_study.KERAS_NAME)
  # TFLite runs its own kernels (other sums, fused ops): 1e-4 of the
  # outputs' scale.
  helpers.assert_same_up_to_rounding(outputs,
                                     handed_back.predict(x, verbose=0), rel=1e-4)
  helpers.assert_same_up_to_rounding(outputs,
                                     evaluator.predict(graph, x), rel=1e-4)
  # Keras's metric is a float32 mean: compare the counts of hits.
  hits = {round(a * len(x)) for a in (row.tflite_accuracy, row.keras_accuracy,
                                      row.accuracy)}
  assert len(hits) == 1


# MobileNetV2 itself (37 s, 25 s of it converting its 156 layers) is covered
# by the zoo's `inverted_residual`: its compacted file has the same layer
# classes with the same configurations, and a residual Add coupling two
# projections, as MobileNetV2's blocks have.
@pytest.mark.parametrize('name,framework', [
    ('block', 'tf_keras'), ('block', 'keras3'), ('residual', 'keras3'),
    ('concat', 'tf_keras'), ('inverted_residual', 'tf_keras')])
def test_sweep_unit_keras_file_converts_to_tflite(name, framework, tmp_path):
  model_file, data, x, dense = _files(tmp_path, name, framework)
  (row,) = sweep.run(sweep.SweepConfig(
      weights_dir=None, model_file=model_file, data=data,
      out_dir=str(tmp_path / 'out'), methods=('unit',), levels=(50,),
      save_keras=True))
  small = load.load_model(tmp_path / 'out' / 'pruned' / 'unit-k50.keras')
  assert small.count_params() < dense.count_params()
  outputs = tflite.predict(tflite.convert(small), x)
  # TFLite's own kernels again: 1e-4 of the outputs' scale.
  helpers.assert_same_up_to_rounding(outputs,
                                     small.predict(x, verbose=0), rel=1e-4)
  labels = np.load(data)['y_test']
  assert f'{np.mean(outputs.argmax(1) == labels):.4f}' == f'{row.accuracy:.4f}'
