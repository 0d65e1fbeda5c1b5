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
from tests import old_exports
from tests.test_structured_groups import ARCHITECTURES
from tests.test_structured_groups import graph_of
from tfprune.criteria import pruning
from tfprune.graph import evaluator
from tfprune.graph import folder_layers
from tfprune.graph import ops
from tfprune.graph.ir import Graph
from tfprune.graph.ir import Node
from tfprune.transforms import channel_pruning
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
  removed = channel_pruning.select(graph, analysis, 'unit', k)
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


def _chain(kernels, biases):
  """The graph of a dense ReLU chain (a weight folder's layout)."""
  return folder_layers.layers_graph(
      [np.asarray(k, np.float32) for k in kernels],
      [None if b is None else np.asarray(b, np.float32) for b in biases])


def _layers(graph):
  """Kernels and biases (None where absent) of a chain graph's layers."""
  nodes = graph.weighted()
  return ([n.params['kernel'] for n in nodes],
          [n.params.get('bias') for n in nodes])


@pytest.mark.parametrize('method', ('weight', 'unit', 'random', 'unit_l1'))
@pytest.mark.parametrize('k', (50, 95, 99))
@pytest.mark.parametrize('use_biases', [True, False])
def test_a_pruned_dense_chain_compacts_to_the_same_logits(method, k, use_biases):
  kernels, biases = old_exports.random_chain(
      ((30, 40), (40, 25), (25, 12), (12, 5)), seed=2)
  graph = _chain(kernels, biases if use_biases else [None] * 4)
  pruned = channel_pruning.prune_graph(graph, method, k,
                                       [n.name for n in graph.weighted()[:3]])
  small = graph_compaction.compact_zeros(pruned)
  if method.startswith('unit'):  # every pruned unit is gone
    assert [w.shape[1] for w in _layers(small)[0][:3]] == [
        max(1, c - pruning.prune_count(k, c)) for c in (40, 25, 12)]
  x = _inputs(graph, 16)
  helpers.assert_same_up_to_rounding(
      evaluator.predict(small, x), helpers.numpy_chain_logits(*_layers(pruned), x))


def test_constants_fold_in_float64_with_one_rounding():
  # Three dead units each output 3e-8; float32 would add them one by one to
  # 1.0 and round each time (1.0), float64 then one rounding gives 1 + 2^-23.
  tiny = np.float32(3e-8)
  kernels = (np.array([[1.0, 0.0, 0.0, 0.0]], np.float32),
             np.ones((4, 1), np.float32))
  biases = (np.array([0.5, tiny, tiny, tiny], np.float32),
            np.array([1.0], np.float32))
  small_kernels, small_biases = _layers(graph_compaction.compact_zeros(
      _chain(kernels, biases)))
  assert small_kernels[0].shape == (1, 1)
  expected = np.float32(1.0 + 3 * np.float64(tiny))
  assert expected == np.nextafter(np.float32(1), np.float32(2))
  assert small_biases[1][0] == expected


def test_a_dead_unit_bias_is_folded_into_the_next_layer():
  kernels = (np.array([[1.0, 0.0]], np.float32), np.array([[2.0], [3.0]], np.float32))
  biases = (np.array([0.5, 4.0], np.float32), np.array([1.0], np.float32))
  small_kernels, small_biases = _layers(graph_compaction.compact_zeros(
      _chain(kernels, biases)))
  # Unit 2 has no inputs: it always outputs relu(4) = 4, worth 4 * 3 = 12 downstream.
  assert small_kernels[0].shape == (1, 1)
  assert small_biases[1].tolist() == [13.0]


def test_a_unit_reading_only_removed_constants_is_constant_too():
  k1 = np.array([[1, 0, 2], [3, 0, 1]], np.float32)   # unit 1 is dead: relu(0.7)
  k2 = np.array([[0, 1], [2.5, 0], [0, 1]], np.float32)  # unit 0 reads only it
  k3 = np.array([[1], [2]], np.float32)
  b1 = np.array([0.1, 0.7, -0.2], np.float32)
  b2 = np.array([0.3, 0.1], np.float32)
  b3 = np.array([0.5], np.float32)
  small = _layers(graph_compaction.compact_zeros(_chain((k1, k2, k3), (b1, b2, b3))))
  assert [k.shape for k in small[0]] == [(2, 2), (2, 1), (1, 1)]
  # Layer 2's unit 0 outputs relu(0.3 + 0.7 * 2.5), worth 1x that downstream.
  constant = max(np.float64(b2[0]) + np.float64(b1[1]) * 2.5, 0.0)
  assert small[1][2][0] == np.float32(np.float64(b3[0]) + constant)
  x = np.random.default_rng(0).standard_normal((8, 2)).astype(np.float32)
  np.testing.assert_allclose(helpers.numpy_chain_logits(*small, x),
                             helpers.numpy_chain_logits((k1, k2, k3), (b1, b2, b3), x),
                             rtol=1e-6)


@pytest.mark.parametrize('use_biases', [True, False])
def test_a_dead_layer_keeps_one_silenced_unit(use_biases):
  kernels, biases = old_exports.random_chain(((6, 5), (5, 4), (4, 3)), seed=1)
  kernels[1] = np.zeros_like(kernels[1])
  biases = biases if use_biases else [None] * 3
  small = _layers(graph_compaction.compact_zeros(_chain(kernels, biases)))
  assert [k.shape for k in small[0]] == [(6, 1), (1, 1), (1, 3)]
  assert not small[0][0].any() and not small[0][1].any()
  if use_biases:
    assert not small[1][0].any() and not small[1][1].any()
  x = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)
  np.testing.assert_allclose(helpers.numpy_chain_logits(*small, x),
                             helpers.numpy_chain_logits(kernels, biases, x),
                             rtol=1e-5)


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
