"""Training: the MLP's exact size, a 1-epoch real run, and refused configs."""

import json

import numpy as np
import pytest

from tests import helpers
from tfprune.data import datasets
from tfprune.errors import TfpruneError
from tfprune.graph import weights
from tfprune.keras_io import models
from tfprune.training import training


def test_mlp_has_the_challenge_architecture():
  model = models.build_mlp((28, 28, 1), 10)
  shapes = [tuple(l.kernel.shape) for l in models.dense_layers(model)]
  assert shapes == list(helpers.MLP_SHAPES)
  # 784*1000+1000 + 1000*1000+1000 + 1000*500+500 + 500*200+200 + 200*10+10
  assert model.count_params() == 2_388_710


def test_one_epoch_on_real_mnist_writes_a_folder_that_evaluates(data_dir, tmp_path):
  config = training.TrainConfig(weights_dir=str(tmp_path / 'w'), epochs=1,
                                train_limit=2000, data_dir=data_dir)
  result = training.train(config, command='pytest', verbose=0)
  folder = weights.load(tmp_path / 'w')
  assert [k.shape for k in folder.network.kernels] == list(helpers.MLP_SHAPES)
  assert folder.manifest['training']['train_limit'] == 2000
  assert folder.manifest['train_examples'] == 2000
  assert folder.manifest['command'] == 'pytest'
  # Seconds apart from the manifest, so a re-run's manifest is the same bytes.
  assert not any('seconds' in key for key in folder.manifest)
  timing = json.loads((tmp_path / 'w' / weights.TIMING).read_text())
  assert timing == {'train_seconds': round(result.seconds, 1)}
  test = datasets.load('mnist', 'test', data_dir)
  # The oracle: numpy on the saved arrays, not the evaluator that wrote it.
  acc = float(np.mean(helpers.numpy_chain_logits(
      folder.network.kernels, folder.network.biases, test.images).argmax(1)
      == test.labels))
  assert acc == folder.manifest['test_accuracy'] == pytest.approx(
      result.evaluator_accuracy, abs=1e-6)
  assert acc == pytest.approx(result.keras_accuracy, abs=1e-3)
  assert acc > 0.8  # 2000 examples, one epoch: far above chance (0.1)


def test_existing_folder_is_refused_before_training(tmp_path):
  weights.save(tmp_path / 'w', helpers.random_network())
  before = (tmp_path / 'w' / 'weight-1.npy').read_bytes()
  config = training.TrainConfig(weights_dir=str(tmp_path / 'w'),
                                data_dir=str(tmp_path / 'no-data'))
  with pytest.raises(TfpruneError, match='already exists'):
    training.train(config)
  assert (tmp_path / 'w' / 'weight-1.npy').read_bytes() == before


@pytest.mark.parametrize('field,value,pattern', [
    ('epochs', 0, 'epochs must be at least 1, got 0'),
    ('batch_size', -4, 'batch_size must be at least 1'),
    ('learning_rate', 0.0, 'learning_rate must be positive'),
    ('dropout', 1.0, r'dropout must be in \[0, 1\)'),
    ('dataset', 'cifar10', "unknown dataset 'cifar10'"),
    ('model', 'vgg', "unknown model 'vgg': choose one of mlp"),
    ('train_limit', 0, 'train_limit must be at least 1'),
])
def test_bad_training_config_is_refused(field, value, pattern):
  with pytest.raises(TfpruneError, match=pattern):
    training.TrainConfig(weights_dir='x', **{field: value})


def test_keras_weights_round_trip_through_network():
  model = models.build_mlp((28, 28, 1), 10)
  net = helpers.random_network(helpers.MLP_SHAPES)
  models.load_network(model, net)
  back = models.to_network(model)
  for a, b in zip(back.kernels + back.biases, net.kernels + net.biases):
    np.testing.assert_array_equal(a, b)


def test_loading_weights_of_another_architecture_names_the_layer():
  with pytest.raises(TfpruneError, match='has 5 dense layers but the weights have 3'):
    models.load_network(models.build_mlp((28, 28, 1), 10), helpers.random_network())
