"""The structured ResNet-18 study end to end on tiny mock Fashion-MNIST.

The run holds out the last training images as a validation split, fine-tunes
the compacted model once per candidate rate and keeps the candidate of best
validation accuracy; every `_fit` call is recorded to check that no
validation image is ever trained on.
"""

import json
import pathlib

import numpy as np
import pytest

from tests import helpers
from tfprune import ziptags
from tfprune.data import datasets
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.keras_compat import keras
from tfprune.keras_io import build
from experiments.studies import structured_config
from experiments.studies import structured_resnet
from tfprune.graph import groups as groups_lib

K = 50
TRAIN, VALIDATION = 64, 16
RATES = (1e-3, 3e-2)
# Timed batch sizes: one latency entry each; 4 instead of the default 256
# times the same code on less data.
BATCH_SIZES = (1, 4)


@pytest.fixture(scope='module')
def study(tmp_path_factory):
  data = tmp_path_factory.mktemp('data')
  helpers.write_dataset(data, 'fashion_mnist', 'train', n=TRAIN)
  helpers.write_dataset(data, 'fashion_mnist', 't10k', n=32, seed=1)
  out = tmp_path_factory.mktemp('out') / 'structured'
  config = structured_resnet.StructuredConfig(
      out_dir=str(out), data_dir=str(data), width=0.125, k=K, train_limit=None,
      validation_size=VALIDATION, epochs=1, finetune_epochs=1,
      finetune_learning_rates=RATES, batch_size=32, batch_sizes=BATCH_SIZES,
      timing_runs=2, timing_rounds=1, timing_min_seconds=0.0)
  fitted = []  # (images, learning rate) of every training run
  fit = structured_resnet._fit  # pylint: disable=protected-access

  def recording_fit(model, train, config, epochs, learning_rate):
    fitted.append((train.images.copy(), learning_rate))
    return fit(model, train, config, epochs, learning_rate)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(structured_resnet, '_fit', recording_fit)
    result = structured_resnet.run(config, verbose=False)
  return config, result, fitted


def _split(config, name):
  return datasets.load('fashion_mnist', name, config.data_dir)


def test_every_group_keeps_half_its_channels(study):
  _, result, _ = study
  before = groups_lib.analyse(result.dense)
  after = {g.name: g.size for g in groups_lib.analyse(result.compacted).groups}
  pruned = [g for g in before.groups if not g.refused]
  assert len(pruned) == len(result.removed) > 10
  for group in pruned:
    assert len(result.removed[group.name]) == group.size // 2
    assert after[group.name] == structured_resnet.kept(group.size, K)
    assert after[group.name] == group.size - group.size // 2
  # Only the output layer's group (tied to the network output) is whole.
  assert [g.name for g in before.groups if g.refused] == ['dense']


def test_compacted_computes_the_masked_graph(study):
  _, result, _ = study
  x = helpers.random_images(result.dense.input_shape, n=8)
  masked = evaluator.predict(result.masked, x)
  helpers.assert_same_up_to_rounding(evaluator.predict(result.compacted, x),
                                     masked)
  keras_model = build.to_keras(result.compacted, 'tf_keras')
  helpers.assert_same_up_to_rounding(keras_model.predict(x, verbose=0),
                                     masked)


def test_files_are_written(study):
  config, result, _ = study
  out = pathlib.Path(config.out_dir)
  rows = helpers.read_csv(out / 'results.csv')
  candidates = [structured_config.candidate_name(r) for r in RATES]
  assert [r['model'] for r in rows] == ['dense', 'oneshot', *candidates]
  assert candidates == ['finetuned-lr0.001', 'finetuned-lr0.03']
  assert list(rows[0]) == list(structured_resnet.COLUMNS)
  assert rows == [{k: str(v) for k, v in row.items()} for row in result.rows]
  dense, oneshot, *tuned = rows
  assert [float(r['learning_rate']) for r in tuned] == list(RATES)
  for row in tuned:
    assert int(row['params']) == int(oneshot['params']) < int(dense['params'])
  assert int(oneshot['macs']) < int(dense['macs']) / 3
  for row in rows:  # the file: the model's bytes, then its provenance tag
    path = structured_resnet.model_path(out, row['model'])
    tag = ziptags.read(path)
    assert tag == {'data': 'fashion_mnist', 'input_shape': [28, 28, 1]}
    assert path.stat().st_size == int(row['keras_bytes']) + len(
        ziptags.comment(tag))
  saved = json.loads((out / 'config.json').read_text())
  assert saved['k'] == K and saved['validation_size'] == VALIDATION
  assert saved['finetune_learning_rates'] == list(RATES)
  timing = json.loads((out / 'timing.json').read_text())
  assert set(timing['latency_median']) == {'1', '4'}
  assert timing['compacted_model'] == result.chosen
  assert set(timing['seconds']) == {'dense_training', 'prune_and_compact',
                                    'finetuning_lr0.001', 'finetuning_lr0.03'}
  assert timing == json.loads(json.dumps(result.timing))
  assert not [p for p in out.parent.iterdir() if p.name.startswith('.')]


def test_the_chosen_rate_is_the_best_on_validation(study):
  _, result, _ = study
  tuned = [r for r in result.rows if r['learning_rate'] != '']
  best = max(r['validation_accuracy'] for r in tuned)
  first_best = next(r for r in tuned if r['validation_accuracy'] == best)
  assert [r['chosen'] for r in tuned] == [
      int(r is first_best) for r in tuned]
  assert result.chosen == first_best['model']
  assert [r['chosen'] for r in result.rows[:2]] == ['', '']


def test_validation_images_are_never_trained_on(study):
  config, _, fitted = study
  images = _split(config, 'train').images
  fit_part, validation = images[:TRAIN - VALIDATION], images[TRAIN - VALIDATION:]
  # The dense training, then one fine-tuning per rate, in order.
  assert [rate for _, rate in fitted] == [config.learning_rate, *RATES]
  held_out = {image.tobytes() for image in validation}
  for trained, _ in fitted:
    np.testing.assert_array_equal(trained, fit_part)
    assert not held_out & {image.tobytes() for image in trained}


def test_saved_candidates_score_their_rows(study):
  """Each candidate's file scores its row's validation and test accuracy."""
  config, result, _ = study
  validation = _split(config, 'train')
  validation = datasets.Split(validation.images[TRAIN - VALIDATION:],
                              validation.labels[TRAIN - VALIDATION:])
  test = _split(config, 'test')
  weights = []
  for row in result.rows:
    model = keras.models.load_model(
        structured_resnet.model_path(config.out_dir, row['model']))
    weights.append(model.get_weights())
    for split, column in ((validation, 'validation_accuracy'), (test, 'accuracy')):
      predicted = model.predict(split.images, verbose=0).argmax(axis=1)
      assert round(float(np.mean(predicted == split.labels)), 6) == row[column]
  # The candidates were fine-tuned from different rates: different weights.
  assert not all(np.array_equal(a, b) for a, b in zip(weights[2], weights[3]))


def test_choose_takes_the_first_of_equal_best():
  assert structured_config.choose([0.5, 0.75, 0.75, 0.25]) == 1
  assert structured_config.choose([0.9]) == 0


def test_validation_split_needs_training_images_left():
  split = datasets.Split(np.zeros((10, 28, 28, 1), np.float32),
                         np.arange(10))
  fit_part, validation = structured_config.split_validation(split, 3)
  assert fit_part.labels.tolist() == list(range(7))
  assert validation.labels.tolist() == [7, 8, 9]
  with pytest.raises(TfpruneError, match='validation_size 10 leaves no image '
                     'to fine-tune on of the 10 training images'):
    structured_config.split_validation(split, 10)


@pytest.mark.parametrize('change, message', [
    ({'k': 120}, 'k must be in [0, 100], got 120'),
    ({'importance': 'l3'}, 'importance must be one of unit, unit_l1, unit_bn, '
     'filter_l1, l2, l1, bn_gamma, got'),
    ({'finetune_epochs': -1}, 'finetune_epochs must be >= 0, got -1'),
    ({'dataset': 'penguins'}, 'needs images'),
    ({'validation_size': 0}, 'validation_size must be at least 1, got 0'),
    ({'train_limit': 100, 'validation_size': 100},
     'train_limit 100 leaves no image to fine-tune on'),
    ({'finetune_learning_rates': ()}, 'no fine-tuning learning rate given'),
    ({'finetune_learning_rates': (1e-3, -2e-3)},
     'learning rates must be positive, got 0.001 and 0.001,-0.002'),
    ({'finetune_learning_rates': (2e-3, 1e-3, 2e-3)},
     'finetune_learning_rates repeats 0.002: give each rate once'),
])
def test_config_is_validated(change, message):
  with pytest.raises(TfpruneError, match=message.replace('[', r'\[').replace(']', r'\]')):
    structured_resnet.StructuredConfig(out_dir='x', **change)


@pytest.mark.parametrize('former, name', sorted(
    structured_config.RENAMED_IMPORTANCES.items()))
def test_former_importance_names_are_read_as_the_registry_names(former, name):
  # Configs saved before the one registry (img/structured_resnet: 'l2') resume.
  config = structured_resnet.StructuredConfig(out_dir='x', importance=former)
  assert config.importance == name
  assert config == structured_resnet.StructuredConfig(out_dir='x',
                                                       importance=name)


def test_bad_rates_are_refused_in_one_line():
  with pytest.raises(TfpruneError, match='learning rates must be numbers, got '
                     '1e-3,fast: give --finetune_learning_rates=1e-3,2e-3,4e-3'):
    structured_config.parse_rates(['1e-3', 'fast'])


def test_a_dense_model_of_another_dataset_is_refused_unless_allowed(
    study, tmp_path):
  config, _, _ = study
  dense = structured_resnet.model_path(config.out_dir, 'dense')
  mnist = structured_resnet.StructuredConfig(
      out_dir=str(tmp_path / 'out'), dataset='mnist', dense_model=str(dense))
  with pytest.raises(TfpruneError, match=(
      r'dense.keras was made on fashion_mnist but this run gives it mnist: '
      r'pass the data it was made on \(--dataset=fashion_mnist without '
      r'--data\), or --allow_other_data')):
    structured_resnet._dense_model(mnist, None)  # pylint: disable=protected-access
  allowed = structured_resnet._dense_model(  # pylint: disable=protected-access
      structured_resnet.StructuredConfig(
          out_dir=str(tmp_path / 'out'), dataset='mnist', dense_model=str(dense),
          allow_other_data=True), None)
  assert allowed.count_params() > 0
