"""Importing saved models: Keras 3 and tf_keras files, SavedModel, bad files.

Nested models are read from every format too (flattened, as in memory).

A model built back by `to_keras` saves as `.keras` and loads in a fresh
Python process that never imports tfprune, predicting the same.
"""

import numpy as np
import pytest

from tests import helpers
from tests import keras_zoo
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.keras_io import build
from tfprune.keras_io import importer

SAVED = [('keras3', '.keras'), ('keras3', '.h5'), ('tf_keras', '.keras'),
         ('tf_keras', '.h5'), ('tf_keras', 'savedmodel')]


def _save(model, framework, suffix, folder):
  if suffix == 'savedmodel':
    path = folder / 'model_savedmodel'
    model.save(path, save_format='tf')
  else:
    path = folder / f'model{suffix}'
    model.save(path)
  return path


# Every format for the small models; MobileNetV2 (nested in a Sequential) in
# each framework's .keras; nested models in each format. (Keras cannot write
# the twice-nested model as .h5: its two blocks' weights have the same
# names.) The flat MobileNetV2 is not saved too: a file's model is imported
# as the same model in memory is (test_keras_import, every zoo model), and
# mobilenet_in_sequential reads the same MobileNetV2 layers from .keras in
# both frameworks.
CASES = [(name, *saved) for name in ('mlp', 'residual') for saved in SAVED] + [
    ('mobilenet_in_sequential', framework, '.keras')
    for framework in keras_zoo.FRAMEWORKS] + [
    ('twice_nested', 'keras3', '.keras'), ('twice_nested', 'tf_keras', '.keras'),
    ('twice_nested', 'tf_keras', 'savedmodel'), ('backbone', 'keras3', '.h5'),
    ('backbone', 'tf_keras', '.h5'), ('two_in_two_out', 'keras3', '.keras'),
    ('sequential_in_sequential', 'keras3', '.h5'),
    ('sequential_in_sequential', 'tf_keras', '.h5')]


@pytest.mark.parametrize('name, framework, suffix', CASES)
def test_saved_models_import_exactly(name, framework, suffix, tmp_path):
  model = keras_zoo.build(name, framework)
  path = _save(model, framework, suffix, tmp_path)
  graph = importer.from_keras(path)
  assert graph.metadata['framework'] == framework
  assert graph.metadata['source'] == str(path)
  x = np.random.default_rng(0).standard_normal(
      (8, *graph.input_shape)).astype(np.float32)
  helpers.assert_same_up_to_rounding(evaluator.predict(graph, x),
                                     np.asarray(model(x, training=False)))


@pytest.mark.parametrize('content, suffix, match', [
    (None, '.keras', 'does not exist'),
    (b'not a zip', '.keras', 'not a readable .keras file'),
    (b'not hdf5', '.h5', 'not a readable .h5 file'),
    (b'{}', '.json', r'suffix .json: pass a .keras, .h5 or a SavedModel folder'),
])
def test_bad_model_files_refused_in_one_line(content, suffix, match, tmp_path):
  path = tmp_path / f'model{suffix}'
  if content is not None:
    path.write_bytes(content)
  with pytest.raises(TfpruneError, match=match) as info:
    importer.from_keras(path)
  assert '\n' not in str(info.value)


def test_folder_that_is_not_a_savedmodel_refused(tmp_path):
  with pytest.raises(TfpruneError, match='not a SavedModel'):
    importer.from_keras(tmp_path)


REBUILT = ('concat', 'twice_nested')


@pytest.fixture(scope='module')
def rebuilt_loads(tmp_path_factory):
  """`to_keras(from_keras(model))` saved as `.keras` for each model of
  `REBUILT` in each framework, loaded by plain Keras in a fresh interpreter
  (one per framework), with the graph's outputs on the same inputs."""
  folder = tmp_path_factory.mktemp('rebuilt')
  expected, loads = {}, {}
  for framework in keras_zoo.FRAMEWORKS:
    jobs = []
    for name in REBUILT:
      graph = keras_zoo.imported(name, framework)[1]
      path = folder / f'{name}-{framework}.keras'
      build.to_keras(graph).save(path)
      x = np.random.default_rng(2).standard_normal(
          (5, *graph.input_shape)).astype(np.float32)
      np.save(folder / f'{name}-{framework}.npy', x)
      jobs.append((name, path, folder / f'{name}-{framework}.npy'))
      expected[name, framework] = evaluator.predict(graph, x)
    loads[framework] = helpers.load_in_fresh_process(framework, jobs)
  return expected, loads


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('name', REBUILT)
def test_built_model_loads_without_tfprune(name, framework, rebuilt_loads):
  expected, loads = rebuilt_loads
  assert not loads[framework]['tfprune_imported']
  loaded = np.array(loads[framework]['models'][name]['outputs'], np.float32)
  helpers.assert_same_up_to_rounding(loaded,
                                     expected[name, framework])
