"""Compaction, sparse inference plans, the pruned export and the metrics.

The networks are made from small random networks pruned by every method of
`pruning.PRUNERS`, with and without biases, at several levels.
"""

import io

import numpy as np
import pytest

from tests import helpers
from tfprune import api
from tfprune.criteria import pruning
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import io as graph_io
from tfprune.graph import pruned_file
from tfprune.graph.network import Network
from tfprune.runtime import export
from tfprune.runtime import inference
from tfprune.runtime import kernel_calibration
from tfprune.runtime import metrics
from tfprune.transforms import compaction

SHAPES = ((30, 40), (40, 25), (25, 12), (12, 5))
LEVELS = [0, 30, 60, 90, 100]


def _pruned(method, k, seed=0):
  net = helpers.random_network(SHAPES, seed=seed)
  return net.masked(pruning.network_masks(net, method, k, [0, 1, 2]))


def _images(n=64, seed=1):
  return np.random.default_rng(seed).random((n, SHAPES[0][0]), dtype=np.float32)


# filter_l1 keeps at least one unit, so it refuses k = 100.
CASES = [(m, k) for m in sorted(pruning.PRUNERS) for k in LEVELS
         if not (m == 'filter_l1' and k == 100)]


@pytest.mark.parametrize('method, k', CASES)
@pytest.mark.parametrize('use_biases', [True, False], ids=['biases', 'no-biases'])
def test_compacted_network_computes_the_same_logits(method, k, use_biases):
  pruned = _pruned(method, k)
  compact = compaction.compact(pruned, use_biases)
  expected = helpers.numpy_network_logits(pruned, _images(), use_biases)
  got = helpers.numpy_network_logits(compact, _images(), use_biases)
  helpers.assert_same_up_to_rounding(got, expected)
  np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))


@pytest.mark.parametrize('k', LEVELS)
def test_unit_pruning_compacts_to_the_kept_widths(k):
  compact = compaction.compact(_pruned('unit', k))
  # A layer with no unit left keeps one that outputs 0.
  kept = [max(1, c - pruning.prune_count(k, c)) for _, c in SHAPES[:3]]
  assert [kk.shape[1] for kk in compact.kernels] == kept + [SHAPES[-1][1]]


def test_dead_unit_bias_is_folded_into_the_next_layer():
  kernels = (np.array([[1.0, 0.0]], np.float32), np.array([[2.0], [3.0]], np.float32))
  biases = (np.array([0.5, 4.0], np.float32), np.array([1.0], np.float32))
  compact = compaction.compact(Network(kernels, biases))
  # Unit 2 has no inputs: it always outputs relu(4) = 4, worth 4 * 3 = 12 downstream.
  assert compact.kernels[0].shape == (1, 1)
  assert compact.biases[1].tolist() == [13.0]


@pytest.mark.parametrize('method', sorted(pruning.PRUNERS))
@pytest.mark.parametrize('k', [0, 60, 95])
@pytest.mark.parametrize('allow_sparse', [True, False])
def test_plan_matches_the_dense_evaluator(method, k, allow_sparse):
  pruned = _pruned(method, k)
  plan = inference.plan(pruned, allow_sparse=allow_sparse)
  if not allow_sparse:
    assert set(plan.kinds) == {'dense'}
  images = _images(n=inference.CHUNK + 37)  # two chunks
  # The plan sums in transposed 512-row chunks, the evaluator per layer:
  # rounding over two layouts, 1e-4 of the outputs' scale.
  helpers.assert_same_up_to_rounding(inference.logits(plan, images),
                                     helpers.numpy_network_logits(pruned, images),
                                     rel=1e-4)


# Every switch between the row layout (dense) and the chunked transposed
# layout (CSR): first, middle and last layer of either kind.
KIND_PATTERNS = [('csr',) * 4, ('dense',) * 4, ('csr', 'dense', 'csr', 'dense'),
                 ('dense', 'csr', 'dense', 'csr'), ('dense', 'dense', 'csr', 'csr')]


@pytest.mark.parametrize('kinds', KIND_PATTERNS, ids='+'.join)
@pytest.mark.parametrize('use_biases', [True, False], ids=['biases', 'no-biases'])
@pytest.mark.parametrize('n', [1, inference.CHUNK, 2 * inference.CHUNK + 37])
def test_every_kernel_layout_computes_the_evaluator_logits(kinds, use_biases, n):
  pruned = _pruned('weight', 80)
  plan = inference.plan(pruned, use_biases, kinds=kinds)
  assert plan.kinds == kinds
  images = _images(n=n)
  expected = helpers.numpy_network_logits(pruned, images, use_biases)
  # float32 sums in another order: absolute error relative to the logits'
  # scale (about 100 here), not to each entry (some cancel to near zero).
  np.testing.assert_allclose(inference.logits(plan, images), expected,
                             rtol=1e-5, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize('kinds', [('csr',) * 3, ('dense', 'sparse', 'csr', 'csr')])
def test_forced_kinds_must_name_a_kernel_per_layer(kinds):
  with pytest.raises(TfpruneError, match='must give one of'):
    inference.plan(_pruned('weight', 80), kinds=kinds)


def test_layers_denser_than_max_csr_density_stay_dense():
  net = helpers.random_network(((300, 300), (300, 300), (300, 10)))
  assert all(k.size >= inference.MIN_CSR_WEIGHTS for k in net.kernels[:2])
  k = 100 * (1 - inference.MAX_CSR_DENSITY)  # density exactly MAX_CSR_DENSITY
  pruned = net.masked(pruning.network_masks(net, 'weight', k, [0, 1]))
  assert inference.plan(pruned).kinds == ('dense',) * 3


def test_small_layers_stay_dense_at_any_sparsity():
  pruned = _pruned('weight', 99)
  assert all(k.size < inference.MIN_CSR_WEIGHTS for k in pruned.kernels)
  assert inference.plan(pruned).kinds == ('dense',) * 4


def test_kernels_follow_the_fixed_density_rule_without_timing(monkeypatch):
  def no_timing(*args):
    raise AssertionError('plan must not time anything')

  monkeypatch.setattr(kernel_calibration, 'crossover_density', no_timing)
  net = helpers.random_network(((300, 300), (300, 300), (300, 10)))
  # Density just below and just above MAX_CSR_DENSITY in the first layer.
  below = net.masked(pruning.network_masks(
      net, 'weight', 100 * (1 - inference.MAX_CSR_DENSITY) + 1, [0]))
  above = net.masked(pruning.network_masks(
      net, 'weight', 100 * (1 - inference.MAX_CSR_DENSITY) - 1, [0]))
  assert inference.plan(below).kinds == ('csr', 'dense', 'dense')
  assert inference.plan(above).kinds == ('dense', 'dense', 'dense')
  assert inference.plan(below, allow_sparse=False).kinds == ('dense',) * 3
  # The same network gets the same kernels every time.
  assert {inference.plan(below).kinds for _ in range(3)} == {('csr', 'dense', 'dense')}


def test_prebuilt_mlp_gets_csr_from_weight_k90(prebuilt):
  for k, expected in ((80, 'dense'), (90, 'csr'), (99, 'csr')):
    pruned = prebuilt.network.masked(pruning.network_masks(
        prebuilt.network, 'weight', k, [0, 1, 2, 3]))
    assert inference.plan(pruned).kinds == (expected,) * 4 + ('dense',), k


def test_each_dense_segment_structure_is_traced_once(prebuilt, mnist_test):
  config = sweep.SweepConfig('w', 'o', methods=('weight', 'unit'),
                             levels=(0, 50, 90, 99))
  sweep.sweep(config, prebuilt.network, mnist_test)  # every structure seen
  functions = [inference._dense_segment(n, relu)
               for n in range(1, 6) for relu in (False, True)]
  before = [f.experimental_get_tracing_count() for f in functions]
  assert max(before) == 1  # one trace for all the shapes of a structure
  sweep.sweep(config, prebuilt.network, mnist_test)
  assert [f.experimental_get_tracing_count() for f in functions] == before


def test_each_csr_segment_structure_is_traced_once_across_plans():
  # Three plans of different non-zeros and widths, the same kinds: the CSR
  # matrices enter the segment as tensors and the signature leaves every
  # shape open, so one trace serves all three (not one per new shape).
  net = helpers.random_network(((300, 300), (300, 300), (300, 300), (300, 10)))
  images = np.random.default_rng(2).random((2 * inference.CHUNK + 37, 300),
                                           dtype=np.float32)  # three chunks
  segment = inference._csr_segment(3, True, 3)  # pylint: disable=protected-access
  counts = []
  for method, k in (('weight', 90), ('weight', 95), ('random', 92)):
    pruned = net.masked(pruning.network_masks(net, method, k, [0, 1, 2]))
    plan = inference.plan(pruned)
    assert plan.kinds == ('csr',) * 3 + ('dense',)
    expected = helpers.numpy_network_logits(pruned, images)
    np.testing.assert_allclose(inference.logits(plan, images), expected,
                               rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    counts.append(segment.experimental_get_tracing_count())
  assert counts == [1, 1, 1]


@pytest.mark.parametrize('path', kernel_calibration.PATHS)
def test_crossover_probe_measures_a_density(path):
  assert 0.0 <= kernel_calibration.crossover_density(300, 300, path) <= 1.0


def test_crossover_probe_refuses_an_unknown_path():
  with pytest.raises(TfpruneError, match='is not one of mlp, graph'):
    kernel_calibration.crossover_density(300, 300, 'gpu')


@pytest.mark.parametrize('method', sorted(pruning.PRUNERS))
@pytest.mark.parametrize('k', [0, 50, 95])
@pytest.mark.parametrize('use_biases', [True, False], ids=['biases', 'no-biases'])
def test_old_export_loads_as_a_graph_predicting_like_the_pruned_network(
    tmp_path, method, k, use_biases):
  """An old dense-chain export is read as a graph, values stored exactly."""
  pruned = _pruned(method, k)
  path = export.save(tmp_path / 'p.npz', pruned, use_biases, {'k': k})
  graph, recorded, metadata = pruned_file.read(path)
  assert recorded is None and metadata == {'k': k}
  compact = compaction.compact(pruned, use_biases)
  dense = graph.weighted()
  assert len(dense) == compact.num_layers
  for node, kernel, bias in zip(dense, compact.kernels, compact.biases):
    np.testing.assert_array_equal(node.params['kernel'], kernel)
    if use_biases:
      np.testing.assert_array_equal(node.params['bias'], bias)
    else:
      assert 'bias' not in node.params
  biases = pruned.biases if use_biases else (None,) * pruned.num_layers
  helpers.assert_same_up_to_rounding(
      evaluator.predict(graph, _images()),
      helpers.numpy_chain_logits(pruned.kernels, biases, _images()))
  # tfprune.load reads it too, as the same graph.
  assert graph_io.to_bytes(api.load(path)) == graph_io.to_bytes(graph)


@pytest.mark.parametrize('method', sorted(pruning.PRUNERS))
@pytest.mark.parametrize('k', [0, 50, 95, 99])
@pytest.mark.parametrize('use_biases', [True, False], ids=['biases', 'no-biases'])
def test_export_size_equals_the_written_file(method, k, use_biases):
  """The sweep's size_bytes, computed from shapes, is the file's length."""
  compact = compaction.compact(_pruned(method, k, seed=3), use_biases)
  metadata = {'method': method, 'k': k, 'weights_dir': 'wé/ights'}
  written = export.to_bytes(compact, use_biases, metadata)
  assert export.size_bytes(compact, use_biases, metadata) == len(written)
  # Both kinds of kernel storage occur across the cases, and the arrays
  # size_bytes describes are the ones written.
  with np.load(io.BytesIO(written)) as files:
    assert sorted(files.files) == sorted(
        ['format', 'metadata', *export.to_arrays(compact, use_biases)])


def test_export_size_equals_the_written_file_on_the_mlp_shapes():
  net = helpers.random_network(helpers.MLP_SHAPES)
  for k in (0, 80, 90, 99):
    compact = compaction.compact(
        net.masked(pruning.network_masks(net, 'weight', k, [0, 1, 2, 3])))
    assert export.size_bytes(compact) == len(export.to_bytes(compact))


def test_sparse_export_is_smaller_than_the_dense_folder():
  net = helpers.random_network(helpers.MLP_SHAPES)
  pruned = net.masked(pruning.network_masks(net, 'weight', 90, [0, 1, 2, 3]))
  assert metrics.export_bytes(pruned) < 0.2 * metrics.npy_folder_bytes(net)


def _corrupt_truncate(path):
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
    (_corrupt_truncate, 'is not a readable pruned .npz'),
    (_other_format, "has format 'something-else', neither a graph file nor"),
    (_inconsistent, 'is inconsistent'),
    (_single_array, 'is not a readable pruned .npz'),
    (lambda p: p.unlink(), 'does not exist'),
], ids=['truncated', 'other-format', 'inconsistent', 'single-array', 'missing'])
def test_bad_pruned_file_is_refused_in_one_line(tmp_path, breaker, pattern):
  path = export.save(tmp_path / 'p.npz', _pruned('weight', 95))
  breaker(path)
  with pytest.raises(TfpruneError, match=pattern) as info:
    pruned_file.read(path)
  assert '\n' not in str(info.value)
  assert 'tfprune sweep --save_pruned' in str(info.value) or 'does not exist' in pattern


def test_export_to_unwritable_folder_is_refused(tmp_path):
  (tmp_path / 'file').write_text('x')
  with pytest.raises(TfpruneError, match='not writable.*--save_pruned'):
    export.save(tmp_path / 'file' / 'p.npz', _pruned('weight', 50))


def test_metrics_count_a_hand_made_network_exactly():
  kernels = (np.array([[1, 0, 2], [0, 0, 3]], np.float32),   # 2x3, 3 non-zeros
             np.array([[0], [5], [0]], np.float32))           # 3x1, 1 non-zero
  biases = (np.array([0, 1, 0], np.float32), np.array([7], np.float32))
  net = Network(kernels, biases)
  layers = metrics.layer_counts(net)
  assert layers == [metrics.Counts(9, 4, 6, 3), metrics.Counts(4, 2, 3, 1)]
  whole = metrics.total(layers)
  assert whole == metrics.Counts(13, 6, 9, 4)
  assert whole.compression == 13 / 6 and whole.theoretical_speedup == 9 / 4
  assert metrics.total(metrics.layer_counts(net, use_biases=False)) == \
      metrics.Counts(9, 4, 9, 4)
  # 4 arrays of 6, 3, 3, 1 float32 values, each with a 128-byte .npy header.
  assert metrics.npy_folder_bytes(net) == 4 * 128 + 4 * (6 + 3 + 3 + 1)
