"""The public API end to end: weight folders and Keras models as graphs, and
a Keras 3 model fine-tuned with TF-MOT through its tf_keras twin."""

import numpy as np
import pytest

import tfprune
from tests import helpers
from tests import keras_zoo
from tfprune.data import datasets as data
from tfprune.errors import TfpruneError

# The manifests' test accuracies of the committed weight folders.
FOLDERS = [('mlp-mnist', 'mnist', 0.9866), ('lenet5-mnist', 'mnist', 0.9927),
           ('fashion_cnn-fashion_mnist', 'fashion_mnist', 0.9279)]


@pytest.mark.parametrize('folder, dataset, accuracy', FOLDERS)
def test_weight_folders_load_as_graphs(folder, dataset, accuracy, data_dir):
  graph = tfprune.load(helpers.REPO / 'weights' / folder)
  split = data.load(dataset, 'test', data_dir)
  x = split.images.reshape(len(split), *graph.input_shape)
  assert tfprune.evaluate(graph, x, split.labels) == pytest.approx(accuracy, abs=1e-9)
  # Built back as Keras, the network scores the same.
  model = tfprune.to_keras(graph, 'keras3')
  keras_accuracy = np.mean(np.argmax(model.predict(x, verbose=0), 1) == split.labels)
  assert keras_accuracy == pytest.approx(accuracy, abs=1e-9)


def test_api_prune_save_load(tmp_path):
  graph = tfprune.from_keras(keras_zoo.build('residual', 'keras3'))
  pruned = tfprune.prune(graph, 'weight', 70)
  path = tfprune.save(pruned, tmp_path / 'p.npz')
  back = tfprune.load(path)
  x = np.random.default_rng(0).standard_normal((6, *graph.input_shape)).astype(np.float32)
  np.testing.assert_array_equal(tfprune.predict(back, x), tfprune.predict(pruned, x))
  assert not np.allclose(tfprune.predict(pruned, x), tfprune.predict(graph, x))
  with pytest.raises(TfpruneError, match='not a graph .npz, a weight folder'):
    tfprune.load(tmp_path / 'x.txt')
  with pytest.raises(TfpruneError, match="unknown pruning method 'nope': choose one of"):
    tfprune.prune(graph, 'nope', 50)
  with pytest.raises(TfpruneError, match='k must be in'):
    tfprune.prune(graph, 'weight', 120)


@pytest.mark.parametrize('model', ['residual', 'concat', 'mobilenet_v2'])
def test_api_compact_removes_the_pruned_channels(model):
  graph = tfprune.from_keras(keras_zoo.build(model, 'keras3'))
  pruned = tfprune.prune(graph, 'unit', 50)
  small = tfprune.compact(pruned)
  x = np.random.default_rng(1).standard_normal((4, *graph.input_shape)).astype(np.float32)
  helpers.assert_same_up_to_rounding(tfprune.predict(small, x),
                                     tfprune.predict(pruned, x))
  params = lambda g: sum(a.size for n in g.nodes for a in n.params.values())
  assert params(small) < params(pruned) == params(graph)
  assert tfprune.compact(graph) is graph  # nothing pruned, nothing removed


def test_keras3_model_fine_tuned_with_tfmot_through_tf_keras():
  import tensorflow_model_optimization as tfmot  # pylint: disable=import-outside-toplevel
  model3 = keras_zoo.build('cnn', 'keras3')
  graph = tfprune.from_keras(model3)
  twin = tfprune.to_keras(graph, 'tf_keras')
  names = [n.name for n in graph.weighted()][:-1]
  schedule = tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=0, frequency=1)
  prune = tfmot.sparsity.keras.prune_low_magnitude
  from tfprune.keras_compat import keras  # pylint: disable=import-outside-toplevel
  wrapped = keras.models.clone_model(twin, clone_function=lambda layer: prune(
      layer, pruning_schedule=schedule) if layer.name in names else layer)
  # clone_model makes new weights: copy the twin's into the (wrapped) layers.
  for layer in wrapped.layers:
    source = twin.get_layer(getattr(layer, 'layer', layer).name)
    (getattr(layer, 'layer', layer)).set_weights(source.get_weights())
  rng = np.random.default_rng(0)
  x = rng.standard_normal((64, *graph.input_shape)).astype(np.float32)
  y = rng.integers(0, 4, 64)
  wrapped.compile(optimizer='adam', loss='sparse_categorical_crossentropy')
  wrapped.fit(x, y, epochs=1, batch_size=16, verbose=0,
              callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
  stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
  tuned = tfprune.from_keras(stripped)
  for name in names:
    kernel = tuned.node(name).params['kernel']
    assert kernel.size - np.count_nonzero(kernel) == round(kernel.size * 0.5)
  back = tfprune.to_keras(tuned, 'keras3')
  assert type(back).__module__.startswith('keras.')
  helpers.assert_same_up_to_rounding(np.asarray(back(x, training=False)),
                                     np.asarray(stripped(x, training=False)))


@pytest.mark.parametrize('folder', [f for f, _, _ in FOLDERS])
def test_folder_graph_reads_back_as_the_stored_layers(folder):
  from tfprune.graph import folder_layers  # pylint: disable=import-outside-toplevel
  from tfprune.graph import weights  # pylint: disable=import-outside-toplevel
  path = helpers.REPO / 'weights' / folder
  loaded = weights.load(path)
  stored = folder_layers.read(loaded.graph)
  manifest = loaded.manifest['layers']
  assert [l.spec and l.spec.to_json() for l in stored] == [
      e.get('spec') for e in manifest]
  for i, layer in enumerate(stored, start=1):
    np.testing.assert_array_equal(layer.kernel, np.load(path / f'weight-{i}.npy'))
    np.testing.assert_array_equal(layer.bias, np.load(path / f'bias-{i}.npy'))
    if layer.norm is not None:
      np.testing.assert_array_equal(layer.norm,
                                    np.load(path / f'batchnorm-{i}.npy'))


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_relu_before_batch_norm_has_no_folder_form(framework):
  from tfprune.graph import folder_layers  # pylint: disable=import-outside-toplevel
  graph = tfprune.from_keras(keras_zoo.build('conv_relu_bn', framework))
  with pytest.raises(TfpruneError, match=r'\(batch_norm\) has no place in a '
                     'weight folder: it does not continue one layer'):
    folder_layers.read(graph)
