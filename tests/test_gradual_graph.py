"""The gradual study on graphs: a user's MobileNetV2 and residual model, LeNet-5.

One short epoch on synthetic `.npz` data (the registry CNN on 128 MNIST
examples, tested on 1,000): every pruned kernel, depthwise ones included,
reaches its target exactly; the handed-back model is of the user's framework
and computes what the pruned graph computes; units come back compacted too.
"""

import json
import pathlib

import numpy as np
import pytest

from tests import helpers
from tests import keras_zoo
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import folder_layers
from tfprune.graph import io as graph_io
from tfprune.graph import weights
from tfprune.keras_io import build
from tfprune.keras_io import load
from tfprune.drivers import gradual_study
from tfprune.training import schedules


def _user_files(tmp_path, name, framework, train=True):
  model = keras_zoo.build(name, framework)
  path = tmp_path / f'{name}.keras'
  model.save(path)
  rng = np.random.default_rng(0)
  shape, classes = tuple(model.input_shape[1:]), model.output_shape[-1]
  arrays = {'x_test': rng.standard_normal((32, *shape)).astype(np.float32),
            'y_test': rng.integers(0, classes, 32)}
  if train:
    arrays.update(x_train=rng.standard_normal((64, *shape)).astype(np.float32),
                  y_train=rng.integers(0, classes, 64))
  np.savez(tmp_path / f'{name}.npz', **arrays)
  return str(path), str(tmp_path / f'{name}.npz')


def _study(tmp_path, name, framework, granularity):
  model_file, data = _user_files(tmp_path, name, framework)
  # TF-MOT's engine (a Keras 3 model would default to tfprune.keras, tested
  # in test_keras3_pruning): the counts checked here are TF-MOT's.
  config = gradual_study.GradualConfig(
      out_dir=str(tmp_path / 'out'), weights_dir=None, model_file=model_file,
      data=data, procedures=('gradual',), granularity=granularity,
      targets=(50,), epochs=1, batch_size=16, learning_rate=1e-3,
      export_tflite=False, engine='tfmot')
  return config, gradual_study.run(config, command='pytest', verbose=0)


@pytest.fixture(scope='module')
def mobilenet(tmp_path_factory):
  return _study(tmp_path_factory.mktemp('mobilenet'), 'mobilenet_v2', 'keras3',
                'weight')


@pytest.fixture(scope='module')
def residual_units(tmp_path_factory):
  return _study(tmp_path_factory.mktemp('residual'), 'residual', 'tf_keras',
                'unit')


def _run_dir(config):
  return pathlib.Path(config.out_dir) / 'runs' / gradual_study.run_name(
      config.runs()[0])


def _x(graph, n=8):
  return np.random.default_rng(1).standard_normal(
      (n, *graph.input_shape)).astype(np.float32)


def test_every_kernel_of_mobilenet_reaches_the_target(mobilenet):
  config, study = mobilenet
  graph = graph_io.load(_run_dir(config) / gradual_study.GRAPH_NAME)
  pruned = json.loads((pathlib.Path(config.out_dir) /
                       gradual_study.CONFIG_NAME).read_text())['pruned_layers']
  ops = {graph.node(n).op for n in pruned}
  assert ops == {'conv2d', 'depthwise_conv2d'}
  assert pruned == [n.name for n in graph.weighted()][:-1]  # all but the output
  for name in pruned:
    kernel = graph.node(name).params['kernel']
    assert int(np.sum(kernel == 0)) == schedules.tfmot_pruned_count(kernel.size,
                                                                    0.5), name
  assert np.all(graph.node(graph.weighted()[-1].name).params['kernel'] != 0)
  (row,) = study.results
  assert row.layer_sparsity.split('/') == ['50.00'] * len(pruned)


def test_handed_back_model_is_keras3_and_computes_the_graph(mobilenet):
  config, study = mobilenet
  run_dir = _run_dir(config)
  graph = graph_io.load(run_dir / gradual_study.GRAPH_NAME)
  model = load.load_model(run_dir / gradual_study.KERAS_NAME)
  assert type(model).__module__.startswith('keras.')
  x = _x(graph)
  # Keras's kernels against the evaluator's through a whole trained graph:
  # 1e-4 of the outputs' scale.
  helpers.assert_same_up_to_rounding(model.predict(x, verbose=0),
                                     evaluator.predict(graph, x), rel=1e-4)
  assert study.results[0].accuracy == evaluator.Evaluator(graph).accuracy(
      *_test_split(config))


def _test_split(config):
  with np.load(config.data) as f:
    return f['x_test'], f['y_test']


def test_oneshot_runs_on_the_graph(mobilenet):
  config, study = mobilenet
  rows = helpers.read_csv(pathlib.Path(config.out_dir) / gradual_study.ONESHOT_NAME)
  assert [r['k'] for r in rows] == [f'{k}' for k in gradual_study.ONESHOT_LEVELS]
  assert rows[0]['method'] == 'weight'


def test_units_remove_whole_channels_and_compact(residual_units):
  config, study = residual_units
  run_dir = _run_dir(config)
  graph = graph_io.load(run_dir / gradual_study.GRAPH_NAME)
  compact = graph_io.load(run_dir / gradual_study.COMPACT_NAME)
  assert compact.num_params < graph.num_params
  for node in graph.weighted()[:-1]:
    kernel = graph.node(node.name).params['kernel']
    dead = ~np.any(kernel.reshape(-1, kernel.shape[-1]) != 0, axis=0)
    assert dead.sum() == kernel.shape[-1] // 2, node.name
    assert compact.node(node.name).params['kernel'].shape[-1] == (
        kernel.shape[-1] // 2)
  x = _x(graph)
  small = load.load_model(run_dir / gradual_study.COMPACT_KERAS_NAME)
  assert type(small).__module__.startswith('tf_keras')
  # As above, for the compacted tf_keras model: 1e-4 of the scale.
  helpers.assert_same_up_to_rounding(small.predict(x, verbose=0),
                                     evaluator.predict(graph, x), rel=1e-4)
  (row,) = study.results
  assert row.sparsity == pytest.approx(0.5)


def test_registry_cnn_prunes_its_conv_layers(tmp_path, mnist_slice_dir):
  # Evaluated on 1,000 test images: what is checked is the pruned kernels.
  config = gradual_study.GradualConfig(
      out_dir=str(tmp_path / 'out'), weights_dir=str(helpers.REPO / 'weights' /
                                                     'lenet5-mnist'),
      model='lenet5', data_dir=mnist_slice_dir, procedures=('gradual',),
      targets=(80,), epochs=1, batch_size=64, train_limit=128,
      export_tflite=False)
  gradual_study.run(config, verbose=0)
  folder = weights.load(_run_dir(config) / 'weights')
  stored = folder_layers.read(folder.graph)
  assert [layer.spec.kind for layer in stored][:2] == ['conv', 'conv']
  for kernel in [layer.kernel for layer in stored][:-1]:
    assert int(np.sum(kernel == 0)) == schedules.tfmot_pruned_count(kernel.size,
                                                                    0.8)
  graph = graph_io.load(_run_dir(config) / gradual_study.GRAPH_NAME)
  assert build.to_keras(graph).count_params() == graph.num_params


def test_data_without_a_training_split_is_refused(tmp_path):
  model_file, data = _user_files(tmp_path, 'cnn', 'tf_keras', train=False)
  config = gradual_study.GradualConfig(
      out_dir=str(tmp_path / 'out'), weights_dir=None, model_file=model_file,
      data=data, targets=(50,))
  with pytest.raises(TfpruneError, match='has no x_train/y_train to fine-tune on'):
    gradual_study.run(config, verbose=0)
  assert not (tmp_path / 'out').exists()
