"""The graph evaluator on weight folders agrees with Keras; the prebuilt weights score >= 98.2%;
saved pruned files score as the sweep measured them."""

import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tests import keras_zoo
from tfprune.data import datasets
from tfprune.criteria import graph_pruning
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import network_graph
from tfprune.graph import weights
from tfprune.keras_compat import keras
from tfprune.keras_io import models
from tfprune.keras_io.build import to_keras
from tfprune.runtime import accuracy
from tfprune.transforms import biases
from tfprune.transforms import channel_pruning


@pytest.fixture(scope='module')
def keras_mlp():
  keras.utils.set_random_seed(3)
  model = models.build_mlp((28, 28, 1), 10)
  # Non-zero biases, so that the bias path is exercised too.
  for layer in models.dense_layers(model):
    layer.bias.assign(np.random.default_rng(0).normal(
        0, 0.1, layer.bias.shape).astype(np.float32))
  return model


def _folder_graph(model, tmp_path):
  """The graph of the weight folder `model` is saved as (its dense chain)."""
  weights.save(tmp_path / 'w', models.to_network(model))
  return weights.load_graph(tmp_path / 'w')


@pytest.mark.parametrize('batch_size', [10_000, 7])
def test_folder_graph_logits_match_the_keras_model(keras_mlp, batch_size, tmp_path):
  images = np.random.default_rng(1).random((50, 28, 28, 1), dtype=np.float32)
  graph = _folder_graph(keras_mlp, tmp_path)
  ours = evaluator.predict(graph, accuracy.as_input(graph, images),
                           batch_size=batch_size)
  theirs = keras_mlp(images).numpy()
  helpers.assert_same_up_to_rounding(tf.nn.softmax(ours).numpy(), theirs)
  np.testing.assert_array_equal(ours.argmax(1), theirs.argmax(1))


def test_dropped_biases_match_keras_with_zero_biases(keras_mlp, tmp_path):
  images = np.random.default_rng(2).random((30, 28, 28, 1), dtype=np.float32)
  graph = biases.drop_biases(_folder_graph(keras_mlp, tmp_path))
  zero = keras.models.clone_model(keras_mlp)
  zero.set_weights(keras_mlp.get_weights())
  for layer in models.dense_layers(zero):
    layer.bias.assign(np.zeros(layer.bias.shape, np.float32))
  ours = evaluator.predict(graph, accuracy.as_input(graph, images))
  helpers.assert_same_up_to_rounding(tf.nn.softmax(ours).numpy(),
                                     zero(images).numpy())


def test_accuracy_counts_argmax_hits():
  kernel = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
  graph = network_graph.layers_graph([kernel], [None])
  images = np.random.default_rng(0).random((9, 4), dtype=np.float32)
  predicted = (images @ kernel).argmax(1)  # the oracle, in numpy
  labels = predicted.copy()
  labels[:3] = (labels[:3] + 1) % 3
  assert accuracy.accuracy(graph, images, labels) == 6 / 9


def test_prebuilt_weights_score_at_least_98_2_percent(prebuilt, mnist_test):
  acc = accuracy.accuracy(prebuilt.graph, mnist_test.images, mnist_test.labels)
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
  ours = accuracy.accuracy(prebuilt.graph, images, labels)
  assert ours == pytest.approx(keras_acc, abs=1e-4)


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('method', ['weight', 'unit'])
def test_pruned_folder_graph_evaluates_like_its_keras_model(
    prebuilt, mnist_test, method, framework):
  """At 90% (sparse enough for CSR kernels) the evaluator predicts like Keras."""
  graph = prebuilt.graph
  pruned = channel_pruning.prune_graph(graph, method, 90,
                                       graph_pruning.prunable(graph))
  images = accuracy.as_input(graph, mnist_test.images[:500])
  model = to_keras(pruned, framework)
  np.testing.assert_array_equal(evaluator.predict(pruned, images).argmax(1),
                                np.asarray(model(images)).argmax(1))


def test_input_size_mismatch_names_both_shapes():
  graph = network_graph.layers_graph([np.ones((12, 3), np.float32)], [None])
  with pytest.raises(TfpruneError, match=r'takes inputs of shape \(12,\) but '
                     r'the images have shape \(28, 28, 1\)'):
    accuracy.accuracy(graph, np.zeros((2, 28, 28, 1)), [0, 1])


@pytest.mark.parametrize('method', ['weight', 'unit'])
def test_graph_exports_score_as_the_sweep_measured_them(tmp_path, method):
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


def test_an_old_dense_export_scores_like_its_graph_file(prebuilt, mnist_slice_dir,
                                                        tmp_path):
  """One evaluation path: an old `.npz` export and the graph file of the same
  pruned network score alike, at the accuracy numpy computes from the arrays."""
  from tfprune.criteria import pruning  # pylint: disable=import-outside-toplevel
  from tfprune.drivers import scoring  # pylint: disable=import-outside-toplevel
  from tfprune.graph import io as graph_io  # pylint: disable=import-outside-toplevel
  from tfprune.runtime import export  # pylint: disable=import-outside-toplevel
  from tfprune.transforms import graph_compaction  # pylint: disable=import-outside-toplevel
  net = prebuilt.network
  pruned = net.masked(pruning.network_masks(net, 'weight', 90, [0, 1, 2, 3]))
  old = export.save(tmp_path / 'old.npz', pruned)
  # What the sweep saves of a pruned graph: compacted (dead units removed).
  new = graph_io.save(graph_compaction.compact_zeros(
      network_graph.to_graph(pruned)), tmp_path / 'new.npz')
  old_score = scoring.score(old, 'mnist', mnist_slice_dir)
  new_score = scoring.score(new, 'mnist', mnist_slice_dir)
  test = datasets.load('mnist', 'test', mnist_slice_dir)
  x = test.images.reshape(len(test.images), -1)
  for i, (k, b) in enumerate(zip(pruned.kernels, pruned.biases)):
    x = x @ k + b
    x = np.maximum(x, 0) if i < pruned.num_layers - 1 else x
  assert old_score.accuracy == new_score.accuracy == np.mean(
      x.argmax(1) == test.labels)
  assert (old_score.nonzero_params, old_score.flops, old_score.units) == (
      new_score.nonzero_params, new_score.flops, new_score.units)
  # Compaction only drops units whose weights are all zero or never read.
  assert old_score.nonzero_params <= sum(
      int(np.count_nonzero(a)) for a in pruned.kernels + pruned.biases)
