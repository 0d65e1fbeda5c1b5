"""CNN support: models, evaluator, weight folders, conv masks, global, random, structured.

Parameterized over every CNN of the registry and every criterion of the one
registry (`pruning.PRUNERS`), so a new model or criterion inherits the suite.
"""

import json

import numpy as np
import pytest

from tests import helpers
from tfprune.allocation import allocators
from tfprune.criteria import graph_pruning
from tfprune.criteria import pruning
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import network_graph
from tfprune.graph import weights
from tfprune.graph.evaluator import Evaluator
from tfprune.keras_compat import keras
from tfprune.keras_io import models
from tfprune.keras_io.importer import from_keras
from tfprune.runtime import metrics
from tfprune.transforms import silent_channels

SEQUENTIAL_CNNS = ['fashion_cnn', 'lenet5']
MNIST_SHAPE = (28, 28, 1)


def _conv(size, cin, cout, bias=True):
  return size * size * cin * cout + (cout if bias else 0)


def _resnet18_params(cin, classes, width):
  """Trainable and total parameters of ResNet-18 from its architecture."""
  conv, bn = 0, 0
  stem = round(64 * width)
  conv += _conv(3, cin, stem, bias=False)
  bn += stem
  channels = stem
  for filters, stride in models.RESNET18_STAGES:
    filters = round(filters * width)
    for block in (1, 2):
      conv += _conv(3, channels, filters, False) + _conv(3, filters, filters, False)
      bn += 2 * filters
      if block == 1 and (stride != 1 or channels != filters):
        conv += _conv(1, channels, filters, False)
        bn += filters
      channels = filters
  dense = channels * classes + classes
  return conv + dense + 2 * bn, conv + dense + 4 * bn


# (model, input shape, build kwargs, trainable params, all params), counted
# from the architectures in the builders' docstrings.
PARAMS = {
    'fashion_cnn': (MNIST_SHAPE, {},
                    _conv(3, 1, 32) + 2 * 32 + _conv(3, 32, 64) + 2 * 64
                    + 7 * 7 * 64 * 128 + 128 + 128 * 10 + 10,
                    _conv(3, 1, 32) + 4 * 32 + _conv(3, 32, 64) + 4 * 64
                    + 7 * 7 * 64 * 128 + 128 + 128 * 10 + 10),
    'lenet5': (MNIST_SHAPE, {}, *[_conv(5, 1, 6) + _conv(5, 6, 16)
                                  + 400 * 120 + 120 + 120 * 84 + 84 + 84 * 10
                                  + 10] * 2),
    'resnet18': ((32, 32, 3), {}, *_resnet18_params(3, 10, 1.0)),
    'resnet18-w0.25-mnist': (MNIST_SHAPE, {'width': 0.25},
                             *_resnet18_params(1, 10, 0.25)),
}


@pytest.mark.parametrize('case', sorted(PARAMS))
def test_exact_parameter_count(case):
  shape, kwargs, trainable, total = PARAMS[case]
  model = models.get(case.split('-')[0])(shape, 10, **kwargs)
  assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable
  assert model.count_params() == total


def test_resnet18_matches_the_pytorch_reference_count():
  assert PARAMS['resnet18'][2] == 11_173_962


def _model_with_random_norms(name, seed=1):
  keras.utils.set_random_seed(seed)
  model = models.get(name)(MNIST_SHAPE, 10)
  rng = np.random.default_rng(seed)
  helpers.randomize_norms(model, rng)
  for layer in model.layers:
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
      layer.bias.assign(0.1 * rng.normal(size=layer.bias.shape))
  return model


def _images(n=40, seed=0):
  return np.random.default_rng(seed).random((n,) + MNIST_SHAPE).astype(np.float32)


@pytest.fixture(scope='module', params=SEQUENTIAL_CNNS)
def cnn(request):
  model = _model_with_random_norms(request.param)
  return request.param, model, models.to_network(model)


def test_folder_graph_evaluates_like_keras(cnn, tmp_path):
  _, model, network = cnn
  weights.save(tmp_path / 'w', network)
  x = _images()
  logits = evaluator.predict(weights.load_graph(tmp_path / 'w'), x)
  probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
  probabilities /= probabilities.sum(axis=1, keepdims=True)
  helpers.assert_same_up_to_rounding(probabilities, model.predict(x, verbose=0))


def test_weight_folder_round_trip_with_batch_norm(cnn, tmp_path):
  name, model, network = cnn
  saved = weights.save(tmp_path / 'w', network, {'model': name})
  loaded = weights.load(tmp_path / 'w')
  manifest = json.loads((tmp_path / 'w' / weights.MANIFEST).read_text())
  assert manifest['format'] == weights.LAYERS_FORMAT
  assert loaded.network.specs == network.specs
  assert [n is None for n in loaded.network.norms] == [
      n is None for n in network.norms]
  assert (tmp_path / 'w' / weights.norm_file(1)).exists() == (name == 'fashion_cnn')
  assert saved.sha256 == loaded.sha256
  x = _images(8)
  np.testing.assert_array_equal(evaluator.predict(loaded.graph, x),
                                evaluator.predict(network_graph.to_graph(network), x))
  fresh = models.load_network(models.get(name)(MNIST_SHAPE, 10), loaded.network)
  helpers.assert_same_up_to_rounding(fresh.predict(x, verbose=0),
                                     model.predict(x, verbose=0))


@pytest.mark.parametrize('source,target,pattern', [
    ('fashion_cnn', 'lenet5', r'layer 1 \(conv_1\): model lenet5 expects a '
     r'kernel of shape \(5, 5, 1, 6\), the weights have \(3, 3, 1, 32\)'),
    ('lenet5', 'fashion_cnn', r'layer 1 \(conv_1\): model fashion_cnn expects'),
    ('mlp', 'lenet5', r'model lenet5 has 3 dense layers but the weights have 5'),
])
def test_weights_of_another_architecture_name_the_layer(source, target, pattern):
  network = models.to_network(models.get(source)(MNIST_SHAPE, 10))
  with pytest.raises(TfpruneError, match=pattern):
    models.load_network(models.get(target)(MNIST_SHAPE, 10), network)


def test_resnet_converts_with_its_skip_connections():
  # Issue 5: ResNet-18 is a Network too (tests/test_resnet_network.py).
  model = models.get('resnet18')(MNIST_SHAPE, 10, width=0.125)
  network = models.to_network(model)
  assert network.num_layers == 21
  assert sum(s.residual is not None for s in network.specs) == 8


def test_lenet5_counts_are_exact():
  network = models.to_network(models.get('lenet5')(MNIST_SHAPE, 10))
  counts = metrics.total(metrics.layer_counts(network))
  assert counts.params == 61_706
  # conv1 at 28*28 positions, conv2 at 10*10, then the three dense layers.
  assert counts.dense_macs == 150 * 784 + 2400 * 100 + 48_000 + 10_080 + 840


def _kernels(seed=0):
  rng = np.random.default_rng(seed)
  return [rng.normal(size=s).astype(np.float32)
          for s in [(5, 5, 1, 6), (5, 5, 6, 16), (400, 120), (120, 10)]]


@pytest.mark.parametrize('method', sorted(pruning.PRUNERS))
@pytest.mark.parametrize('k', [0, 10, 33.3, 50, 70, 90])
def test_layer_masks_prune_exact_counts_on_conv_kernels(method, k):
  for w in _kernels():
    mask = pruning.get(method)(w, k)
    assert mask.shape == w.shape and mask.dtype == bool
    if method in ('unit', 'filter_l1'):  # whole filters
      units = mask.reshape(-1, w.shape[-1])
      assert (units.all(axis=0) | ~units.any(axis=0)).all()  # whole filters
      assert (~units.any(axis=0)).sum() == int(k * 10) * w.shape[-1] // 1000
    else:
      assert (~mask).sum() == int(k * 10) * w.size // 1000


@pytest.mark.parametrize('k', [10, 50, 90])
def test_l1_masks_keep_the_largest(k):
  for w in _kernels(1):
    mask = pruning.get('weight')(w, k)
    assert np.abs(w[mask]).min() > np.abs(w[~mask]).max()
    units = pruning.get('filter_l1')(w, k).reshape(-1, w.shape[-1])[0]
    norms = np.abs(w).reshape(-1, w.shape[-1]).sum(axis=0)
    if not units.all():  # 10% of 6 filters prunes none
      assert norms[units].min() > norms[~units].max()


@pytest.mark.parametrize('method', sorted(pruning.PRUNERS))
def test_masks_given_back_only_ever_lose_weights(method):
  w = _kernels(2)[1]
  mask = None
  for k in (20, 50, 80):
    new = pruning.get(method)(w, k, mask)
    assert mask is None or not (new & ~mask).any()
    mask = new


# `random` draws over the array as laid out, so it is not tied to an axis.
@pytest.mark.parametrize('method', sorted(set(pruning.PRUNERS) - {'random'}))
def test_graph_kernel_mask_with_units_on_another_axis_equals_the_criterion(method):
  # A depthwise kernel's units are its third axis: moved there and back.
  w = _kernels(3)[1]
  mask = pruning.get(method)(w, 30)
  moved = np.moveaxis(w, -1, 2)
  got = graph_pruning.kernel_mask(method, moved, 60, 2,
                                  mask=np.moveaxis(mask, -1, 2))
  np.testing.assert_array_equal(
      np.moveaxis(got, 2, -1), pruning.get(method)(w, 60, mask))


def test_structured_refuses_to_remove_every_filter():
  with pytest.raises(TfpruneError, match=r'would remove all 6 units.*k < 100'):
    pruning.unit_l1_mask(_kernels()[0], 100)


def test_random_pruning_is_seeded_and_reproducible():
  w = _kernels()[2]
  a = pruning.random_mask(w, 50, seed=3)
  np.testing.assert_array_equal(a, pruning.random_mask(w, 50, seed=3))
  assert (a != pruning.random_mask(w, 50, seed=4)).any()
  # Not by magnitude: some pruned weight is larger than some kept one.
  assert np.abs(w[~a]).max() > np.abs(w[a]).min()


@pytest.mark.parametrize('k', [0, 0.01, 1, 25, 50, 90, 99, 100])
def test_global_threshold_prunes_exactly_k_of_all_weights(k):
  kernels = [w * scale for w, scale in zip(_kernels(), (3.0, 1.0, 0.2, 1.0))]
  masks = allocators.global_masks(kernels, k)
  total = sum(w.size for w in kernels)
  pruned = sum(int((~m).sum()) for m in masks)
  assert pruned == int(k * 100) * total // 10_000
  kept = np.concatenate([np.abs(w[m]) for w, m in zip(kernels, masks)])
  lost = np.concatenate([np.abs(w[~m]) for w, m in zip(kernels, masks)])
  if kept.size and lost.size:
    assert kept.min() > lost.max()  # one threshold for the whole network


def test_global_threshold_differs_per_layer_and_only_shrinks():
  kernels = [w * s for w, s in zip(_kernels(), (3.0, 1.0, 0.2, 1.0))]
  first = allocators.global_masks(kernels, 50)
  fractions = [1 - m.mean() for m in first]
  assert fractions[0] < fractions[1] < fractions[2]  # small weights lose most
  second = allocators.global_masks(kernels, 75, first)
  assert all(not (b & ~a).any() for a, b in zip(first, second))
  assert sum(int((~m).sum()) for m in second) == 3 * sum(w.size for w in kernels) // 4


def test_global_masks_refuse_mismatched_masks():
  with pytest.raises(TfpruneError, match='1 masks for 4 weight arrays'):
    allocators.global_masks(_kernels(), 50, [None])


@pytest.mark.parametrize('k', [0, 30, 70, 99])
def test_compacted_cnn_predicts_like_the_masked_cnn(cnn, k):
  _, model, _ = cnn
  graph = from_keras(model)
  masked = helpers.silence_units(graph, k)
  compact = silent_channels.compact(masked)
  for node in graph.weighted()[:-1]:
    units = node.params['kernel'].shape[-1]
    kept = max(1, units - pruning.prune_count(k, units))
    assert compact.node(node.name).params['kernel'].shape[-1] == kept
  x = _images(64)
  masked_logits = Evaluator(masked).predict(x)
  compact_logits = Evaluator(compact).predict(x)
  helpers.assert_same_up_to_rounding(compact_logits, masked_logits)
  np.testing.assert_array_equal(compact_logits.argmax(1), masked_logits.argmax(1))
  dense = metrics.total(metrics.graph_layer_counts(graph))
  small = metrics.total(metrics.graph_layer_counts(compact))
  assert (small.dense_macs < dense.dense_macs) == (k > 0)


def test_zero_kernel_channels_with_a_constant_output_are_not_silent():
  model = models.get('lenet5')(MNIST_SHAPE, 10)
  graph = from_keras(model)
  first = graph.weighted()[0].name
  masked = helpers.silence_units(graph, 50, positive_bias=first)
  found = silent_channels.find(masked)
  assert [len(found[n.name]) for n in graph.weighted()[:-1]] == [
      0, 8, 60, 42]  # conv_1's pruned filters output relu(0.5)


def test_graph_counts_equal_the_network_counts(cnn):
  _, model, network = cnn
  graph = from_keras(model)
  assert metrics.graph_layer_counts(graph) == metrics.layer_counts(network)
  if network.norms[0] is None:  # the same arrays: the same bytes
    assert metrics.graph_npy_bytes(graph) == metrics.npy_folder_bytes(network)
    assert metrics.graph_compressed_bytes(graph) == metrics.compressed_bytes(network)
