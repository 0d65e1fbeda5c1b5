"""Old dense-chain exports load as graphs; the costs of a graph; the CSR probes.

tfprune writes one pruned-file format (graph files); files of the old
dense-chain export (`tfprune-pruned-v1`) still load, as the equivalent
graph, with their values exactly, and broken ones are refused in one line.
`runtime.costs` counts a graph's parameters, multiply-adds and bytes;
`runtime.csr_gain` computes a graph with its large Dense layers on CSR, for
the benchmark to time against dense; `runtime.kernel_calibration` probes
where CSR pays.
"""

import numpy as np
import pytest

from tests import helpers
from tests import old_exports
from tfprune import api
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import io as graph_io
from tfprune.graph import pruned_file
from tfprune.graph import weights
from tfprune.runtime import costs
from tfprune.runtime import csr_gain
from tfprune.runtime import kernel_calibration

SHAPES = ((30, 40), (40, 25), (25, 12), (12, 5))


def _images(n=64, seed=1):
  return np.random.default_rng(seed).random((n, SHAPES[0][0]), dtype=np.float32)


@pytest.mark.parametrize('k', [0, 50, 95])
@pytest.mark.parametrize('use_biases', [True, False], ids=['biases', 'no-biases'])
def test_old_export_loads_as_a_graph_predicting_like_the_pruned_chain(
    tmp_path, k, use_biases):
  """The graph holds the stored values exactly (dense or CSR storage)."""
  kernels, biases = old_exports.random_chain(SHAPES)
  kernels = old_exports.magnitude_pruned(kernels, k)
  path = old_exports.save(tmp_path / 'p.npz', kernels, biases, use_biases,
                          {'k': k})
  stored = old_exports.arrays(kernels, biases, use_biases)
  # Pruned layers go CSR where that is smaller, the kept output layer dense.
  assert any(name.startswith('csr_') for name in stored) == (k > 0)
  assert f'kernel_{len(kernels)}' in stored
  graph, recorded, metadata = pruned_file.read(path)
  assert recorded is None and metadata == {'k': k}
  nodes = graph.weighted()
  assert len(nodes) == len(kernels)
  for node, kernel, bias in zip(nodes, kernels, biases):
    np.testing.assert_array_equal(node.params['kernel'], kernel)
    if use_biases:
      np.testing.assert_array_equal(node.params['bias'], bias)
    else:
      assert 'bias' not in node.params
  helpers.assert_same_up_to_rounding(
      evaluator.predict(graph, _images()),
      helpers.numpy_chain_logits(kernels, biases if use_biases else
                                 [None] * len(kernels), _images()))
  # tfprune.load reads it too, as the same graph.
  assert graph_io.to_bytes(api.load(path)) == graph_io.to_bytes(graph)


def _truncate(path):
  path.write_bytes(path.read_bytes()[:100])


def _other_format(path):
  np.savez(path, format=np.array('something-else'))


def _inconsistent(path):
  arrays = dict(np.load(path))
  arrays['csr_indices_1'] = arrays['csr_indices_1'] + 1000
  np.savez(path, **arrays)


def _single_array(path):
  with open(path, 'wb') as f:
    np.save(f, np.zeros(3, np.float32))


@pytest.mark.parametrize('breaker,pattern', [
    (_truncate, 'is not a readable pruned .npz'),
    (_other_format, "has format 'something-else', neither a graph file nor"),
    (_inconsistent, 'is inconsistent'),
    (_single_array, 'is not a readable pruned .npz'),
    (lambda p: p.unlink(), 'does not exist'),
], ids=['truncated', 'other-format', 'inconsistent', 'single-array', 'missing'])
def test_bad_pruned_file_is_refused_in_one_line(tmp_path, breaker, pattern):
  kernels, biases = old_exports.random_chain(SHAPES)
  path = old_exports.save(tmp_path / 'p.npz',
                          old_exports.magnitude_pruned(kernels, 95), biases)
  breaker(path)
  with pytest.raises(TfpruneError, match=pattern) as info:
    pruned_file.read(path)
  assert '\n' not in str(info.value)
  assert 'tfprune sweep --save_pruned' in str(info.value) or 'does not exist' in pattern


def test_costs_count_a_hand_made_chain_exactly(tmp_path):
  kernels = [np.array([[1, 0, 2], [0, 0, 3]], np.float32),   # 2x3, 3 non-zeros
             np.array([[0], [5], [0]], np.float32)]           # 3x1, 1 non-zero
  biases = [np.array([0, 1, 0], np.float32), np.array([7], np.float32)]
  graph = pruned_file.load(old_exports.save(tmp_path / 'p.npz', kernels, biases))
  layers = costs.layer_counts(graph)
  assert layers == [costs.Counts(9, 4, 6, 3), costs.Counts(4, 2, 3, 1)]
  whole = costs.total(layers)
  assert whole == costs.Counts(13, 6, 9, 4)
  assert whole.compression == 13 / 6 and whole.theoretical_speedup == 9 / 4
  # 4 arrays of 6, 3, 3, 1 float32 values, each with a 128-byte .npy header.
  assert costs.npy_bytes(graph) == 4 * 128 + 4 * (6 + 3 + 3 + 1)
  assert 0 < costs.compressed_bytes(graph) < costs.npy_bytes(graph) + 1024


def test_csr_kinds_put_every_large_dense_layer_of_the_mlp_on_csr(prebuilt):
  # 784x1000, 1000x1000, 1000x500 and 500x200 have at least 65,536 weights.
  assert csr_gain.csr_kinds(prebuilt.graph) == ('csr',) * 4 + ('dense',)


def test_csr_and_dense_kernels_compute_the_same_logits(prebuilt, mnist_test):
  graph = prebuilt.graph
  kernels = old_exports.magnitude_pruned(
      [n.params['kernel'] for n in graph.weighted()], 90)
  pruned = graph.with_params({n.name: {**n.params, 'kernel': k}
                              for n, k in zip(graph.weighted(), kernels)})
  for n in (1, 300):
    x = mnist_test.images[:n].reshape(n, -1)
    dense, csr = csr_gain.dense_and_csr(pruned, x)
    # The same sums in another order (CSR skips the zeros): float32 rounding.
    helpers.assert_same_up_to_rounding(csr(), dense())
    np.testing.assert_array_equal(dense(), evaluator.predict(
        pruned, x, allow_sparse=False))


def test_a_graph_without_a_large_dense_layer_has_no_csr_pair():
  graph = weights.load_graph(helpers.REPO / 'weights' / 'lenet5-mnist')
  assert csr_gain.csr_kinds(graph) is None  # 400x120 is below 65,536
  with pytest.raises(TfpruneError, match='no Dense layer CSR can compute'):
    csr_gain.dense_and_csr(graph, np.zeros((1, 28, 28, 1), np.float32))


@pytest.mark.parametrize('rows', [1, 128])
def test_crossover_probe_measures_a_density(rows):
  assert 0.0 <= kernel_calibration.crossover_density(300, 300, rows) <= 1.0


def test_crossover_probe_refuses_no_rows():
  with pytest.raises(TfpruneError, match='rows 0 must be at least 1'):
    kernel_calibration.crossover_density(300, 300, 0)
