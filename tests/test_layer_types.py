"""The layer types of issue 21, each one op definition: imported exactly,
pruned, compacted and written back to Keras, in tf_keras and Keras 3.

Every model of `keras_zoo.LAYER_TYPES` (operators between layers, Conv1D
with 1-D pooling, a U-Net with Conv2DTranspose/UpSampling2D/Concatenate,
grouped convolutions, GroupNormalization, Cropping2D/Permute/Reshape and
the newer activations, GRU and LSTM) must equal Keras on two batches; weight pruning at
50% and unit pruning at 30%, compacted and exported with `to_keras`, must
predict what the pruned graph predicts. Tolerances are relative to the
output's scale (float32 round-off of a different summation order).
"""

import dataclasses

import numpy as np
import pytest

from tests import keras_zoo
from tfprune import api
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import groups
from tfprune.graph import ops
from tfprune.keras_io import importer

PRUNED = sorted(set(keras_zoo.LAYER_TYPES) - {'layer_norm_conv'})
# Float32 round-off, relative to the largest output.
RTOL = 1e-5


def _batch(graph, seed):
  return np.random.default_rng(seed).standard_normal(
      (6, *graph.input_shape)).astype(np.float32)


def _close(ours, theirs):
  scale = float(np.max(np.abs(theirs)))
  np.testing.assert_allclose(ours, theirs, rtol=0, atol=RTOL * max(scale, 1e-6))


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('name', sorted(keras_zoo.LAYER_TYPES))
def test_import_equals_keras_on_two_batches(name, framework):
  model, graph = keras_zoo.imported(name, framework)
  for seed in (1, 2):
    x = _batch(graph, seed)
    _close(evaluator.predict(graph, x), np.asarray(model(x, training=False)))


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('method, k', [('weight', 50), ('unit', 30)])
@pytest.mark.parametrize('name', PRUNED)
def test_pruned_compacted_exported_predict_the_pruned_graph(name, method, k,
                                                             framework):
  _, graph = keras_zoo.imported(name, framework)
  pruned = api.prune(graph, method, k)
  compacted = api.compact(pruned)
  exported = api.to_keras(compacted)
  x = _batch(graph, 3)
  expected = evaluator.predict(pruned, x)
  _close(evaluator.predict(compacted, x), expected)
  _close(np.asarray(exported(x, training=False)), expected)
  if method == 'weight':  # every pruned kernel holds at least k% zeros
    output = graph.output
    for node in pruned.weighted():
      if node.name != output:
        kernel = node.params['kernel']
        assert np.sum(kernel == 0) >= int(kernel.size * k / 100)
  else:  # channels were removed, and the output kept its width
    assert compacted.num_params < graph.num_params
    assert compacted.output_shape == graph.output_shape


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_add_of_two_dense_layers_imports(framework):
  K = keras_zoo.keras_module(framework)
  i = K.Input((5,))
  model = K.Model(i, K.layers.Dense(3)(K.layers.Dense(4)(i) + K.layers.Dense(4)(i)))
  graph = importer.from_keras(model)
  assert [n.op for n in graph.nodes].count('merge') == 1
  x = _batch(graph, 1)
  _close(evaluator.predict(graph, x), np.asarray(model(x)))


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_constant_array_operand_refused_in_one_line(framework):
  K = keras_zoo.keras_module(framework)
  i = K.Input((4,))
  model = K.Model(i, K.layers.Dense(2)(i * np.arange(4, dtype=np.float32)))
  with pytest.raises(TfpruneError, match='constant array') as info:
    importer.from_keras(model)
  assert '\n' not in str(info.value)


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_group_norm_prunes_whole_groups(framework):
  _, graph = keras_zoo.imported('group_norm', framework)
  analysis = groups.analyse(graph)
  first = analysis.group(graph.weighted()[0].name)
  assert first.size == 4 and not first.refused  # GroupNormalization(4) of 8
  producer = next(s for s in first.slices if s.role == groups.PRODUCER
                  and s.param == 'kernel')
  assert producer.indices.shape == (4, 2)  # two channels per group


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_layer_norm_over_channels_refuses_unit_pruning_in_one_line(framework):
  _, graph = keras_zoo.imported('layer_norm_conv', framework)
  with pytest.raises(TfpruneError, match=r'unit pruning would remove no '
                     r'channel: every channel group is kept \(.*normalises '
                     r'over the channels') as info:
    api.prune(graph, 'unit', 30)
  assert '\n' not in str(info.value)
  pruned = api.prune(graph, 'weight', 50)  # weights still prune
  assert pruned.num_params == graph.num_params


def test_op_without_channel_rule_keeps_only_its_channels(monkeypatch):
  _, graph = keras_zoo.imported('unet', 'keras3')
  before = {g.name: g.refused for g in groups.analyse(graph).groups}
  monkeypatch.setitem(ops.OPS, 'upsample2d', dataclasses.replace(
      ops.OPS['upsample2d'], channels=None))
  after = {g.name: g.refused for g in groups.analyse(graph).groups}
  upsampled = graph.node(graph.node(next(
      n.name for n in graph.nodes if n.op == 'upsample2d')).inputs[0]).name
  assert 'has no channel rule' in after[upsampled]
  assert before[upsampled] is None
  assert {k: v for k, v in after.items() if k != upsampled} == {
      k: v for k, v in before.items() if k != upsampled}


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_recurrent_units_are_kept_and_named(framework):
  _, graph = keras_zoo.imported('recurrent', framework)
  lstm = next(n.name for n in graph.nodes if n.op == 'lstm')
  with pytest.raises(TfpruneError, match=f'no channel group holds {lstm}'):
    api.prune(graph, 'unit', 30, [lstm])
  hidden = graph.weighted()[-2].name  # the Dense after the LSTM: prunable
  assert not groups.analyse(graph).group(hidden).refused


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_normalization_writes_back(framework):
  K = keras_zoo.keras_module(framework)
  i = K.Input((5, 5, 3))
  norm = K.layers.Normalization(axis=-1)
  x = norm(K.layers.Rescaling(1 / 255.0, offset=-0.5)(i))
  model = K.Model(i, K.layers.Conv2D(2, 3)(x))
  norm.adapt(np.random.default_rng(0).uniform(0, 255, (8, 5, 5, 3)))
  graph = importer.from_keras(model)
  x = np.random.default_rng(1).uniform(0, 255, (4, 5, 5, 3)).astype(np.float32)
  _close(np.asarray(api.to_keras(graph)(x)), np.asarray(model(x)))


def test_failed_load_keeps_the_whole_message(tmp_path):
  K = keras_zoo.keras_module('keras3')
  i = K.Input((3,))
  model = K.Model(i, K.layers.Lambda(lambda t: t * 2)(i))
  path = tmp_path / 'lambda.keras'
  model.save(path)
  with pytest.raises(TfpruneError) as info:
    importer.from_keras(path)
  message = str(info.value)
  assert '\n' not in message
  assert not message.split(': save it again')[0].endswith(('is not', 'not:'))
