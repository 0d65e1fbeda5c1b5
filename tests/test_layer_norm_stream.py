"""Channels through LayerNormalization pruned as one group (`prune_layer_norm`).

With the option on, the residual stream of a Transformer (embedding,
attention output projections, MLP second Dense layers, every layer norm on
the way, the readers' rows) and the channels of a conv net with
LayerNormalization after each conv are pruned exactly: the masked layer
norm normalises over the kept channels and outputs 0 on the removed ones,
and the compacted graph (a smaller plain LayerNormalization), its `to_keras`
model and the masked graph predict alike, in tf_keras and Keras 3. Off (the
default), every mask is what it was: the stream is kept. A token
Embedding writes the stream like a patch embedding.
"""

import json

import numpy as np
import pytest

from tests import helpers
from tests import keras_zoo
from tfprune import api
from tfprune.criteria import importances
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import groups
from tfprune.graph.ops import normalization
from tfprune.transforms import channel_pruning
from tfprune.transforms import graph_compaction

MASK = normalization.CHANNEL_MASK
K_UNIT = 30
# Removing channels changes the float32 summation order of the products
# they no longer add: equal to round-off of the outputs' scale.
RTOL = 1e-5


def _graph(name: str, framework: str):
  """Model `name` of `keras_zoo.STREAMS` with every weight random (biases
  too, so a removed channel carries a non-zero constant), and its graph."""
  model = keras_zoo.build(name, framework)
  rng = np.random.default_rng(7)
  model.set_weights([rng.normal(0.0, 0.4, w.shape).astype(np.float32)
                     for w in model.get_weights()])
  return model, api.from_keras(model)


def _batch(graph, seed: int) -> np.ndarray:
  return np.random.default_rng(seed).standard_normal(
      (16, *graph.input_shape)).astype(np.float32)


def _close(ours, theirs):
  scale = float(np.max(np.abs(theirs)))
  np.testing.assert_allclose(ours, theirs, rtol=0, atol=RTOL * max(scale, 1e-6))


def _norm_groups(analysis):
  """The groups whose channels pass a layer norm (their slices of it)."""
  return [g for g in analysis.groups
          if any(s.param == MASK for s in g.slices)]


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('name', sorted(keras_zoo.STREAMS))
def test_stream_pruned_exactly(name, framework, tmp_path):
  model, graph = _graph(name, framework)
  for seed in (1, 2):  # the import is exact to begin with
    x = _batch(graph, seed)
    _close(evaluator.predict(graph, x), np.asarray(model(x, training=False)))
  analysis = groups.analyse(graph, prune_layer_norm=True)
  streams = _norm_groups(analysis)
  assert streams and not any(g.refused for g in streams)
  masked = api.prune(graph, 'unit', K_UNIT, prune_layer_norm=True)
  compacted = api.compact(masked)
  exported = api.to_keras(compacted)
  for g in streams:
    removed = g.size * K_UNIT // 100
    assert removed >= 1
    for s in g.slices:
      if s.param != MASK:
        continue
      mask = masked.node(s.node).params[MASK]
      gone = np.flatnonzero(mask == 0)
      assert len(gone) == removed, s.node
      for param in ('gamma', 'beta'):  # zero on the removed channels
        value = masked.node(s.node).params[param]
        assert not np.moveaxis(value, -1, 0)[gone].any()
      small = compacted.node(s.node)
      assert MASK not in small.params  # a plain layer norm again
      assert small.params['gamma'].shape[-1] == g.size - removed
      out = evaluator.node_outputs(masked, _batch(graph, 1), [s.node])[s.node]
      assert not out[..., gone].any()  # removed outputs exactly 0
      assert out[..., mask == 1].all()
    for producer in g.producers:  # every writer lost them
      assert compacted.shapes[producer][-1] == graph.shapes[producer][-1] - removed
  assert compacted.num_params < graph.num_params
  # Compacting from the removed channels (refusing any that is not constant
  # where read) gives the same graph; a graph file keeps the masks.
  _, direct = graph_compaction.prune_and_compact(graph, 'unit', K_UNIT,
                                                 prune_layer_norm=True)
  reloaded = api.load(api.save(masked, tmp_path / 'masked.npz'))
  for seed in (1, 2):
    x = _batch(graph, seed)
    expected = evaluator.predict(masked, x)
    assert not np.allclose(expected, evaluator.predict(graph, x))  # it pruned
    _close(evaluator.predict(compacted, x), expected)
    _close(evaluator.predict(direct, x), expected)
    _close(np.asarray(exported(x, training=False)), expected)
    np.testing.assert_array_equal(evaluator.predict(reloaded, x), expected)


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_stream_group_holds_every_writer_reader_and_layer_norm(framework):
  _, graph = _graph('small_vit', framework)
  stream, = _norm_groups(groups.analyse(graph, prune_layer_norm=True))
  ops_of = {n.name: n.op for n in graph.nodes}
  role = {(s.node, s.param, s.role) for s in stream.slices}
  norms = [n.name for n in graph.nodes if n.op == 'layer_norm']
  assert len(norms) == 5 and all((n, MASK, groups.CHANNEL) in role for n in norms)
  # Writers: the patch embedding, each attention output projection and each
  # MLP's second Dense (reading the gelu Dense); the depthwise position conv
  # follows the channels.
  second = {n.name for n in graph.nodes if n.op == 'dense' and dict(
      graph.node(n.inputs[0]).attrs.get('activation') or {}).get('fn') == 'gelu'}
  writers = ({graph.weighted()[0].name} | second |
             {graph.consumers(n.name)[0].name for n in graph.nodes
              if n.op == 'attention'})
  assert len(writers) == 5 and set(stream.producers) == writers
  readers = {s.node for s in stream.slices if s.role == groups.CONSUMER}
  # Readers: each block's query, key, value and first MLP Dense, the head.
  assert len(readers) == 2 * 4 + 1 and graph.output in readers
  assert {ops_of[n] for n in readers} == {'dense'}
  assert any(ops_of[s.node] == 'depthwise_conv2d' for s in stream.slices)


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('name', sorted(keras_zoo.STREAMS))
def test_kept_channels_outrank_removed_ones(name, framework):
  _, graph = _graph(name, framework)
  analysis = groups.analyse(graph, prune_layer_norm=True)
  removed = channel_pruning.select(graph, analysis, 'unit', K_UNIT)
  for g in _norm_groups(analysis):
    norms = importances.get('unit')(graph, g)
    gone = removed[g.name]
    kept = np.setdiff1d(np.arange(g.size), gone)
    assert len(gone) == g.size * K_UNIT // 100
    assert norms[kept].min() >= norms[gone].max()


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('name', sorted(keras_zoo.STREAMS))
def test_option_off_keeps_the_stream_and_every_other_mask(name, framework):
  _, graph = _graph(name, framework)
  off = groups.analyse(graph)
  on = groups.analyse(graph, prune_layer_norm=True)
  streams = {g.name for g in _norm_groups(on)}
  assert all('(layer_norm) normalises over the channels' in
             off.group(n).refused for n in streams)
  # The other groups are the same, and so are their masks.
  others = {g.name: g.refused for g in off.groups if g.name not in streams}
  assert others == {g.name: g.refused for g in on.groups
                    if g.name not in streams}
  removed = channel_pruning.select(graph, on, 'unit', K_UNIT)
  expected = channel_pruning.mask(graph, on, {
      k: v for k, v in removed.items() if k not in streams})
  if not [g for g in off.groups if not g.refused]:  # the LN conv net
    with pytest.raises(TfpruneError, match='unit pruning would remove no '
                       'channel'):
      api.prune(graph, 'unit', K_UNIT)
    return
  pruned = api.prune(graph, 'unit', K_UNIT)
  for a, b in zip(pruned.nodes, expected.nodes):
    assert a.params.keys() == b.params.keys(), a.name
    for k in a.params:
      assert np.array_equal(a.params[k], b.params[k]), (a.name, k)
  assert not any(MASK in n.params for n in pruned.nodes)


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_masked_layer_norm_is_refused_by_to_keras_in_one_line(framework):
  _, graph = _graph('layer_norm_conv', framework)
  masked = api.prune(graph, 'unit', K_UNIT, prune_layer_norm=True)
  with pytest.raises(TfpruneError, match=r'layer_normalization\w* \(layer_norm\) '
                     r'normalises over 6 of its 8 channels .*compact the '
                     r'graph first') as info:
    api.to_keras(masked)
  assert '\n' not in str(info.value)


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('name', ['group_norm', 'unet'])
def test_option_changes_nothing_without_layer_norm(name, framework):
  _, graph = keras_zoo.imported(name, framework)
  a = api.prune(graph, 'unit', K_UNIT)
  b = api.prune(graph, 'unit', K_UNIT, prune_layer_norm=True)
  for x, y in zip(a.nodes, b.nodes):
    assert x.params.keys() == y.params.keys()
    assert all(np.array_equal(x.params[k], y.params[k]) for k in x.params)


def _over_steps(K):
  """LayerNormalization over the steps only (its channels follow), then
  over steps and channels (its statistics span both)."""
  i = K.Input((6, 8))
  x = K.layers.Dense(10, activation='relu')(i)
  x = K.layers.LayerNormalization(axis=1)(x)
  x = K.layers.Dense(9)(x)
  x = K.layers.LayerNormalization(axis=[1, 2])(x)
  x = K.layers.Flatten()(x)
  return K.Model(i, K.layers.Dense(3)(x))


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_layer_norm_on_other_axes(framework):
  model = _over_steps(keras_zoo.keras_module(framework))
  rng = np.random.default_rng(3)
  model.set_weights([rng.normal(0.0, 0.4, w.shape).astype(np.float32)
                     for w in model.get_weights()])
  graph = api.from_keras(model)
  first, second = (n.name for n in graph.weighted()[:2])
  off = groups.analyse(graph)
  assert not off.group(first).refused  # over the steps: the channels follow
  assert 'normalises over the channels' in off.group(second).refused
  masked = api.prune(graph, 'unit', K_UNIT, prune_layer_norm=True)
  norm = next(n for n in masked.nodes if n.op == 'layer_norm'
              and len(n.attrs['axes']) == 2)
  assert int((norm.params[MASK] == 0).sum()) == 9 * K_UNIT // 100
  assert MASK not in masked.node(graph.node(first).name).params
  compacted = api.compact(masked)
  assert compacted.node(norm.name).params['gamma'].shape == (6, 7)
  exported = api.to_keras(compacted)
  for seed in (1, 2):
    x = _batch(graph, seed)
    expected = evaluator.predict(masked, x)
    _close(evaluator.predict(compacted, x), expected)
    _close(np.asarray(exported(x, training=False)), expected)


def test_a_channel_mask_of_other_values_is_refused():
  _, graph = _graph('layer_norm_conv', 'keras3')
  norm = next(n for n in graph.nodes if n.op == 'layer_norm')
  with pytest.raises(TfpruneError, match='holds 1 .kept. or 0'):
    graph.with_params({norm.name: {MASK: np.full(8, 0.5)}})
  with pytest.raises(TfpruneError, match='does not fit the channels'):
    graph.with_params({norm.name: {MASK: np.ones(7)}})


def test_sweep_option_from_the_command_line(tmp_path, capsys):
  model, graph = _graph('encoder_block', 'keras3')
  model.save(tmp_path / 'm.keras')
  rng = np.random.default_rng(0)
  x, y = rng.standard_normal((64, 6, 8)).astype(np.float32), rng.integers(0, 4, 64)
  np.savez(tmp_path / 'd.npz', x_test=x, y_test=y)
  results = {}
  for option in ('--prune_layer_norm', '--noprune_layer_norm'):
    out_dir = tmp_path / option
    code, _, err = helpers.run_main(
        'sweep', f'--model_file={tmp_path / "m.keras"}',
        f'--data={tmp_path / "d.npz"}', '--methods=unit', '--levels=0,30',
        option, '--save_keras', f'--out_dir={out_dir}', capsys=capsys)
    assert code == 0, err[-20:]
    results[option] = (helpers.read_csv(out_dir / sweep.CSV_NAME),
                       json.loads((out_dir / sweep.CONFIG_NAME).read_text()))
  rows, config = results['--prune_layer_norm']
  assert config['config']['prune_layer_norm'] is True
  assert 'prune_layer_norm' not in results['--noprune_layer_norm'][1]['config']
  pruned = api.prune(graph, 'unit', 30, prune_layer_norm=True)
  want = np.mean(np.argmax(evaluator.predict(pruned, x), axis=1) == y)
  assert rows[1]['accuracy'] == f'{want:.4f}'
  # --save_keras writes the compacted model: smaller layer norms, same outputs.
  saved, = (tmp_path / '--prune_layer_norm' / 'pruned').glob('unit-k30*.keras')
  loaded = keras_zoo.keras_module('keras3').models.load_model(saved)
  norms = [l for l in loaded.layers if type(l).__name__ == 'LayerNormalization']
  assert norms and all(l.get_weights()[0].shape == (7,) for l in norms)
  _close(np.asarray(loaded(x)), evaluator.predict(pruned, x))
  assert int(rows[1]['nonzero_params']) < int(
      results['--noprune_layer_norm'][0][1]['nonzero_params'])


def test_sweep_refuses_the_option_without_a_channel_method(tmp_path):
  with pytest.raises(TfpruneError, match='--prune_layer_norm changes only '
                     'channel criteria'):
    sweep.SweepConfig(weights_dir=None, out_dir=str(tmp_path),
                      model_file='m.keras', data='d.npz', methods=('weight',),
                      prune_layer_norm=True)


def _token_classifier(K):
  """Token ids -> Embedding (the stream's writer) -> attention, residual
  add and LayerNormalization -> pooled classifier."""
  i = K.Input((7,), dtype='int32')
  x = K.layers.Embedding(20, 8)(i)
  x = K.layers.LayerNormalization()(K.layers.Add()([
      x, K.layers.MultiHeadAttention(2, 4)(x, x)]))
  x = K.layers.GlobalMaxPooling1D()(K.layers.Dense(12, activation='relu')(x))
  return K.Model(i, K.layers.Dense(3)(x))


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_token_embedding_writes_the_stream(framework):
  model = _token_classifier(keras_zoo.keras_module(framework))
  rng = np.random.default_rng(5)
  model.set_weights([rng.normal(0.0, 0.4, w.shape).astype(np.float32)
                     for w in model.get_weights()])
  graph = api.from_keras(model)
  embedding = next(n.name for n in graph.nodes if n.op == 'embedding')
  stream = groups.analyse(graph, prune_layer_norm=True).group(embedding)
  assert not stream.refused and stream.size == 8
  masked = api.prune(graph, 'unit', K_UNIT, prune_layer_norm=True)
  compacted = api.compact(masked)
  assert compacted.node(embedding).params['kernel'].shape == (20, 6)
  exported = api.to_keras(compacted)
  for seed in (1, 2):
    ids = np.random.default_rng(seed).integers(0, 20, (16, 7))
    expected = evaluator.predict(masked, ids.astype(np.float32))
    _close(evaluator.predict(compacted, ids.astype(np.float32)), expected)
    _close(np.asarray(exported(ids.astype(np.int32))), expected)
