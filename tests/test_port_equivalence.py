"""Old study code (cnn_pruning, structured, Network metrics) against the graph port.

Run on the committed LeNet-5 and Fashion CNN weights before the old modules
are deleted: every mask, count, size and accuracy the studies report must be
the same through the registry, the graph and the graph metrics.
"""

import numpy as np
import pytest

from tests import helpers
from tfprune.allocation import allocators
from tfprune.criteria import cnn_pruning
from tfprune.data import datasets
from tfprune.graph import weights
from tfprune.graph.evaluator import Evaluator
from tfprune.keras_io import models
from tfprune.keras_io.importer import from_keras
from tfprune.runtime import evaluate
from tfprune.runtime import metrics
from tfprune.studies import lenet_config
from tfprune.studies import lenet_cycles
from tfprune.studies import study_fashion
from tfprune.studies import study_lenet
from tfprune.training import finetune
from tfprune.transforms import silent_channels
from tfprune.transforms import structured

LENET = helpers.REPO / 'weights' / 'lenet5-mnist'
FASHION = helpers.REPO / 'weights' / 'fashion_cnn-fashion_mnist'


def _model(name, folder):
  network = weights.load(folder).network
  model = models.get(name)((28, 28, 1), 10)
  models.load_network(model, network)
  return model, network


@pytest.fixture(scope='module')
def lenet():
  return _model('lenet5', LENET)


@pytest.fixture(scope='module')
def fashion():
  return _model('fashion_cnn', FASHION)


@pytest.mark.parametrize('k', [0.01, 1, 25, 50, 90, 99])
def test_global_masks_equal_old_global_magnitude_masks(lenet, fashion, k):
  for _, network in (lenet, fashion):
    old = cnn_pruning.global_magnitude_masks(network.kernels, k)
    new = allocators.global_masks(network.kernels, k)
    for a, b in zip(old, new):
      np.testing.assert_array_equal(a, b)
    again_old = cnn_pruning.global_magnitude_masks(network.kernels, k / 2 + 50, old)
    again_new = allocators.global_masks(network.kernels, k / 2 + 50, new)
    for a, b in zip(again_old, again_new):
      np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('method', list(lenet_config.ARMS))
@pytest.mark.parametrize('seed', [0, 5])
def test_lenet_cycle_masks_equal_old_layer_masks(lenet, method, seed):
  model, _ = lenet
  layers = [0, 1, 2, 3]
  old = new = None
  for cycle in (1, 2, 3):
    level = 95 * cycle / 3
    old = cnn_pruning.layer_masks(method, finetune.kernels(model), level,
                                  layers, old, seed)
    new = lenet_cycles.layer_masks(model, method, level, layers, new, seed)
    for a, b in zip(old, new):
      assert (a is None) == (b is None)
      if a is not None:
        np.testing.assert_array_equal(a, b)


def _old_point(method, k, network, compact, dense, test):
  counts = metrics.total(metrics.layer_counts(network))
  compact_counts = metrics.total(metrics.layer_counts(compact))
  ratio = lambda a, b: round(a / b, 4)
  return {
      'method': method, 'k': k,
      'accuracy': round(evaluate.accuracy(network, test.images, test.labels), 6),
      'nonzero_params': counts.nonzero_params,
      'params_ratio': ratio(counts.nonzero_params, dense['params']),
      'flops_ratio': ratio(counts.effective_macs, dense['macs']),
      'compact_flops_ratio': ratio(compact_counts.dense_macs, dense['macs']),
      'npy_bytes_ratio': ratio(metrics.npy_folder_bytes(network), dense['npy']),
      'compressed_bytes_ratio': ratio(metrics.compressed_bytes(network),
                                      dense['compressed']),
      'compact_npy_bytes_ratio': ratio(metrics.npy_folder_bytes(compact),
                                       dense['npy']),
  }


@pytest.fixture(scope='module')
def mnist_test(data_dir):
  return datasets.load('mnist', 'test', data_dir)


@pytest.mark.parametrize('method', list(lenet_config.ARMS))
@pytest.mark.parametrize('k', [10, 50, 90, 95])
def test_study_b_columns_equal_old_network_path(lenet, mnist_test, method, k):
  model, network = lenet
  layers = [0, 1, 2, 3]
  if method == 'structured_l1':
    old = structured.prune_units(network, structured.unit_keep(network, k, layers))
  else:
    old = network.masked(cnn_pruning.network_masks(network, method, k, layers))
  old_dense = {'params': metrics.total(metrics.layer_counts(network)).nonzero_params,
               'macs': metrics.total(metrics.layer_counts(network)).dense_macs,
               'npy': metrics.npy_folder_bytes(network),
               'compressed': metrics.compressed_bytes(network)}
  expected = _old_point(method, k, old, structured.compact(old), old_dense,
                        mnist_test)

  graph = from_keras(model)
  names = lenet_cycles.pruned_names(model, layers)
  if method == 'structured_l1':
    pruned = study_lenet.structured_l1(graph, k, names)
  else:
    masks = lenet_cycles.layer_masks(model, method, k, layers)
    kernels = {n: {'kernel': np.where(masks[i], graph.node(n).params['kernel'],
                                      np.float32(0))}
               for i, n in zip(layers, names)}
    pruned = graph.with_params(kernels)
  dense = study_lenet.measure(graph)
  assert dense == old_dense
  got = study_lenet._point(method, k, pruned, silent_channels.compact(pruned),
                           dense, mnist_test)
  assert got == expected


@pytest.fixture(scope='module')
def fashion_test(data_dir):
  return datasets.load('fashion_mnist', 'test', data_dir)


@pytest.mark.parametrize('k', study_fashion.DEFAULT_LEVELS)
def test_study_a_oneshot_rows_equal_old_network_path(fashion, fashion_test, k):
  model, network = fashion
  masks = allocators.global_masks(network.kernels, k)
  old = network.masked(masks)
  old_accuracy = evaluate.accuracy(old, fashion_test.images, fashion_test.labels)
  graph = from_keras(model)
  pruned, max_pruned = study_fashion.global_oneshot(graph, k)
  evaluator = Evaluator(graph)
  assert evaluator.accuracy(fashion_test.images, fashion_test.labels, pruned) == (
      old_accuracy)
  for node, mask in zip(pruned.weighted(), masks):
    np.testing.assert_array_equal(node.params['kernel'] != 0, mask & (
        graph.node(node.name).params['kernel'] != 0))
  assert max_pruned == max(float(np.abs(w[~m]).max()) for w, m in
                           zip(network.kernels, masks) if (~m).any())
