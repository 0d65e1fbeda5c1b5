"""Bias correction on graphs: the mean pre-activation error of each corrected node is zero.

The oracle of the dense chain is numpy on the weight arrays; on LeNet-5 (conv
nodes) the node outputs come from the graph evaluator, not from the code
under test.
"""

import numpy as np
import pytest

from tests import helpers
from tfprune.criteria import bias_correction
from tfprune.drivers import folder_graph
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import network_graph
from tfprune.graph import weights
from tfprune.transforms import biases as biases_lib
from tfprune.transforms import channel_pruning

SHAPES = ((20, 16), (16, 12), (12, 5))
NAMES = ['layer_1', 'layer_2', 'layer_3']


def _calibration(n=300, seed=1):
  return np.random.default_rng(seed).random((n, SHAPES[0][0]), dtype=np.float32)


def _pre_activations(graph, x):
  """float64 pre-activation of every dense node of a dense chain, by numpy."""
  out, h = [], np.asarray(x, np.float64)
  for name in NAMES:
    params = graph.node(name).params
    z = h @ params['kernel'].astype(np.float64) + params['bias']
    out.append(z)
    h = np.maximum(z, 0.0)
  return out


@pytest.mark.parametrize('active_only', [False, True])
def test_the_mean_error_is_zero_and_the_kernels_are_kept(active_only):
  dense = network_graph.to_graph(helpers.random_network(SHAPES, seed=11))
  pruned = channel_pruning.prune_graph(dense, 'weight', 70, NAMES)
  x = _calibration()
  corrected = bias_correction.correct_biases(dense, pruned, NAMES, x,
                                             active_only=active_only)
  for name in NAMES:
    np.testing.assert_array_equal(corrected.node(name).params['kernel'],
                                  pruned.node(name).params['kernel'])
  dense_z, ours_z = _pre_activations(dense, x), _pre_activations(corrected, x)
  for i, name in enumerate(NAMES):
    error = dense_z[i] - ours_z[i]
    if active_only and name != dense.output:  # the output node: all examples
      active = dense_z[i] > 0
      error = np.where(active, error, 0.0).sum(0) / np.maximum(active.sum(0), 1)
    else:
      error = error.mean(axis=0)
    # The pre-activations are O(1); the biases are rounded to float32.
    np.testing.assert_allclose(error, 0.0, atol=1e-5)
  # Without correction the error is far from zero.
  assert np.abs((dense_z[0] - _pre_activations(pruned, x)[0]).mean(0)).max() > 0.1


def test_on_conv_nodes_the_mean_error_over_examples_and_positions_is_zero():
  dense = folder_graph.to_graph(weights.load(helpers.REPO / 'weights' / 'lenet5-mnist'))
  conv = [n.name for n in dense.weighted() if n.op == 'conv2d']
  pruned = channel_pruning.prune_graph(dense, 'weight', 80, conv)
  x = np.random.default_rng(0).random((64, 28, 28, 1), dtype=np.float32)
  corrected = bias_correction.correct_biases(dense, pruned, conv, x,
                                             active_only=False)
  want = evaluator.node_outputs(dense, x, conv)
  got = evaluator.node_outputs(corrected, x, conv)
  before = evaluator.node_outputs(pruned, x, conv)
  for name in conv:
    channels = want[name].shape[-1]
    error = (want[name] - got[name]).reshape(-1, channels).mean(axis=0)
    scale = np.abs(want[name]).mean()
    # float32 node outputs of magnitude `scale`: the mean error is round-off.
    np.testing.assert_allclose(error, 0.0, atol=1e-4 * scale)
    assert np.abs((want[name] - before[name]).reshape(-1, channels).mean(0)).max() > 1e-2 * scale


def test_other_shapes_and_nodes_without_a_bias_are_refused():
  dense = network_graph.to_graph(helpers.random_network(SHAPES))
  other = network_graph.to_graph(helpers.random_network(((20, 16), (16, 12), (12, 4))))
  with pytest.raises(TfpruneError, match='different shapes'):
    bias_correction.correct_biases(dense, other, ['layer_1'], _calibration())
  plain = biases_lib.drop_biases(dense)
  with pytest.raises(TfpruneError, match='node layer_1 has no bias to correct'):
    bias_correction.correct_biases(plain, plain, ['layer_1'], _calibration())


def test_drop_biases_removes_every_bias_and_nothing_else():
  dense = network_graph.to_graph(helpers.random_network(SHAPES))
  plain = biases_lib.drop_biases(dense)
  for before, after in zip(dense.nodes, plain.nodes):
    assert set(after.params) == set(before.params) - {'bias'}
  x = _calibration(8)
  h = x.astype(np.float64)
  for name in NAMES:  # the numpy chain without biases
    h = h @ dense.node(name).params['kernel']
    h = np.maximum(h, 0) if name != dense.output else h
  np.testing.assert_allclose(evaluator.predict(plain, x), h, rtol=1e-4, atol=1e-5)


def test_the_sweep_corrects_biases_of_the_mnist_mlp(tmp_path, mnist_slice_dir):
  rows = {}
  for correct in (False, True):
    rows[correct] = sweep.run(sweep.SweepConfig(
        str(helpers.PREBUILT), str(tmp_path / str(correct)), methods=('weight',),
        levels=(90,), bias_correction=correct, calibration_size=256,
        data_dir=mnist_slice_dir))[0]
  assert rows[True].sparsity == rows[False].sparsity == 0.9
  # Measured on the full test set: 75.3% -> 96.4% (img/oneshot-bias-corrected).
  assert rows[True].accuracy > rows[False].accuracy + 0.1, rows
