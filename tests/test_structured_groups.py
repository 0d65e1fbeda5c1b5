"""Structured pruning that removes channels: groups, exact counts, compacted == masked.

Parameterized over architectures (MLP, conv-BN-ReLU, concat, residual,
MobileNetV2 alpha 0.35, ResNet-18 width 0.25) and levels: every group but the
output's is pruned, exactly floor(k*m/100) channels of each, the compacted
graph computes the masked one's outputs, and its `.keras` file loads in a
fresh process with plain Keras, with smaller layers and the same predictions
(MobileNetV2's file stood for by its miniature, the same layers in fewer).
The sweep's `--save_keras` writes such a file end to end.
"""

import csv
import json

import numpy as np
import pytest

from tests import helpers
from tests import keras_zoo
from tfprune.criteria import graph_pruning
from tfprune.criteria import importances
from tfprune.criteria import pruning
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import ops
from tfprune.graph.ir import Graph
from tfprune.graph.ir import Node
from tfprune.keras_io import build
from tfprune.keras_io import importer
from tfprune.transforms import channel_pruning
from tfprune.transforms import graph_compaction
from tfprune.graph import groups as groups_lib

ARCHITECTURES = ('mlp', 'conv_bn_relu', 'concat', 'residual', 'mobilenet_v2',
                 'resnet18')
LEVELS = (30, 50, 70)
_GRAPHS = {}


def graph_of(name: str) -> Graph:
  """The imported tf_keras model `name` (ResNet-18 or a zoo model), once a process."""
  if name != 'resnet18':
    return keras_zoo.imported(name, 'tf_keras')[1]
  if name not in _GRAPHS:
    _GRAPHS[name] = importer.from_keras(helpers.resnet18((32, 32, 3), width=0.25))
  return _GRAPHS[name]


def _inputs(graph, n=16, seed=1):
  return np.random.default_rng(seed).standard_normal(
      (n, *graph.input_shape)).astype(np.float32)


@pytest.mark.parametrize('name', ARCHITECTURES)
def test_every_layer_but_the_output_is_in_a_pruned_group(name):
  graph = graph_of(name)
  analysis = groups_lib.analyse(graph)
  refused = [g for g in analysis.groups if g.refused]
  assert [g.refused for g in refused] == [f'{graph.output} is the network output'] or (
      len(refused) == 1 and 'network output' in refused[0].refused)
  covered = {n for g in analysis.groups if not g.refused for n in g.nodes}
  assert covered == set(graph_pruning.prunable(graph))


@pytest.mark.parametrize('k', LEVELS)
@pytest.mark.parametrize('name', ARCHITECTURES)
def test_exact_counts_and_compacted_equals_masked(name, k):
  graph = graph_of(name)
  analysis = groups_lib.analyse(graph)
  removed = channel_pruning.select(graph, analysis, 'unit', k)
  masked = channel_pruning.mask(graph, analysis, removed)
  small = graph_compaction.compact(graph, analysis, removed)
  for group in analysis.groups:
    if group.refused:
      assert group.name not in removed
      continue
    count = min(pruning.prune_count(k, group.size), group.size - 1)
    assert len(removed[group.name]) == count
    for s in group.slices:  # every slice lost exactly its channels' entries
      before = graph.node(s.node).params[s.param].shape[s.axis]
      after = small.node(s.node).params[s.param].shape[s.axis]
      lost = sum(s2.indices[removed[g.name]].size for g in analysis.groups
                 if g.name in removed for s2 in g.slices
                 if (s2.node, s2.param, s2.axis) == (s.node, s.param, s.axis))
      assert before - after == lost
  x = _inputs(graph)
  helpers.assert_same_up_to_rounding(evaluator.predict(small, x),
                                     evaluator.predict(masked, x))
  assert small.num_params < graph.num_params


def test_unit_on_a_dense_chain_is_the_column_l2_rule():
  graph = graph_of('mlp')
  names = graph_pruning.prunable(graph)
  for k in (0, 30, 50, 70, 90, 99):  # at k = 100 a group keeps one channel
    coupled = channel_pruning.prune_graph(graph, 'unit', k, names)
    per_layer = graph_pruning.prune(graph, 'unit', k, names)
    for a, b in zip(coupled.nodes, per_layer.nodes):
      for param in a.params:
        np.testing.assert_array_equal(a.params[param], b.params[param])


def test_residual_add_couples_its_producers():
  graph = graph_of('resnet18')
  analysis = groups_lib.analyse(graph)
  stem = analysis.group('conv_stem')
  assert stem.producers == ('conv_stem', 'stage1_block1_conv2',
                            'stage1_block2_conv2')
  assert stem.silence  # it feeds 'same' 3x3 convs: masked channels output 0
  masked = channel_pruning.prune(graph, 'unit', 50)
  for producer in stem.producers:
    kernel = masked.node(producer).params['kernel']
    assert (~kernel.any(axis=(0, 1, 2))).sum() == 8


def test_concat_maps_each_input_to_its_slice():
  graph = graph_of('concat')
  analysis = groups_lib.analyse(graph)
  a, b, c = analysis.groups[:3]  # Keras numbers layer names per process
  consumer = {s.node: s for s in a.slices + b.slices if s.role == 'consumer'}
  assert list(consumer) == [c.name]
  rows = [s.indices.ravel().tolist() for s in (a.slices + b.slices)
          if s.role == 'consumer']
  assert rows == [[0, 1, 2, 3], [4, 5, 6, 7, 8, 9]]


def test_importances_and_levels():
  graph = graph_of('conv_bn_relu')
  group = groups_lib.analyse(graph).groups[0]
  conv, norm, _, _, head = graph.nodes[1:]
  gamma = norm.params['gamma']
  np.testing.assert_allclose(importances.get('unit_bn')(graph, group), np.abs(gamma))
  kernel = conv.params['kernel'].astype(np.float64)
  following = head.params['kernel']
  np.testing.assert_allclose(
      importances.get('unit_l1')(graph, group),
      np.abs(kernel).sum(axis=(0, 1, 2)) + np.abs(following).sum(axis=1))
  # filter_l1: the filters alone (Li et al.), not the rows they feed.
  np.testing.assert_allclose(importances.get('filter_l1')(graph, group),
                             np.abs(kernel).sum(axis=(0, 1, 2)))
  assert channel_pruning.lowest(np.array([2.0, 1.0, 1.0, 3.0]), 50).tolist() == [1, 2]
  assert channel_pruning.lowest(np.array([1.0, 1.0, 1.0]), 100).tolist() == [0, 1]
  with pytest.raises(TfpruneError, match='unknown pruning method'):
    channel_pruning.select(graph, groups_lib.analyse(graph), 'nope', 50)
  with pytest.raises(TfpruneError, match='k must be in'):
    channel_pruning.select(graph, groups_lib.analyse(graph), 'unit', 120)


def test_channel_mixing_ops_are_refused_naming_the_node():
  dense = lambda name, src, n: Node(name, 'dense', [src], {'activation': ops.LINEAR},
                                    {'kernel': np.ones((4, n))})
  nodes = [Node('x', 'input'), dense('d1', 'x', 4),
           Node('norm', 'layer_norm', ['d1'], {'axes': (0,), 'epsilon': 1e-3}),
           dense('d2', 'norm', 3)]
  analysis = groups_lib.analyse(Graph(nodes, 'd2', (4,)))
  assert analysis.group('d1').refused == (
      'norm (layer_norm) normalises over the channels (set prune_layer_norm '
      'to prune them)')
  # Nothing could be removed: said in one line, not a silent no-op.
  with pytest.raises(TfpruneError, match=r'would remove no channel: every '
                     r'channel group is kept \(d1: norm \(layer_norm\) '
                     r'normalises over the channels'):
    channel_pruning.select(Graph(nodes, 'd2', (4,)), analysis, 'unit', 50)


# Loading a file in plain Keras depends on its layers' classes and
# configurations, not on how many there are: MobileNetV2's compacted file
# (156 layers, the most expensive to load) is stood for by the zoo's
# `inverted_residual`, whose compacted file has exactly MobileNetV2's layer
# classes and configurations. ResNet-18 stays: its batch norms' epsilon and
# its strided 'same' 1x1 shortcuts occur in no other architecture.
FRESH = tuple(n for n in ARCHITECTURES if n != 'mobilenet_v2') + (
    'inverted_residual',)


@pytest.fixture(scope='module')
def fresh_loads(tmp_path_factory):
  """Each `FRESH` model's unit-50 compacted `.keras` in both frameworks, loaded
  by plain Keras in a fresh interpreter (one per framework), with what tfprune
  computes for the masked graph on the same inputs."""
  folder = tmp_path_factory.mktemp('fresh')
  cases, jobs = {}, {'tf_keras': [], 'keras3': []}
  for name in FRESH:
    graph = graph_of(name)
    masked, small = graph_compaction.prune_and_compact(graph, 'unit', 50)
    x = _inputs(graph)
    np.save(folder / f'{name}-x.npy', x)
    for framework in jobs:
      path = folder / f'{name}-{framework}.keras'
      build.to_keras(small, framework).save(path)
      jobs[framework].append((name, path, folder / f'{name}-x.npy'))
    cases[name] = (graph, small, evaluator.predict(masked, x))
  return cases, {framework: helpers.load_in_fresh_process(framework, todo)
                 for framework, todo in jobs.items()}


@pytest.mark.parametrize('framework', ['tf_keras', 'keras3'])
@pytest.mark.parametrize('name', FRESH)
def test_compacted_keras_file_loads_without_tfprune(name, framework, fresh_loads):
  cases, loads = fresh_loads
  graph, small, expected = cases[name]
  assert not loads[framework]['tfprune_imported']
  loaded = loads[framework]['models'][name]
  assert not any('tfprune' in module for module in loaded['layer_modules'])
  helpers.assert_same_up_to_rounding(np.array(loaded['outputs'], np.float32),
                                     expected)
  shapes = loaded['shapes']
  assert loaded['params'] == small.num_params < graph.num_params
  for node in small.weighted():  # the smaller shapes, layer by layer
    layer = node.name if node.name in shapes else f'{node.name}_preact'
    assert shapes[layer] == [list(a.shape) for a in node.params.values()]


# MobileNetV2 goes to TFLite through the sweep's --save_keras file in
# tests/test_graph_tflite.py (one conversion of it costs about 20 s).
@pytest.mark.parametrize('name', ['concat', 'residual'])
def test_compacted_model_converts_to_tflite(name):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  graph = graph_of(name)
  masked, small = graph_compaction.prune_and_compact(graph, 'unit', 50)
  model = build.to_keras(small, 'tf_keras')
  interpreter = tf.lite.Interpreter(
      model_content=tf.lite.TFLiteConverter.from_keras_model(model).convert())
  interpreter.allocate_tensors()
  x = _inputs(graph, n=1)
  interpreter.set_tensor(interpreter.get_input_details()[0]['index'], x)
  interpreter.invoke()
  out = interpreter.get_tensor(interpreter.get_output_details()[0]['index'])
  # TFLite's own kernels: 1e-4 of the outputs' scale.
  helpers.assert_same_up_to_rounding(out,
                                     evaluator.predict(masked, x), rel=1e-4)


def test_sweep_save_keras_end_to_end(tmp_path, capsys):
  model = keras_zoo.build('residual', 'tf_keras')
  model.save(tmp_path / 'model.keras')
  rng = np.random.default_rng(0)
  x = rng.standard_normal((200, 10, 10, 3)).astype(np.float32)
  y = np.argmax(model.predict(x, verbose=0), axis=1)
  np.savez(tmp_path / 'data.npz', x_test=x, y_test=y)
  out_dir = tmp_path / 'out'
  code, _, err = helpers.run_main(
      'sweep', f'--model_file={tmp_path / "model.keras"}',
      f'--data={tmp_path / "data.npz"}', '--methods=unit', '--levels=50',
      '--save_keras', f'--out_dir={out_dir}', capsys=capsys)
  assert code == 0, err[-20:]
  with open(out_dir / 'sweep.csv') as f:
    row = next(csv.DictReader(f))
  saved = out_dir / 'pruned' / 'unit-k50.keras'
  assert json.loads((out_dir / 'sweep_config.json').read_text())['config']['save_keras']
  from tfprune.keras_compat import keras  # pylint: disable=import-outside-toplevel
  pruned = keras.models.load_model(saved)
  assert pruned.count_params() < model.count_params()
  accuracy = np.mean(np.argmax(pruned.predict(x, verbose=0), axis=1) == y)
  assert f'{accuracy:.4f}' == row['accuracy']
