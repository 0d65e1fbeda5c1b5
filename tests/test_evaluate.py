"""The pure-tensor evaluator agrees with Keras; the prebuilt weights score >= 98.2%."""

import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tfprune.criteria import pruning
from tfprune.errors import TfpruneError
from tfprune.graph.network import Network
from tfprune.keras_compat import keras
from tfprune.keras_io import models
from tfprune.runtime import evaluate


@pytest.fixture(scope='module')
def keras_mlp():
  keras.utils.set_random_seed(3)
  model = models.build_mlp((28, 28, 1), 10)
  # Non-zero biases, so that the bias path is exercised too.
  for layer in models.dense_layers(model):
    layer.bias.assign(np.random.default_rng(0).normal(
        0, 0.1, layer.bias.shape).astype(np.float32))
  return model


@pytest.mark.parametrize('batch_size', [10_000, 7])
def test_logits_match_the_keras_model(keras_mlp, batch_size):
  images = np.random.default_rng(1).random((50, 28, 28, 1), dtype=np.float32)
  net = models.to_network(keras_mlp)
  ours = evaluate.logits(net, images, batch_size=batch_size)
  theirs = keras_mlp(images).numpy()
  helpers.assert_same_up_to_rounding(tf.nn.softmax(ours).numpy(), theirs)
  np.testing.assert_array_equal(ours.argmax(1), theirs.argmax(1))


def test_without_biases_matches_keras_with_zero_biases(keras_mlp):
  images = np.random.default_rng(2).random((30, 28, 28, 1), dtype=np.float32)
  net = models.to_network(keras_mlp)
  zero = models.build_mlp((28, 28, 1), 10)
  models.load_network(zero, Network(net.kernels,
                                    tuple(np.zeros_like(b) for b in net.biases)))
  ours = evaluate.logits(net, images, use_biases=False)
  helpers.assert_same_up_to_rounding(tf.nn.softmax(ours).numpy(),
                                     zero(images).numpy())


def test_accuracy_counts_argmax_hits():
  net = helpers.random_network(((4, 3),))
  images = np.random.default_rng(0).random((9, 4), dtype=np.float32)
  predicted = evaluate.logits(net, images).argmax(1)
  labels = predicted.copy()
  labels[:3] = (labels[:3] + 1) % 3
  assert evaluate.accuracy(net, images, labels, batch_size=4) == 6 / 9


def test_prebuilt_weights_score_at_least_98_2_percent(prebuilt, mnist_test):
  acc = evaluate.accuracy(prebuilt.network, mnist_test.images, mnist_test.labels)
  assert acc >= 0.982
  assert acc == pytest.approx(prebuilt.manifest['test_accuracy'], abs=1e-6)


def test_prebuilt_weights_evaluate_like_keras(prebuilt, mnist_test):
  # The first 1,000 test images: the subject is the agreement with Keras (the
  # full set's accuracy is the test above); abs=1e-4 is below one image here,
  # so the two must agree exactly.
  images, labels = mnist_test.images[:1000], mnist_test.labels[:1000]
  model = models.load_network(models.build_mlp((28, 28, 1), 10), prebuilt.network)
  model.compile(loss='sparse_categorical_crossentropy', metrics=['accuracy'])
  _, keras_acc = model.evaluate(images, labels, batch_size=1000, verbose=0)
  ours = evaluate.accuracy(prebuilt.network, images, labels)
  assert ours == pytest.approx(keras_acc, abs=1e-4)


@pytest.mark.parametrize('method', sorted(pruning.PRUNERS))
def test_pruned_prebuilt_evaluates_like_keras(prebuilt, mnist_test, method):
  masks = pruning.network_masks(prebuilt.network, method, 90, [0, 1, 2, 3])
  pruned = prebuilt.network.masked(masks)
  model = models.load_network(models.build_mlp((28, 28, 1), 10), pruned)
  images = mnist_test.images[:500]
  np.testing.assert_array_equal(evaluate.logits(pruned, images).argmax(1),
                                model(images).numpy().argmax(1))


def test_input_size_mismatch_names_both_sizes():
  with pytest.raises(TfpruneError, match='takes 12 inputs but the images have 784'):
    evaluate.accuracy(helpers.random_network(), np.zeros((2, 28, 28, 1)), [0, 1])


@pytest.mark.parametrize('method', ['weight', 'unit'])
def test_graph_exports_score_as_the_sweep_measured_them(tmp_path, method):
  from tests import keras_zoo  # pylint: disable=import-outside-toplevel
  from tfprune.drivers import scoring  # pylint: disable=import-outside-toplevel
  from tfprune.drivers import sweep  # pylint: disable=import-outside-toplevel
  model = keras_zoo.build('cnn', 'keras3')
  model.save(tmp_path / 'cnn.keras')
  rng = np.random.default_rng(0)
  np.savez(tmp_path / 'data.npz',
           x_test=rng.standard_normal((200, 12, 12, 3)).astype(np.float32),
           y_test=rng.integers(0, 4, 200))
  rows = sweep.run(sweep.SweepConfig(
      weights_dir=None, model_file=str(tmp_path / 'cnn.keras'),
      data=str(tmp_path / 'data.npz'), out_dir=str(tmp_path / 'out'),
      methods=(method,), levels=(0, 60), save_pruned=True, save_keras=True))
  for row in rows:
    stem = tmp_path / 'out' / 'pruned' / f'{method}-k{row.k:g}'
    graph_score = scoring.score(f'{stem}.npz', data=str(tmp_path / 'data.npz'))
    assert graph_score.accuracy == row.accuracy
    assert graph_score.nonzero_params == row.nonzero_params
    assert graph_score.size_bytes == row.size_bytes
    keras_score = scoring.score(f'{stem}.keras', data=str(tmp_path / 'data.npz'))
    assert keras_score.accuracy == pytest.approx(row.accuracy, abs=1 / 200)
