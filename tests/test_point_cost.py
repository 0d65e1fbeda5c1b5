"""A sweep point against one Keras predict, and the user's MobileNetV2 maker.

`point_cost.run` times the real sweep of a graph and the Keras model's
`predict` in alternating rounds and writes only timings; its ratio is the
two medians' (per point). `mobilenet_model` pads 28x28 images to 32x32 and
writes a model that imports exactly, with its data and a manifest.
"""

import json

import numpy as np
import pytest

from tests import helpers
from tests import keras_zoo
from tfprune.data import datasets
from tfprune.drivers import mobilenet_model
from tfprune.drivers import point_cost
from tfprune.errors import TfpruneError
from tfprune.keras_io import importer
from tfprune.keras_io import load


def _user_files(tmp_path, name, framework):
  keras_zoo.build(name, framework).save(tmp_path / 'model.keras')
  model = load.load_model(tmp_path / 'model.keras')
  rng = np.random.default_rng(0)
  x = rng.standard_normal((48, *model.input_shape[1:])).astype(np.float32)
  np.savez(tmp_path / 'data.npz', x_test=x,
           y_test=np.argmax(model.predict(x, verbose=0), 1))
  return str(tmp_path / 'model.keras'), str(tmp_path / 'data.npz')


@pytest.mark.parametrize('name,framework', [('residual', 'keras3'),
                                            ('concat', 'tf_keras')])
def test_point_cost_times_the_sweep_against_predict(name, framework, tmp_path):
  model_file, data = _user_files(tmp_path, name, framework)
  config = point_cost.PointCostConfig(
      out_dir=str(tmp_path / 'out'), model_file=model_file, data=data,
      levels=(30, 70), rounds=2)
  record = point_cost.run(config)
  saved = json.loads(point_cost.out_path(config).read_text())
  assert saved == json.loads(json.dumps(record))
  assert record['points'] == 4  # weight and unit at two levels
  assert len(record['sweep_seconds']) == len(record['predict_seconds']) == 2
  assert [len(s) for s in record['point_seconds']] == [4, 4]
  assert record['point_to_predict'] == pytest.approx(
      np.median(record['sweep_seconds']) / 4
      / np.median(record['predict_seconds']))
  # The labels are the model's own predictions: both score the dense model 1.
  assert record['keras_accuracy'] == record['evaluator_accuracy'] == 1.0
  assert len(record['machine']['load_average']) == 3
  assert 'x one predict' in point_cost.format_record(record)


@pytest.mark.parametrize('kwargs,message', [
    ({}, 'give either --weights_dir or --model_file'),
    ({'weights_dir': 'w', 'model_file': 'm.keras'}, 'not both'),
    ({'model_file': 'm.keras', 'rounds': 0}, 'rounds and predict_batch_size must'),
    ({'model_file': 'm.keras', 'methods': ('nope',)}, 'nope'),
    ({'model_file': 'm.keras', 'levels': (120,)}, '120'),
])
def test_bad_point_cost_config_is_refused(kwargs, message):
  with pytest.raises((TfpruneError, ValueError), match=message):
    point_cost.PointCostConfig(out_dir='out', **kwargs)


def test_point_cost_of_the_mlp_folder_runs_through_the_same_path(
    tmp_path, mnist_slice_dir):
  config = point_cost.PointCostConfig(
      out_dir=str(tmp_path / 'out'), weights_dir=str(helpers.PREBUILT),
      data_dir=mnist_slice_dir, levels=(50,), rounds=1)
  record = point_cost.run(config)
  assert record['points'] == 2 and record['input_shape'] == [784]
  # The flat MLP reads the images flattened, as Keras and the evaluator do.
  assert record['keras_accuracy'] == pytest.approx(
      record['evaluator_accuracy'], abs=1e-3)  # one image in 1,000 may flip
  assert record['evaluator_accuracy'] > 0.95


def test_padded_images_are_centred():
  images = np.ones((2, 28, 28, 1), np.float32)
  out = mobilenet_model.padded(datasets.Split(images, np.array([0, 1])))
  assert out.images.shape == (2, 32, 32, 1)
  assert out.images.sum() == images.sum()
  assert np.all(out.images[:, 2:30, 2:30] == 1)
  np.testing.assert_array_equal(out.labels, [0, 1])


def test_mobilenet_is_written_with_its_data_and_imports_exactly(tmp_path):
  data_dir = helpers.write_dataset(tmp_path / 'data', 'fashion_mnist', 'train', 48)
  helpers.write_dataset(data_dir, 'fashion_mnist', 't10k', 24, seed=1)
  config = mobilenet_model.MobileNetConfig(
      out_dir=str(tmp_path / 'out'), data_dir=str(data_dir), train_limit=32,
      epochs=1, batch_size=16)
  manifest, seconds = mobilenet_model.make(config, command='pytest')
  out = tmp_path / 'out'
  assert json.loads((out / mobilenet_model.MANIFEST_NAME).read_text()) == manifest
  model = load.load_model(out / mobilenet_model.MODEL_NAME)
  assert model.count_params() == manifest['params']
  assert mobilenet_model.weights_sha256(model) == manifest['weights_sha256']
  assert all(l.momentum == 0.9 for l in model.layers
             if type(l).__name__ == 'BatchNormalization')
  with np.load(out / mobilenet_model.DATA_NAME) as f:
    assert f['x_train'].shape == (32, 32, 32, 1)
    assert f['x_test'].shape == (24, 32, 32, 1)
    x, y = f['x_test'], f['y_test']
  assert model.input_shape == (None, 32, 32, 1)
  importer.from_keras(model, data=x)  # verified against Keras, or refused
  accuracy = np.mean(model.predict(x, batch_size=500, verbose=0).argmax(1) == y)
  assert manifest['keras_test_accuracy'] == accuracy
  assert manifest['graph_test_accuracy'] == pytest.approx(accuracy, abs=1 / 24)
  assert manifest['train_examples'] == 32
  # Seconds apart from the manifest, so a rebuild's manifest is the same bytes.
  assert 'train_seconds' not in manifest
  timing = json.loads((out / mobilenet_model.TIMING_NAME).read_text())
  assert timing == {'train_seconds': round(seconds, 1)} and seconds > 0


@pytest.mark.parametrize('kwargs,message', [
    ({'dataset': 'penguins'}, 'choose an image dataset'),
    ({'epochs': 0}, 'epochs must be at least 1'),
    ({'alpha': 0}, 'alpha must be positive'),
    ({'bn_momentum': 1.0}, r'bn_momentum must be in \[0, 1\)'),
])
def test_bad_mobilenet_config_is_refused(kwargs, message):
  with pytest.raises(TfpruneError, match=message):
    mobilenet_model.MobileNetConfig(out_dir='out', **kwargs)
