"""The unit methods as group importances: `unit` (L2), `unit_l1` (L1), `unit_bn` (BN-gamma).

Parameterized over the registry's coupled-channel methods, the zoo models
with residual adds, concatenations and depthwise convs, and levels. Each
group loses exactly floor(k*m/100) channels, those of lowest importance as
computed here from the group's slices (not by `channel_pruning`), and the
compacted graph (what `--save_keras` writes) computes the masked one. On a
dense chain `unit_l1` removes the same units from a weight folder as from its
graph; `unit_bn` without batch norms, and per-layer allocations of the
methods that rank across layers, are refused in one line.
"""

import numpy as np
import pytest

from tests import helpers
from tests import keras_zoo
from tfprune.criteria import graph_pruning
from tfprune.criteria import methods
from tfprune.criteria import pruning
from tfprune.drivers import graph_sweep
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import network_graph
from tfprune.graph import weights
from tfprune.keras_compat import keras
from tfprune.keras_io import importer
from tfprune.transforms import channel_pruning
from tfprune.graph import groups as groups_lib

# The built-in channel criteria scored over whole groups (filter_l1 scores the
# producers' filters alone: test_structured_groups).
COUPLED = ['unit', 'unit_bn', 'unit_l1']
_RULES = {'unit': 'l2', 'unit_l1': 'l1', 'unit_bn': 'bn_gamma'}
MODELS = ('residual', 'concat', 'mobilenet_v2')
LEVELS = (30, 50, 70)


def graph_of(name):
  return keras_zoo.imported(name, 'tf_keras')[1]


def _slice_rows(graph, s):
  """(channels, values) of one slice, taken with np.take."""
  value = np.asarray(graph.node(s.node).params[s.param], np.float64)
  taken = np.moveaxis(np.take(value, s.indices, axis=s.axis), s.axis, 0)
  return taken.reshape(s.indices.shape[0], -1)


def importance(graph, group, method):
  """The group's channel scores, by the README's definition of each method."""
  rule = _RULES[method]
  total = np.zeros(group.size)
  for s in group.slices:
    if rule == 'l2' and s.role == groups_lib.PRODUCER and s.param == 'kernel':
      total += np.sum(_slice_rows(graph, s) ** 2, axis=1)
    elif rule == 'l1' and s.param == 'kernel':
      total += np.abs(_slice_rows(graph, s)).sum(axis=1)
    elif rule == 'bn_gamma' and s.param == 'gamma':
      total += np.abs(_slice_rows(graph, s)).sum(axis=1)
  return np.sqrt(total) if rule == 'l2' else total


def _has_gamma(group):
  return any(s.param == 'gamma' for s in group.slices)


def _names(graph, method):
  """Layers to prune: all hidden ones; for unit_bn those whose groups have batch norms."""
  names = graph_pruning.prunable(graph)
  if method != 'unit_bn':
    return names
  analysis = groups_lib.analyse(graph)
  keep = {n for g in analysis.groups if not g.refused and _has_gamma(g)
          for n in g.nodes}
  return [n for n in names if n in keep]


def _removed(graph, masked, group):
  """Channels whose producing kernel slices the masked graph zeroed."""
  s = next(s for s in group.slices
           if s.role == groups_lib.PRODUCER and s.param == 'kernel')
  return np.flatnonzero(~_slice_rows(masked, s).any(axis=1))


# The concat model has no batch norm: unit_bn is refused there (tested below).
CASES = [(m, model) for m in COUPLED for model in MODELS
         if (m, model) != ('unit_bn', 'concat')]


@pytest.mark.parametrize('k', LEVELS)
@pytest.mark.parametrize('method, model', CASES)
def test_lowest_channels_removed_and_compacted_equals_masked(method, model, k):
  graph = graph_of(model)
  names = _names(graph, method)
  masked = channel_pruning.prune_graph(graph, method, k, names)
  analysis = groups_lib.analyse(graph)
  pruned_groups = [g for g in analysis.groups
                   if not g.refused and set(g.nodes) & set(names)]
  assert pruned_groups
  for group in pruned_groups:
    scores = importance(graph, group, method)
    count = min(pruning.prune_count(k, group.size), group.size - 1)
    expected = np.sort(np.lexsort((np.arange(group.size), scores))[:count])
    np.testing.assert_array_equal(_removed(graph, masked, group), expected)
  small = graph_sweep.saved_graph(masked, method)
  x = np.random.default_rng(1).standard_normal(
      (8, *graph.input_shape)).astype(np.float32)
  np.testing.assert_allclose(evaluator.predict(small, x),
                             evaluator.predict(masked, x), rtol=1e-5, atol=1e-6)
  assert small.num_params < graph.num_params


def test_the_three_ranks_differ_on_mobilenet():
  """Each method removes channels by its own rank, not all by one."""
  graph = graph_of('mobilenet_v2')
  names = graph_pruning.prunable(graph)
  kernels = {m: [n.params.get('kernel') for n in
                 channel_pruning.prune_graph(graph, m, 50, names).nodes]
             for m in COUPLED}
  for a in COUPLED:
    for b in COUPLED:
      if a < b:
        assert not all(x is None or np.array_equal(x, y)
                       for x, y in zip(kernels[a], kernels[b]))


def test_unit_bn_without_batch_norm_is_refused_naming_the_method():
  with pytest.raises(TfpruneError, match=(
      "^method 'unit_bn' ranks channels by batch-norm gamma, but this network "
      'has no batch norm on the channels it prunes: use unit or unit_l1$')):
    channel_pruning.prune_graph(graph_of('concat'), 'unit_bn', 50,
                                graph_pruning.prunable(graph_of('concat')))
  graph = graph_of('residual')
  analysis = groups_lib.analyse(graph)
  bare = [n for g in analysis.groups if not g.refused and not _has_gamma(g)
          for n in g.nodes]
  assert len(bare) == 2  # the residual stream: second conv and shortcut
  with pytest.raises(TfpruneError, match=(
      f"^method 'unit_bn' .* but the channels of {','.join(bare)} have no batch "
      'norm: use unit or unit_l1, or leave those layers out with --prune_layers$')):
    channel_pruning.prune_graph(graph, 'unit_bn', 50, graph_pruning.prunable(graph))


def test_unit_l1_on_a_dense_chain_equals_its_graph():
  folder = weights.load(str(helpers.PREBUILT))
  network = folder.network
  graph = network_graph.to_graph(network)
  layers = pruning.prunable_layers(network.num_layers)
  names = graph_pruning.prunable(graph)
  for k in (0, 30, 50, 70, 90, 99, 100):
    chain = methods.prune('unit_l1', network, k, layers)
    coupled = channel_pruning.prune_graph(graph, 'unit_l1', k, names)
    for i, kernel in enumerate(chain.kernels):
      np.testing.assert_array_equal(
          kernel, coupled.node(f'layer_{i + 1}').params['kernel'])
  # Not the column-L1 rule of one kernel alone: the next layer's rows count.
  alone = pruning.get('filter_l1')(network.kernels[0], 50)
  assert not np.array_equal(alone, methods.prune(
      'unit_l1', network, 50, layers).kernels[0] != 0)


@pytest.mark.parametrize('method', [m for m in COUPLED
                                    if not methods.get(m).per_layer])
def test_per_layer_allocation_of_a_cross_layer_rank_is_refused(method):
  with pytest.raises(TfpruneError, match=(
      f'^--allocation=erk gives each layer its own level, but {method} ranks '
      f'channel groups across layers: use --allocation=uniform with {method}, '
      'or method unit$')):
    sweep.SweepConfig('w', 'o', methods=('weight', method), allocation='erk')


def _residual_files(tmp_path):
  model = keras_zoo.build('residual', 'tf_keras')
  model.save(tmp_path / 'model.keras')
  x = np.random.default_rng(0).standard_normal((100, 10, 10, 3)).astype(np.float32)
  y = np.argmax(model.predict(x, verbose=0), axis=1)
  np.savez(tmp_path / 'data.npz', x_test=x, y_test=y)
  return model, x, y


def test_sweep_saves_each_coupled_method_compacted(tmp_path):
  """`sweep --model_file --methods=unit,unit_l1,unit_bn --save_keras`, in process."""
  model, x, y = _residual_files(tmp_path)
  graph = importer.from_keras(tmp_path / 'model.keras')
  with_bn = _names(graph, 'unit_bn')
  config = sweep.SweepConfig(
      None, str(tmp_path / 'out'), model_file=str(tmp_path / 'model.keras'),
      data=str(tmp_path / 'data.npz'), methods=tuple(COUPLED), levels=(50,),
      prune_layers=tuple(with_bn), save_keras=True)
  rows = sweep.run(config)
  assert [r.method for r in rows] == COUPLED
  for row in rows:
    saved = keras.models.load_model(tmp_path / 'out' / 'pruned' / f'{row.method}-k50.keras')
    assert saved.count_params() < model.count_params()
    accuracy = np.mean(np.argmax(saved.predict(x, verbose=0), axis=1) == y)
    assert accuracy == pytest.approx(row.accuracy, abs=1e-12)


def test_sweep_refuses_unit_bn_before_any_point(tmp_path):
  _residual_files(tmp_path)
  config = sweep.SweepConfig(
      None, str(tmp_path / 'out'), model_file=str(tmp_path / 'model.keras'),
      data=str(tmp_path / 'data.npz'), methods=('unit', 'unit_bn'), levels=(50,))
  measured = []
  with pytest.raises(TfpruneError, match="^method 'unit_bn' ranks channels by "
                     'batch-norm gamma, but the channels of'):
    sweep.run(config, progress=lambda *point: measured.append(point))
  assert not measured  # not even the unit point before it
  assert not (tmp_path / 'out').exists()


def test_sweep_of_the_mlp_folder_scores_unit_l1_as_its_graph(tmp_path, data_dir,
                                                             mnist_test):
  """The weight-folder sweep of `unit_l1`: the graph's accuracy and widths."""
  config = sweep.SweepConfig(str(helpers.PREBUILT), str(tmp_path / 'out'),
                             data_dir=data_dir,
                             methods=('unit_l1',), levels=(50,))
  row, = sweep.run(config)
  graph = network_graph.to_graph(weights.load(str(helpers.PREBUILT)).network)
  pruned = channel_pruning.prune_graph(graph, 'unit_l1', 50,
                                       graph_pruning.prunable(graph))
  accuracy = evaluator.Evaluator(graph).accuracy(
      mnist_test.images.reshape(len(mnist_test), -1),
      mnist_test.labels, pruned)
  assert row.accuracy == pytest.approx(accuracy, abs=1e-12)
  widths = [int(pruned.node(n.name).params['kernel'].any(axis=0).sum())
            for n in graph.weighted()]
  assert row.units == '-'.join(map(str, widths))
