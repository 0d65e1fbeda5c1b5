"""ResNet-18 as a `Network`: evaluator, weight folders, counts, pruning, compaction.

Width 0.125 (stem 8 filters, stages 8/16/32/64) with random batch-norm
statistics, on 28x28x1 and 32x32x3 inputs.
"""

import dataclasses
import json

import numpy as np
import pytest

import tfprune
from tests import helpers
from tfprune.allocation import allocators
from tfprune.criteria import pruning
from tfprune.data import datasets
from tfprune.errors import TfpruneError
from tfprune.graph import layers as layers_lib
from tfprune.graph import evaluator
from tfprune.graph import network_graph
from tfprune.graph import weights
from tfprune.graph.evaluator import Evaluator
from tfprune.keras_compat import keras
from tfprune.keras_io import models
from tfprune.keras_io.importer import from_keras
from tfprune.runtime import accuracy
from tfprune.runtime import export
from tfprune.runtime import metrics
from experiments.studies import study_resnet
from tfprune.transforms import channel_pruning
from tfprune.transforms import compaction
from tfprune.graph import groups
from tfprune.transforms import silent_channels

SHAPES = [(28, 28, 1), (32, 32, 3)]
MNIST = SHAPES[0]


@pytest.fixture(scope='module')
def resnets():
  """shape -> (`helpers.resnet18(shape)`, its Network), each built once.

  The tests only read them, so `resnet` and `mnist_resnet` share the MNIST one.
  """
  built = {}

  def get(shape):
    if shape not in built:
      model = helpers.resnet18(shape)
      built[shape] = model, models.to_network(model)
    return built[shape]
  return get


@pytest.fixture(scope='module')
def imported(resnets):
  """shape -> `from_keras` of the shared ResNet-18, imported once (read only)."""
  graphs = {}

  def get(shape):
    if shape not in graphs:
      graphs[shape] = from_keras(resnets(shape)[0])
    return graphs[shape]
  return get


@pytest.fixture(scope='module', params=SHAPES, ids=['28x28x1', '32x32x3'])
def resnet(request, resnets):
  return (request.param, *resnets(request.param))


@pytest.fixture(scope='module')
def mnist_resnet(resnets):
  return resnets(MNIST)


@pytest.fixture(scope='module')
def mnist_keras():
  """A fresh MNIST ResNet-18 (width 0.125) and its linear-output twin, built once.

  Each test that uses them loads a whole network into the first
  (`models.load_network` sets every kernel, bias and batch norm), so no test
  sees another's weights; building and tracing them once instead of per test
  is the only difference.
  """
  model = models.build_resnet18(MNIST, 10, width=0.125)

  def clone(layer):
    config = layer.get_config()
    if layer is model.layers[-1]:
      config['activation'] = 'linear'
    return layer.__class__.from_config(config)

  return model, keras.models.clone_model(model, clone_function=clone)


def _keras_logits(mnist_keras, network, images):
  """`helpers.keras_logits` of `network` loaded into the shared MNIST model."""
  model, linear = mnist_keras
  models.load_network(model, network)
  linear.set_weights(model.get_weights())
  return linear.predict(images, verbose=0)


def test_evaluator_logits_match_keras(resnet):
  shape, model, network = resnet
  x = helpers.random_images(shape)
  want = helpers.keras_logits(model, x)
  graph = network_graph.to_graph(network)
  got = evaluator.predict(graph, x)
  assert np.abs(want).max() > 1  # the random statistics matter
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
  assert accuracy.accuracy(graph, x, want.argmax(axis=1)) == 1.0


def test_specs_describe_blocks_shortcuts_and_global_pool(mnist_resnet):
  _, network = mnist_resnet
  specs = network.specs
  assert network.num_layers == 21
  # Identity shortcut: stage 1 block 1 adds the stem's output.
  assert (specs[2].source, specs[2].residual, specs[2].relu) == (None, 1, True)
  # Projection shortcut (layer 7) reads the block input (layer 5), no ReLU.
  assert specs[6] == layers_lib.LayerSpec('conv', 2, 'same', norm_epsilon=1e-5,
                                          source=5, relu=False)
  assert (specs[7].source, specs[7].residual) == (6, 7)
  assert specs[20] == layers_lib.LayerSpec('dense', global_pool=True)


def test_weight_folder_round_trip(mnist_resnet, mnist_keras, tmp_path):
  model, network = mnist_resnet
  saved = weights.save(tmp_path / 'w', network, {'model': 'resnet18'})
  loaded = weights.load(tmp_path / 'w')
  assert loaded.sha256 == saved.sha256
  assert loaded.network.specs == network.specs
  assert loaded.network.input_shape == MNIST
  for a, b in zip(loaded.network.norms, network.norms):
    np.testing.assert_array_equal(a, b)
  manifest = json.loads((tmp_path / 'w' / weights.MANIFEST).read_text())
  assert manifest['layers'][6]['spec']['source'] == 5
  assert 'source' not in manifest['layers'][1]['spec']  # defaults left out
  x = helpers.random_images(MNIST, 8)
  np.testing.assert_array_equal(evaluator.predict(loaded.graph, x),
                                evaluator.predict(network_graph.to_graph(network), x))
  fresh = models.load_network(mnist_keras[0], loaded.network)
  helpers.assert_same_up_to_rounding(fresh.predict(x, verbose=0),
                                     model.predict(x, verbose=0))


@pytest.mark.parametrize('folder', ['lenet5-mnist', 'fashion_cnn-fashion_mnist',
                                    'mlp-mnist'])
def test_committed_weight_folders_load_and_resave_unchanged(folder, tmp_path):
  old = weights.load(helpers.REPO / 'weights' / folder)
  metadata = {k: v for k, v in old.manifest.items()
              if k not in ('format', 'layers', 'sha256', 'input_shape')}
  new = weights.save(tmp_path / 'w', old.network, metadata)
  assert new.manifest == old.manifest
  assert new.sha256 == old.sha256


@pytest.mark.parametrize('source,target,pattern', [
    (('resnet18', 0.125), ('resnet18', 0.25),
     r'layer 1 \(conv_stem\): model resnet18 expects a kernel of shape '
     r'\(3, 3, 1, 16\), the weights have \(3, 3, 1, 8\)'),
    (('lenet5', None), ('resnet18', 0.125),
     r'layer 1 \(conv_stem\): model resnet18 expects a kernel of shape'),
    (('resnet18', 0.125), ('lenet5', None),
     r'layer 1 \(conv_1\): model lenet5 expects a kernel of shape'),
    (('resnet18', 0.125), ('fashion_cnn', None), r'layer 1 \(conv_1\)'),
])
def test_weight_folder_of_another_architecture_names_the_layer(
    source, target, pattern, tmp_path):

  def build(name, width):
    kwargs = {} if width is None else {'width': width}
    return models.get(name)(MNIST, 10, **kwargs)

  weights.save(tmp_path / 'w', models.to_network(build(*source)))
  with pytest.raises(TfpruneError, match=pattern):
    models.load_network(build(*target), weights.load(tmp_path / 'w').network)


def test_rewired_weights_name_the_layer(mnist_resnet, mnist_keras):
  # Refused before any weight is set: the shared model stays as it was.
  _, network = mnist_resnet
  specs = list(network.specs)
  specs[4] = dataclasses.replace(specs[4], residual=1)  # not the block input
  rewired = dataclasses.replace(network, specs=tuple(specs))
  with pytest.raises(TfpruneError,
                     match=r'^layer 5 \(stage1_block2_conv2\): model resnet18 has '):
    models.load_network(mnist_keras[0], rewired)


def test_conv_without_bias_refuses_a_non_zero_bias(mnist_resnet, mnist_keras):
  # Refused at layer 1, before any weight is set.
  _, network = mnist_resnet
  biases = list(network.biases)
  biases[0] = biases[0] + 1
  with pytest.raises(TfpruneError, match=r'layer 1 \(conv_stem\): .*no bias'):
    models.load_network(mnist_keras[0],
                        dataclasses.replace(network, biases=tuple(biases)))


@pytest.mark.parametrize('layer,change,pattern', [
    (3, {'source': 5}, r'^layer 3: source 5 is not an earlier layer'),
    (3, {'residual': 3}, r'^layer 3: residual 3 is not an earlier layer'),
    (8, {'residual': 5}, r'^layer 8: its residual \(layer 5\) has shape '
     r'\(28, 28, 8\) but the layer computes \(14, 14, 16\)'),
    (7, {'source': 0}, r'^layer 7: conv kernel \(1, 1, 8, 16\) takes 8 '
     r'channels but its input has 1'),
    (21, {'global_pool': False}, r'^layer 21: dense kernel \(64, 10\) does not '
     r'fit its input of shape \(4, 4, 64\)'),
])
def test_bad_graph_names_the_layer(mnist_resnet, layer, change, pattern):
  _, network = mnist_resnet
  specs = list(network.specs)
  specs[layer - 1] = dataclasses.replace(specs[layer - 1], **change)
  with pytest.raises(TfpruneError, match=pattern):
    dataclasses.replace(network, specs=tuple(specs))


def test_bad_spec_values_are_refused():
  with pytest.raises(TfpruneError, match='source must be a layer number'):
    layers_lib.LayerSpec('conv', source=-1)
  with pytest.raises(TfpruneError, match='global_pool averages the input of a '
                     'dense layer'):
    layers_lib.LayerSpec('conv', global_pool=True)


# Kernel entries at width 0.125 with 10 classes, by hand (3x3 convs, 1x1
# shortcuts): stem 3*3*c*8; stage 1: 4 convs 3*3*8*8 = 2,304; stage 2:
# 3*3*8*16 + 3*3*16*16*3 + 8*16 = 8,192; stage 3: 3*3*16*32 + 3*3*32*32*3 +
# 16*32 = 32,768; stage 4: 3*3*32*64 + 3*3*64*64*3 + 32*64 = 131,072; dense
# 64*10 = 640. Filters (= batch-norm channels): 8 + 4*8 + 5*16 + 5*32 + 5*64
# = 600. Multiply-adds: kernel entries times output positions, stages at
# 1, 1/2, 1/4 and 1/8 of the input side (rounded up: 28 -> 14 -> 7 -> 4).
KERNELS = {MNIST: 72 + 2_304 + 8_192 + 32_768 + 131_072 + 640,
           (32, 32, 3): 216 + 2_304 + 8_192 + 32_768 + 131_072 + 640}
MACS = {MNIST: (72 + 2_304) * 784 + 8_192 * 196 + 32_768 * 49
               + 131_072 * 16 + 640,
        (32, 32, 3): (216 + 2_304) * 1_024 + 8_192 * 256 + 32_768 * 64
                     + 131_072 * 16 + 640}


def test_exact_counts(resnet):
  shape, model, network = resnet
  counts = metrics.total(metrics.layer_counts(network))
  kernels = sum(int(np.prod(l.kernel.shape)) for l in models.weight_layers(model))
  assert kernels == KERNELS[shape]
  # Batch norm folds into the convs: one bias per filter, none of its 4 rows.
  assert counts.params == KERNELS[shape] + 600 + 10
  assert counts.params == model.count_params() - 3 * 600
  assert counts.dense_macs == counts.effective_macs == MACS[shape]
  assert MACS[(32, 32, 3)] == 8_872_576 and MACS[MNIST] == 7_171_840
  # Network.num_params stores a zero bias for each bias-less conv.
  assert network.num_params == model.count_params() + 600


@pytest.mark.parametrize('method,k', [('weight', 0), ('weight', 33.3),
                                      ('weight', 90), ('unit', 50)])
def test_weight_level_pruning_exact_counts(mnist_resnet, mnist_keras, method, k):
  _, network = mnist_resnet
  layers = pruning.prunable_layers(network.num_layers)
  masks = pruning.network_masks(network, method, k, layers)
  pruned = network.masked(masks)
  for i, (before, after) in enumerate(zip(network.kernels, pruned.kernels)):
    units = before.shape[-1]
    if i not in layers:
      np.testing.assert_array_equal(before, after)
    elif method == 'weight':
      assert after.size - np.count_nonzero(after) == int(k * 10) * after.size // 1000
    else:
      dead = ~after.reshape(-1, units).any(axis=0)
      assert dead.sum() == int(k) * units // 100
  assert np.count_nonzero(network.kernels[0]) == network.kernels[0].size
  x = helpers.random_images(MNIST, 8)
  # ResNet-18: 20 convolutions and batch norms, each rounding in its own
  # order: 1e-4 of the outputs' scale.
  helpers.assert_same_up_to_rounding(
      evaluator.predict(network_graph.to_graph(pruned), x),
                                     _keras_logits(mnist_keras, pruned, x), rel=1e-4)


@pytest.mark.parametrize('k', [0, 0.01, 50, 90, 99])
def test_global_magnitude_prunes_exactly_k_of_all_kernels(mnist_resnet, k):
  _, network = mnist_resnet
  masks = allocators.global_masks(network.kernels, k)
  pruned = network.masked(masks)
  total = metrics.total(metrics.layer_counts(pruned))
  n = KERNELS[MNIST]
  assert sum(w.size for w in pruned.kernels) == n
  zeros = n - sum(int(np.count_nonzero(w)) for w in pruned.kernels)
  assert zeros == int(k * 100) * n // 10_000
  assert (total.effective_macs < total.dense_macs) == (k > 0)


def test_random_pruning_exact_per_layer(mnist_resnet):
  _, network = mnist_resnet
  layers = list(range(network.num_layers))
  masks = [pruning.random_mask(network.kernels[i], 40, seed=3 + i)
           for i in layers]
  assert [int((~m).sum()) for m in masks] == [
      2 * k.size // 5 for k in network.kernels]
  again = [pruning.random_mask(network.kernels[i], 40, seed=3 + i)
           for i in layers]
  assert all((a == b).all() for a, b in zip(masks, again))


@pytest.mark.parametrize('k', [30, 70, 99])
def test_silent_channel_compaction_predicts_like_the_masked_network(
    resnet, imported, k):
  # Every group, residual streams included: a silenced channel of a stream
  # is 0 in every producer, so the add keeps it 0. The imported graph is
  # shared by the three levels (silence_units returns a new graph).
  shape, _, _ = resnet
  graph = imported(shape)
  masked = helpers.silence_units(graph, k)
  compact = silent_channels.compact(masked)
  found = silent_channels.find(masked)
  for group in graph_groups(graph):
    for producer in group.producers:
      assert compact.node(producer).params['kernel'].shape[-1] == (
          group.size - len(found[group.name]))
    assert len(found[group.name]) == min(pruning.prune_count(k, group.size),
                                         group.size - 1)
  x = helpers.random_images(shape, 32)
  masked_logits = Evaluator(masked).predict(x)
  compact_logits = Evaluator(compact).predict(x)
  np.testing.assert_allclose(compact_logits, masked_logits, rtol=1e-5,
                             atol=1e-5 * np.abs(masked_logits).max())
  np.testing.assert_array_equal(compact_logits.argmax(1), masked_logits.argmax(1))
  dense = metrics.total(metrics.graph_layer_counts(graph))
  small = metrics.total(metrics.graph_layer_counts(compact))
  assert small.dense_macs < dense.dense_macs
  assert small.params < dense.params


def graph_groups(graph):
  """The prunable dependency groups of `graph`."""
  return channel_pruning.chosen(groups.analyse(graph))


def test_dense_chain_compaction_and_export_refuse_spec_networks(mnist_resnet,
                                                                tmp_path):
  _, network = mnist_resnet
  with pytest.raises(TfpruneError, match='compaction.compact handles dense '
                     'chains only'):
    compaction.compact(network)
  with pytest.raises(TfpruneError, match='handles dense chains only'):
    export.save(tmp_path / 'p.npz', network)
  with pytest.raises(TfpruneError, match='export handles dense chains only'):
    export.to_arrays(network)


def test_inexpressible_graph_names_the_keras_layer():
  inputs = keras.Input((8, 8, 1))
  a = keras.layers.Conv2D(2, 3, padding='same', name='a')(inputs)
  b = keras.layers.Conv2D(2, 3, padding='same', name='b')(inputs)
  x = keras.layers.Concatenate(name='concat')([a, b])
  x = keras.layers.Dense(3, name='out')(keras.layers.Flatten()(x))
  with pytest.raises(TfpruneError, match=r'layer concat \(concat\) has no '
                     'place in a Network'):
    models.to_network(keras.Model(inputs, x))


def test_bn_before_a_shared_conv_output_is_refused():
  inputs = keras.Input((8, 8, 1))
  a = keras.layers.Conv2D(2, 3, padding='same', name='a')(inputs)
  y = keras.layers.BatchNormalization(name='bn')(a)
  x = keras.layers.Add(name='add')([a, y])  # reads a before and after its BN
  x = keras.layers.Dense(3, name='out')(keras.layers.Flatten()(x))
  with pytest.raises(TfpruneError, match=r'layer bn \(batch_norm\) has '
                     'no place in a Network: it does not continue'):
    models.to_network(keras.Model(inputs, x))


def test_study_c_networks_score_like_keras(tmp_path):
  # No retraining after the iterative steps (step_retrain_epochs=0): what is
  # checked here is each saved network against its row and Keras; retraining
  # under the masks, on both procedures, is test_studies'
  # test_study_c_on_mock_cifar10. The one-shot retraining stays, so the
  # one-shot and iterative networks differ.
  folder = tmp_path / 'data'
  for split, n in (('train', 64), ('t10k', 48)):
    helpers.write_dataset(folder, 'mnist', split, n, seed=len(split))
  config = study_resnet.StudyCConfig(
      out_dir=str(tmp_path / 'c'), dataset='mnist', data_dir=str(folder),
      width=0.0625, epochs=1, targets=(50,), learning_rate=0.05,
      oneshot_retrain_epochs=1, step_fraction=0.3, step_retrain_epochs=0,
      final_retrain_epochs=0, batch_size=32, augment=False)
  rows = study_resnet.run(config, verbose=False)
  test = datasets.load('mnist', 'test', str(folder))
  assert [(r['procedure'], r['target']) for r in rows] == [
      ('dense', 0), ('oneshot', 50), ('iterative', 50)]
  for row in rows:
    graph = tfprune.load(study_resnet.network_path(
        config.out_dir, row['procedure'], row['target']))
    assert graph.metadata['accuracy'] == row['accuracy']
    assert (graph.metadata['procedure'], graph.metadata['target']) == (
        row['procedure'], row['target'])
    assert round(tfprune.evaluate(graph, test.images, test.labels), 6) == (
        row['accuracy'])
    kernels = [n.params['kernel'] for n in graph.weighted()]
    zeros = sum(k.size - np.count_nonzero(k) for k in kernels)
    assert round(zeros / sum(k.size for k in kernels), 6) == (
        row['measured_sparsity'])
    model = tfprune.to_keras(graph, 'tf_keras')
    # ResNet-18 through Keras and through the graph: 1e-4 of the scale.
    helpers.assert_same_up_to_rounding(tfprune.predict(graph, test.images[:16]),
                                       model.predict(test.images[:16], verbose=0), rel=1e-4)
