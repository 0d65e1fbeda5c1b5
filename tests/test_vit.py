"""The committed ViT (weights/vit-fashion_mnist) and the script that made it."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tfprune
from tests import helpers
from tfprune import ziptags
from tfprune.data import datasets
from tfprune.drivers import vit_finetune
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
    ({'temperature': 0.0}, 'temperature must be positive, got 0.0'),
    ({'recipe': 'lottery'}, "unknown recipe 'lottery': choose one of one_shot, "
     'gradual'),
    ({'k': 100.0}, r'k must be in \(0, 100\), got 100.0'),
    ({'learning_rates': ()}, 'learning_rates must be positive'),
])
def test_study_config_refuses_bad_values(change, match):
  with pytest.raises(TfpruneError, match=match):
    vit_study.ViTStudyConfig(model_file='m.keras', out_dir='x', **change)


@pytest.fixture(scope='module')
def small_vit(tmp_path_factory):
  """A small untrained ViT on MNIST (2 blocks of 2 heads, MLP 32), saved."""
  path = tmp_path_factory.mktemp('small_vit') / 'vit.keras'
  vit_model.build(vit_model.ViTConfig(
      out_dir='unused', dataset='mnist', patch=7, dim=16, heads=2, mlp_dim=32,
      blocks=2)).save(path)
  return path


@pytest.mark.parametrize('recipe,temperature', [('one_shot', 1.0),
                                                ('gradual', 3.0)])
def test_study_writes_the_half_vit_it_scores(small_vit, mnist_slice_dir,
                                             tmp_path, recipe, temperature):
  """Both recipes, the real path on 384 training images: the saved model has
  one head of two and 16 of 32 MLP units per block, is smaller, records the
  data it was made on, and plain Keras scores it as results.json says."""
  config = vit_study.ViTStudyConfig(
      model_file=str(small_vit), out_dir=str(tmp_path / 'out'),
      dataset='mnist', data_dir=mnist_slice_dir, recipe=recipe,
      temperature=temperature, learning_rates=(1e-3, 3e-3),
      validation_size=128, calibration_size=0, timing_batch=8, timing_runs=1)
  results, timing = vit_study.run(config)
  out = tmp_path / 'out'
  assert json.loads((out / vit_study.RESULTS_NAME).read_text()) == json.loads(
      json.dumps(results))
  assert json.loads((out / vit_study.TIMING_NAME).read_text()) == timing
  assert results['config']['recipe'] == recipe
  assert 'seconds' not in json.dumps(results)
  validation = results['validation_accuracy']
  assert validation[str(results['chosen_learning_rate'])] == max(
      validation.values())
  assert [h['heads'] for h in results['heads']['pruned']] == [1, 1]
  assert results['mlp_units'] == {'dense': [32, 32], 'pruned': [16, 16]}
  saved = out / vit_study.MODEL_NAME
  assert results['pruned_bytes'] == saved.stat().st_size
  assert results['pruned_bytes'] < results['dense_bytes']
  assert ziptags.read(saved) == {'data': 'mnist', 'input_shape': [28, 28, 1],
                                 'value_range': [0.0, 1.0]}
  test = datasets.load('mnist', 'test', mnist_slice_dir)
  np.save(tmp_path / 'x.npy', test.images)
  fresh = helpers.load_in_fresh_process('keras3', [('vit', saved,
                                                    tmp_path / 'x.npy')])
  assert not fresh['tfprune_imported']
  model = fresh['models']['vit']
  assert model['params'] == results['pruned_params'] < results['dense_params']
  assert np.mean(np.argmax(model['outputs'], 1) == test.labels) == results[
      'pruned_test_accuracy']


def test_distillation_loss_is_hintons(small_vit):
  """T² · CE of the tempered softmaxes plus the labels' CE, on the logits
  under the softmax (at T = 1, the CE of the mixed targets)."""
  model = keras.models.load_model(small_vit)
  twin = vit_finetune.logits_twin(model)
  x = np.random.default_rng(0).random((4, 28, 28, 1), np.float32)
  logits = np.asarray(twin(x))
  # The twin's softmax is the model: float32 rounding of a softmax only.
  np.testing.assert_allclose(np.asarray(keras.ops.softmax(logits)),
                             np.asarray(model(x)), rtol=1e-5, atol=1e-7)
  teacher = np.random.default_rng(1).normal(size=logits.shape).astype(np.float32)
  onehot = np.eye(10, dtype=np.float32)[[3, 1, 4, 1]]
  targets = np.concatenate([teacher, onehot], axis=-1)

  def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))
  for temperature, weight in ((1.0, 1.0), (3.0, 0.7), (2.0, 0.0)):
    got = np.asarray(vit_finetune.distillation_loss(temperature, weight)(
        targets, logits))
    soft = np.exp(log_softmax(teacher / temperature))
    want = (weight * temperature ** 2 * -(soft * log_softmax(
        logits / temperature)).sum(-1)
            + (1 - weight) * -(onehot * log_softmax(logits)).sum(-1))
    # float32 sums of ten terms of order one.
    np.testing.assert_allclose(got, want, rtol=1e-5)
  mixed = 0.7 * np.exp(log_softmax(teacher)) + 0.3 * onehot
  np.testing.assert_allclose(
      np.asarray(vit_finetune.distillation_loss(1.0, 0.7)(targets, logits)),
      -(mixed * log_softmax(logits)).sum(-1), rtol=1e-5)


def test_distillation_refuses_a_model_without_a_softmax_head():
  inputs = keras.Input((4,))
  model = keras.Model(inputs, keras.layers.Dense(3, name='out')(inputs))
  with pytest.raises(TfpruneError, match="Dense 'out', not a Dense softmax"):
    vit_finetune.logits_twin(model)
