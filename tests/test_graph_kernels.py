"""The dense/CSR plan inside any graph: the rule at 128 rows, the same outputs, no retracing.

The committed rule's entry for the graph evaluator's 128-row calls is 0 (CSR
did not pay there on this machine), so every graph runs dense; the tests of
the CSR mechanism set that entry to the MLP's 0.15 (`csr_at_015`), as a
calibration on another machine could. Then a Dense node on 2-D inputs whose
kernel has >= MIN_CSR_WEIGHTS weights and a density below the entry is
computed by the CSR matmul, a call of fewer rows (batch 1) stays dense; its
outputs
equal the all-dense evaluator's to float32 round-off; the sweep names each
node's kernel, writes the same CSV twice, and `evaluate` scores a CSR point
exactly as the sweep did.
"""

import filecmp
import shutil

import numpy as np
import pytest

from tests import helpers
from tfprune.criteria import graph_pruning
from tfprune.drivers import scoring
from tfprune.drivers import sweep
from tfprune.graph import evaluator
from tfprune.graph import sparse_kernels
from tfprune.graph import weights
from tfprune.graph.evaluator import Evaluator
from tfprune.keras_compat import keras
from tfprune.keras_io import importer
from tfprune.transforms import channel_pruning

FASHION = helpers.REPO / 'weights' / 'fashion_cnn-fashion_mnist'
# With a graph entry of 0.15, dense_1 (3136x128) goes CSR from k = 90
# (density 0.10), not at 80.
FASHION_KINDS = {0: 'conv+conv+dense+dense', 80: 'conv+conv+dense+dense',
                 90: 'conv+conv+csr+dense', 95: 'conv+conv+csr+dense'}
METHODS = ('weight', 'unit', 'random')


@pytest.fixture(scope='module')
def fashion():
  return weights.load(str(FASHION)).graph


@pytest.fixture
def csr_at_015(monkeypatch):
  """The graph evaluator's entry of the rule set to 0.15, the MLP's."""
  monkeypatch.setitem(sparse_kernels.MAX_CSR_DENSITY,
                      sparse_kernels.GRAPH_CHUNK_ROWS, 0.15)


def _big_dense_model(feature_map_dense: bool = False):
  """conv -> flatten -> Dense(100) (78,400 weights) -> Dense(5); or, with
  `feature_map_dense`, a Dense of 76,800 weights on every position of a map."""
  keras.utils.set_random_seed(0)
  i = keras.Input((16, 16, 2))
  x = keras.layers.Conv2D(4, 3, activation='relu')(i)
  if feature_map_dense:
    x = keras.layers.Conv2D(300, 11, activation='relu')(x)  # (4, 4, 300)
    x = keras.layers.Dense(256, activation='relu')(x)
  x = keras.layers.Flatten()(x)
  x = keras.layers.Dense(100, activation='relu')(x)
  return keras.Model(i, keras.layers.Dense(5)(x))


def test_the_rule_is_read_at_the_rows_of_each_call(fashion, monkeypatch):
  table = sparse_kernels.MAX_CSR_DENSITY
  assert table == {evaluator.CONV_BATCH_SIZE: 0.0}  # graphs run dense
  assert sparse_kernels.MIN_CSR_WEIGHTS == 65_536
  assert sparse_kernels.max_csr_density(1) == 0.0
  assert sparse_kernels.max_csr_density(500) == 0.0
  assert evaluator.rule_rows(fashion) == evaluator.CONV_BATCH_SIZE
  assert evaluator.rule_rows(fashion, n=1) == 1
  assert evaluator.rule_rows(fashion, n=10_000, batch_size=1000) == 128
  # A dense chain's 500-row calls read the 128-row entry.
  chain = helpers.random_chain(((300, 300), (300, 10)))
  assert evaluator.batch_size_for(chain) == 500
  assert evaluator.rule_rows(chain) == 128
  # With a 512-row entry too, a kernel between the two entries' densities is
  # CSR at 512 rows per call and dense at 128.
  monkeypatch.setitem(table, 512, 0.15)
  kernel = np.zeros((300, 300), np.float32)
  kernel.flat[:int(0.1 * kernel.size)] = 1.0
  assert sparse_kernels.kernel_kind(kernel, 512) == 'csr'
  assert sparse_kernels.kernel_kind(kernel, evaluator.CONV_BATCH_SIZE) == 'dense'


@pytest.mark.parametrize('method', METHODS)
def test_the_committed_rule_runs_the_fashion_cnn_dense(fashion, method):
  names = graph_pruning.prunable(fashion)
  for k in (90, 95, 99):
    pruned = channel_pruning.prune_graph(fashion, method, k, names)
    for rows in (1, 128, 500):
      assert set(Evaluator(fashion).kinds(pruned, rows)) == {'conv', 'dense'}


@pytest.mark.parametrize('method', METHODS)
def test_a_call_of_one_example_stays_dense(fashion, method, monkeypatch,
                                           csr_at_015):
  pruned = channel_pruning.prune_graph(fashion, method, 90,
                                       graph_pruning.prunable(fashion))
  planned = Evaluator(fashion)
  assert '+'.join(planned.kinds(pruned)) == FASHION_KINDS[90]
  assert set(planned.kinds(pruned, rows=1)) == {'conv', 'dense'}
  built = []
  make = sparse_kernels.csr_operands
  monkeypatch.setattr(sparse_kernels, 'csr_operands',
                      lambda g, kinds: built.append(kinds) or make(g, kinds))
  x = helpers.random_images((28, 28, 1), n=130)
  one = planned.predict(x[:1], pruned)
  batch = planned.predict(x, pruned)
  assert [sparse_kernels.CSR in kinds for kinds in built] == [False, True]
  helpers.assert_same_up_to_rounding(one, batch[:1])


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('k', sorted(FASHION_KINDS))
def test_fashion_cnn_csr_outputs_equal_the_dense_evaluator(fashion, method, k,
                                                           csr_at_015):
  pruned = channel_pruning.prune_graph(fashion, method, k,
                                       graph_pruning.prunable(fashion))
  x = helpers.random_images((28, 28, 1), n=200)
  planned = Evaluator(fashion)
  assert '+'.join(planned.kinds(pruned)) == FASHION_KINDS[k]
  dense = Evaluator(fashion, allow_sparse=False)
  assert set(dense.kinds(pruned)) == {'conv', 'dense'}
  helpers.assert_same_up_to_rounding(planned.predict(x, pruned),
                                     dense.predict(x, pruned))


def test_one_trace_per_tuple_of_kinds(fashion, csr_at_015):
  names = graph_pruning.prunable(fashion)
  x = helpers.random_images((28, 28, 1), n=300)  # three chunks of 128
  planned = Evaluator(fashion)
  kinds = set()
  for method in METHODS:
    for k in (0, 50, 90, 95, 97):
      pruned = channel_pruning.prune_graph(fashion, method, k, names)
      planned.predict(x, pruned)
      kinds.add(planned.kinds(pruned))
  assert len(kinds) == 2
  assert planned.tracing_count() == 2


def test_csr_operands_are_built_once_per_graph_not_per_chunk(fashion,
                                                             monkeypatch,
                                                             csr_at_015):
  built = []
  make = sparse_kernels.csr_operands
  monkeypatch.setattr(sparse_kernels, 'csr_operands',
                      lambda *a: built.append(1) or make(*a))
  names = graph_pruning.prunable(fashion)
  x = helpers.random_images((28, 28, 1), n=300)  # three chunks of 128
  planned = Evaluator(fashion)
  first = channel_pruning.prune_graph(fashion, 'weight', 90, names)
  out = planned.predict(x, first)
  np.testing.assert_array_equal(planned.predict(x, first), out)
  assert len(built) == 1
  planned.predict(x, channel_pruning.prune_graph(fashion, 'weight', 95, names))
  assert len(built) == 2


def test_a_user_graph_with_a_big_dense_goes_csr_and_agrees_with_keras(
    csr_at_015):
  model = _big_dense_model()
  x = helpers.random_images((16, 16, 2), n=200)
  graph = importer.from_keras(model, data=x[:16])
  pruned = channel_pruning.prune_graph(graph, 'weight', 90,
                                       graph_pruning.prunable(graph))
  planned = Evaluator(graph)
  assert planned.kinds(pruned) == ('conv', 'csr', 'dense')
  assert planned.kinds(graph) == ('conv', 'dense', 'dense')
  exact = Evaluator(graph, allow_sparse=False).predict(x, pruned)
  helpers.assert_same_up_to_rounding(planned.predict(x, pruned), exact)
  helpers.assert_same_up_to_rounding(planned.predict(x), model(x).numpy())


def test_a_dense_on_a_feature_map_stays_dense(csr_at_015):
  model = _big_dense_model(feature_map_dense=True)
  x = helpers.random_images((16, 16, 2), n=8)
  graph = importer.from_keras(model, data=x)
  big = next(n for n in graph.weighted() if n.op == 'dense')
  assert big.params['kernel'].size >= sparse_kernels.MIN_CSR_WEIGHTS
  pruned = channel_pruning.prune_graph(graph, 'weight', 95, [big.name])
  assert sparse_kernels.kernel_kind(pruned.node(big.name).params['kernel'],
                                    evaluator.CONV_BATCH_SIZE) == 'csr'
  assert Evaluator(graph).kinds(pruned)[2] == 'dense'


@pytest.fixture(scope='module')
def user_files(tmp_path_factory):
  folder = tmp_path_factory.mktemp('user')
  _big_dense_model().save(folder / 'm.keras')
  rng = np.random.default_rng(0)
  np.savez(folder / 'data.npz',
           x_test=rng.standard_normal((100, 16, 16, 2)).astype(np.float32),
           y_test=rng.integers(0, 5, 100))
  return folder


def _config(folder, out, **kw):
  return sweep.SweepConfig(
      weights_dir=None, model_file=str(folder / 'm.keras'),
      data=str(folder / 'data.npz'), out_dir=str(out), methods=('weight',),
      levels=(0, 50, 90, 95), **kw)


def test_identical_graph_sweeps_write_identical_files_and_score_alike(
    user_files, tmp_path, csr_at_015):
  out, first = tmp_path / 'out', tmp_path / 'first'
  rows = sweep.run(_config(user_files, out, save_pruned=True))
  shutil.copytree(out, first)
  sweep.run(_config(user_files, out, save_pruned=True))
  for name in (sweep.CSV_NAME, sweep.CONFIG_NAME):
    assert filecmp.cmp(out / name, first / name, shallow=False), name
  assert [r.kernels for r in rows] == [
      'conv+dense+dense', 'conv+dense+dense', 'conv+csr+dense',
      'conv+csr+dense']
  for row in rows:  # evaluate.py scores each export as the sweep did
    score = scoring.score(out / 'pruned' / f'weight-k{row.k:g}.npz',
                          data=str(user_files / 'data.npz'))
    assert score.accuracy == row.accuracy


def test_sweep_without_sparse_kernels_plans_every_dense_node_dense(
    user_files, tmp_path, csr_at_015):
  rows = sweep.run(_config(user_files, tmp_path / 'out', sparse_kernels=False))
  assert {r.kernels for r in rows} == {'conv+dense+dense'}
