"""The one compaction (`graph_compaction`): what it removes, what it folds, exactly.

`compact_zeros` finds the removable channels of any pruned graph itself:
on the unit-masked graph of every architecture it removes exactly the
channels `channel_pruning.select` chose and computes the masked outputs; on
dense chains it folds constants in float64 with one rounding, follows
constants from layer to layer, and keeps one silenced unit of a dead layer;
a non-zero constant that would meet zero padding is kept, not folded.
"""

import numpy as np
import pytest

from tests import helpers
from tests.test_structured_groups import ARCHITECTURES
from tests.test_structured_groups import graph_of
from tfprune.criteria import pruning
from tfprune.drivers import pruned_keras
from tfprune.graph import evaluator
from tfprune.graph import network_graph
from tfprune.graph import ops
from tfprune.graph.ir import Graph
from tfprune.graph.ir import Node
from tfprune.graph.network import Network
from tfprune.transforms import channel_pruning
from tfprune.transforms import compaction
from tfprune.transforms import graph_compaction
from tfprune.graph import groups as groups_lib

RELU = {'activation': ops.activation('relu')}


def _inputs(graph, n=8, seed=3):
  return np.random.default_rng(seed).standard_normal(
      (n, *graph.input_shape)).astype(np.float32)


@pytest.mark.parametrize('k', (30, 70))
@pytest.mark.parametrize('name', ARCHITECTURES)
def test_zeros_of_a_unit_masked_graph_are_the_selected_channels(name, k):
  graph = graph_of(name)
  analysis = groups_lib.analyse(graph)
  removed = channel_pruning.select(graph, analysis, 'l2', k)
  masked = channel_pruning.mask(graph, analysis, removed)
  found = graph_compaction.compact_zeros(masked)
  chosen = graph_compaction.compact(graph, analysis, removed)
  assert [(n.name, {p: v.shape for p, v in n.params.items()})
          for n in found.nodes] == [(n.name, {p: v.shape for p, v in n.params.items()})
                                    for n in chosen.nodes]
  x = _inputs(graph)
  helpers.assert_same_up_to_rounding(evaluator.predict(found, x),
                                     evaluator.predict(masked, x))
  assert graph_compaction.compact_zeros(found) is found  # nothing left to remove


@pytest.mark.parametrize('method', sorted(pruning.PRUNERS))
@pytest.mark.parametrize('k', (50, 95, 99))
def test_dense_chain_graph_and_network_compact_alike(method, k):
  net = helpers.random_network(((30, 40), (40, 25), (25, 12), (12, 5)), seed=2)
  pruned = net.masked(pruning.network_masks(net, method, k, [0, 1, 2]))
  small = compaction.compact(pruned)
  graph = network_graph.to_graph(pruned)
  via_graph = graph_compaction.compact_zeros(graph)
  for a, b in zip(small.kernels + small.biases,
                  network_graph.from_graph(via_graph)[0].kernels
                  + network_graph.from_graph(via_graph)[0].biases):
    assert a.tobytes() == b.tobytes()
  x = _inputs(graph, 16)
  helpers.assert_same_up_to_rounding(evaluator.predict(via_graph, x),
                                     helpers.numpy_network_logits(pruned, x))


def test_constants_fold_in_float64_with_one_rounding():
  # Three dead units each output 3e-8; float32 would add them one by one to
  # 1.0 and round each time (1.0), float64 then one rounding gives 1 + 2^-23.
  tiny = np.float32(3e-8)
  kernels = (np.array([[1.0, 0.0, 0.0, 0.0]], np.float32),
             np.ones((4, 1), np.float32))
  biases = (np.array([0.5, tiny, tiny, tiny], np.float32),
            np.array([1.0], np.float32))
  small = compaction.compact(Network(kernels, biases))
  assert small.kernels[0].shape == (1, 1)
  expected = np.float32(1.0 + 3 * np.float64(tiny))
  assert expected == np.nextafter(np.float32(1), np.float32(2))
  assert small.biases[1][0] == expected


def test_a_unit_reading_only_removed_constants_is_constant_too():
  k1 = np.array([[1, 0, 2], [3, 0, 1]], np.float32)   # unit 1 is dead: relu(0.7)
  k2 = np.array([[0, 1], [2.5, 0], [0, 1]], np.float32)  # unit 0 reads only it
  k3 = np.array([[1], [2]], np.float32)
  b1 = np.array([0.1, 0.7, -0.2], np.float32)
  b2 = np.array([0.3, 0.1], np.float32)
  b3 = np.array([0.5], np.float32)
  network = Network((k1, k2, k3), (b1, b2, b3))
  small = compaction.compact(network)
  assert [k.shape for k in small.kernels] == [(2, 2), (2, 1), (1, 1)]
  # Layer 2's unit 0 outputs relu(0.3 + 0.7 * 2.5), worth 1x that downstream.
  constant = max(np.float64(b2[0]) + np.float64(b1[1]) * 2.5, 0.0)
  assert small.biases[2][0] == np.float32(np.float64(b3[0]) + constant)
  x = np.random.default_rng(0).standard_normal((8, 2)).astype(np.float32)
  np.testing.assert_allclose(helpers.numpy_network_logits(small, x),
                             helpers.numpy_network_logits(network, x), rtol=1e-6)


@pytest.mark.parametrize('use_biases', [True, False])
def test_a_dead_layer_keeps_one_silenced_unit(use_biases):
  net = helpers.random_network(((6, 5), (5, 4), (4, 3)), seed=1)
  pruned = net.masked([None, np.zeros((5, 4), bool), None])
  small = compaction.compact(pruned, use_biases)
  assert [k.shape for k in small.kernels] == [(6, 1), (1, 1), (1, 3)]
  assert not small.kernels[0].any() and not small.kernels[1].any()
  assert not small.biases[0].any() and not small.biases[1].any()
  x = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)
  np.testing.assert_allclose(
      helpers.numpy_network_logits(small, x, use_biases),
      helpers.numpy_network_logits(pruned, x, use_biases), rtol=1e-5)


def _conv_graph(padding: str) -> Graph:
  rng = np.random.default_rng(4)
  conv1 = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
  conv1[..., 1] = 0.0  # channel 1 outputs relu(BN(bias)), a non-zero constant
  def conv(name, src, kernel, pad):
    return Node(name, 'conv2d', [src], {'strides': (1, 1), 'padding': pad,
                                        'dilation': (1, 1), **RELU},
                {'kernel': kernel, 'bias': rng.standard_normal(kernel.shape[-1])})
  nodes = [Node('x', 'input'), conv('c1', 'x', conv1, 'valid'),
           Node('bn', 'batch_norm', ['c1'], {'epsilon': 1e-3},
                {'gamma': rng.random(4) + 0.5, 'beta': rng.standard_normal(4),
                 'mean': rng.standard_normal(4), 'variance': rng.random(4) + 0.5}),
           Node('act', 'activation', ['bn'], {'activation': ops.activation('tanh')}),
           conv('c2', 'act', rng.standard_normal((3, 3, 4, 3)).astype(np.float32),
                padding),
           Node('pool', 'global_avg_pool2d', ['c2'], {'keepdims': False}),
           Node('out', 'dense', ['pool'], {'activation': ops.LINEAR},
                {'kernel': rng.standard_normal((3, 2)), 'bias': np.zeros(2)})]
  return Graph(nodes, 'out', (8, 8, 2))


@pytest.mark.parametrize('padding, width', [('valid', 3), ('same', 4)])
def test_a_constant_meeting_zero_padding_is_kept(padding, width):
  graph = _conv_graph(padding)
  small = graph_compaction.compact_zeros(graph)
  assert small.node('c1').params['kernel'].shape[-1] == width
  assert small.node('bn').params['gamma'].shape == (width,)
  x = _inputs(graph)
  helpers.assert_same_up_to_rounding(evaluator.predict(small, x),
                                     evaluator.predict(graph, x))


@pytest.mark.parametrize('use_biases', [True, False])
def test_a_saved_dense_chain_is_the_compacted_network(use_biases):
  net = helpers.random_network(((20, 16), (16, 12), (12, 4)), seed=5)
  pruned = net.masked(pruning.network_masks(net, 'unit', 50, [0, 1]))
  graph = pruned_keras.network_to_save(pruned, use_biases)
  small = compaction.compact(pruned, use_biases)
  assert [n.params['kernel'].shape for n in graph.weighted()] == [
      k.shape for k in small.kernels] == [(20, 8), (8, 6), (6, 4)]
  x = np.random.default_rng(0).standard_normal((8, 20)).astype(np.float32)
  helpers.assert_same_up_to_rounding(evaluator.predict(graph, x),
                                     helpers.numpy_network_logits(pruned, x, use_biases))
