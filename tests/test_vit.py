"""The committed ViT (weights/vit-fashion_mnist) and the script that made it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tfprune
from tests import helpers
from tfprune.data import datasets
from tfprune.drivers import vit_model
from tfprune.drivers import vit_study
from tfprune.errors import TfpruneError
from tfprune.graph import groups

VIT = helpers.REPO / 'weights' / 'vit-fashion_mnist'


@pytest.fixture(scope='module')
def vit():
  return tfprune.from_keras(VIT / vit_model.MODEL_NAME)


def test_manifest_accuracy_is_the_imported_graphs(vit, data_dir):
  manifest = json.loads((VIT / vit_model.MANIFEST_NAME).read_text())
  test = datasets.load('fashion_mnist', 'test', data_dir)
  assert tfprune.evaluate(vit, test.images, test.labels) == manifest[
      'keras_test_accuracy']
  assert vit.num_params == manifest['params']
  assert 'seconds' not in json.dumps(manifest)


def test_unit_50_halves_every_blocks_heads_and_mlp(vit):
  config = json.loads((VIT / vit_model.MANIFEST_NAME).read_text())['config']
  analysis = groups.analyse(vit)
  for b in range(1, config['blocks'] + 1):
    assert analysis.group(f'block{b}_attention_query').size == config['heads']
    assert analysis.group(f'block{b}_mlp1').size == config['mlp_dim']
  pruned = tfprune.prune(vit, 'unit', 50)
  compacted = tfprune.compact(pruned)
  model = tfprune.to_keras(compacted)
  for b in range(1, config['blocks'] + 1):
    layer = model.get_layer(f'block{b}_attention')
    assert layer.get_config()['num_heads'] == config['heads'] // 2
    assert model.get_layer(f'block{b}_mlp1').units == config['mlp_dim'] // 2
  x = np.random.default_rng(0).random((16, 28, 28, 1), np.float32)
  expected = tfprune.predict(pruned, x)
  # Fewer heads and units change the float32 summation order only.
  np.testing.assert_allclose(np.asarray(model(x)), expected, rtol=1e-5,
                             atol=1e-6)


def test_make_trains_and_writes_a_model_that_imports(tmp_path, data_dir):
  config = vit_model.ViTConfig(
      out_dir=str(tmp_path / 'vit'), data_dir=data_dir, patch=7, dim=8,
      heads=2, mlp_dim=8, blocks=1, train_limit=256, epochs=1)
  manifest, seconds = vit_model.make(config, 'python experiments/make_vit.py')
  assert seconds > 0
  written = json.loads((tmp_path / 'vit' / vit_model.MANIFEST_NAME).read_text())
  assert written == manifest and written['train_examples'] == 256
  graph = tfprune.from_keras(tmp_path / 'vit' / vit_model.MODEL_NAME)
  test = datasets.load('fashion_mnist', 'test', data_dir)
  assert tfprune.evaluate(graph, test.images, test.labels) == manifest[
      'keras_test_accuracy']


@pytest.mark.parametrize('change,match', [
    ({'patch': 5}, 'patch 5 does not divide'),
    ({'heads': 3}, 'heads 3 does not divide dim 64'),
    ({'epochs': 0}, 'epochs must be at least 1'),
    ({'learning_rate': 0.0}, 'learning_rate must be positive'),
])
def test_config_refuses_bad_values(change, match):
  with pytest.raises(TfpruneError, match=match):
    vit_model.ViTConfig(out_dir='x', **change)


STUDY = helpers.REPO / 'img' / 'vit-unit50'


def test_committed_pruned_vit_loads_without_tfprune_and_scores_its_result(
    tmp_path, data_dir):
  """The study's pruned.keras is plain Keras 3: a Python that never imports
  tfprune loads it and scores the test accuracy in results.json."""
  results = json.loads((STUDY / vit_study.RESULTS_NAME).read_text())
  test = datasets.load('fashion_mnist', 'test', data_dir)
  np.save(tmp_path / 'x.npy', test.images)
  np.save(tmp_path / 'y.npy', test.labels)
  # tfprune may be installed (CI installs it): the claim is that plain Keras
  # loads and runs the file without importing it.
  code = ('import sys, keras, numpy as np\n'
          f'm = keras.models.load_model({str(STUDY / vit_study.MODEL_NAME)!r})\n'
          'x, y = np.load("x.npy"), np.load("y.npy")\n'
          'accuracy = float(np.mean(m.predict(x, batch_size=500, verbose=0)'
          '.argmax(-1) == y))\n'
          'assert not [m for m in sys.modules if m.startswith("tfprune")]\n'
          'print(accuracy)\n')
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  out = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, check=True)
  assert float(out.stdout.split()[-1]) == results['pruned_test_accuracy']
  heads = [layer['heads'] for layer in results['heads']['pruned']]
  assert heads == [h // 2 for h in
                   (layer['heads'] for layer in results['heads']['dense'])]


@pytest.mark.parametrize('change,match', [
    ({'teacher_weight': 1.5}, r'teacher_weight must be in \[0, 1\], got 1.5'),
    ({'k': 100.0}, r'k must be in \(0, 100\), got 100.0'),
    ({'learning_rates': ()}, 'learning_rates must be positive'),
])
def test_study_config_refuses_bad_values(change, match):
  with pytest.raises(TfpruneError, match=match):
    vit_study.ViTStudyConfig(model_file='m.keras', out_dir='x', **change)
