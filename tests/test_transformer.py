"""Transformer layers: MultiHeadAttention, LayerNormalization on any axis,
GlobalAveragePooling1D/GlobalMaxPooling1D, Embedding, imported exactly, pruned by whole
heads and MLP units, written back as Keras layers; in tf_keras and Keras 3.

Each model has random weights (biases and norms too, so a misread one
changes the outputs).
"""

import numpy as np
import pytest

import tfprune
from tfprune.errors import TfpruneError
from tfprune.graph import groups
from tfprune.keras_compat import keras_module

FRAMEWORKS = ('tf_keras', 'keras3')
HEADS = 4


def encoder(K):
  """A pre-norm encoder block on (6, 8) tokens, 4 heads, then a classifier."""
  i = K.Input((6, 8))
  x = K.layers.Dense(8, name='embed')(i)
  y = K.layers.LayerNormalization(name='norm1')(x)
  y = K.layers.MultiHeadAttention(HEADS, 3, name='mha')(y, y)
  x = K.layers.Add()([x, y])
  y = K.layers.LayerNormalization(name='norm2')(x)
  y = K.layers.Dense(16, activation='gelu', name='mlp1')(y)
  y = K.layers.Dense(8, name='mlp2')(y)
  x = K.layers.Add()([x, y])
  x = K.layers.GlobalAveragePooling1D()(x)
  return K.Model(i, K.layers.Dense(5, activation='softmax')(x))


def cross(K):
  """Cross-attention: a key apart from the value, other sizes, no biases,
  a causal mask, an output width of its own; LayerNorm over the steps."""
  i = K.Input((6, 8))
  q = K.layers.Dense(10, activation='relu')(i)
  kv = K.layers.Reshape((4, 12))(i)
  key = K.layers.Dense(9)(kv)
  y = K.layers.MultiHeadAttention(HEADS, 3, value_dim=5, use_bias=False,
                                  output_shape=7, name='mha')(
                                      q, kv, key=key, use_causal_mask=True)
  y = K.layers.LayerNormalization(axis=1)(y)
  y = K.layers.GlobalMaxPooling1D()(y)
  return K.Model(i, K.layers.Dense(3)(y))


def masked(K):
  """An attention_mask computed by a layer (non-binary values: tf_keras adds
  -1e9 * (1 - mask), Keras 3 masks where it is non-zero); LayerNorm over
  steps and features."""
  i = K.Input((6, 8))
  mask = K.layers.Dense(6, activation='relu')(i)
  y = K.layers.MultiHeadAttention(HEADS, 2, name='mha')(i, i,
                                                        attention_mask=mask)
  y = K.layers.LayerNormalization(axis=[1, 2])(y)
  y = K.layers.Flatten()(y)
  return K.Model(i, K.layers.Dense(3, activation='softmax')(y))


MODELS = {'encoder': encoder, 'cross': cross, 'masked': masked}


def _randomized(make, framework: str, seed: int = 0):
  model = make(keras_module(framework))
  rng = np.random.default_rng(seed)
  for w in model.weights:
    w.assign(rng.normal(0.0, 0.5, w.shape).astype(np.float32))
  return model


def _inputs(n: int, seed: int) -> np.ndarray:
  return np.random.default_rng(seed).standard_normal((n, 6, 8)).astype(np.float32)


def _close(ours, theirs):
  # Removed heads and units change the float32 summation order of the
  # products they no longer add: equal to round-off of the outputs' scale.
  np.testing.assert_allclose(ours, theirs, rtol=1e-5,
                             atol=1e-5 * np.abs(theirs).max())


@pytest.mark.parametrize('framework', FRAMEWORKS)
@pytest.mark.parametrize('name', sorted(MODELS))
def test_import_equals_keras_on_two_batches(name, framework):
  model = _randomized(MODELS[name], framework)
  graph = tfprune.from_keras(model)
  for seed in (1, 2):
    x = _inputs(32, seed)
    _close(tfprune.predict(graph, x), np.asarray(model(x, training=False)))


@pytest.mark.parametrize('framework', FRAMEWORKS)
@pytest.mark.parametrize('name', sorted(MODELS))
@pytest.mark.parametrize('method,k', [('weight', 50), ('unit', 30)])
def test_pruned_compacted_exported_predict_alike(name, framework, method, k):
  graph = tfprune.from_keras(_randomized(MODELS[name], framework))
  pruned = tfprune.prune(graph, method, k)
  compacted = tfprune.compact(pruned)
  exported = tfprune.to_keras(compacted)
  x = _inputs(32, 3)
  expected = tfprune.predict(pruned, x)
  assert not np.allclose(expected, tfprune.predict(graph, x))  # it pruned
  _close(tfprune.predict(compacted, x), expected)
  _close(np.asarray(exported(x, training=False)), expected)
  if method == 'weight':  # every kernel but the output layer's, attention too
    for node in pruned.weighted()[:-1]:
      kernel = node.params['kernel']
      assert int((kernel == 0).sum()) == kernel.size // 2, node.name
    assert {'mha_query', 'mha_key', 'mha_value', 'mha'} <= {
        n.name for n in pruned.weighted()[:-1]}


@pytest.mark.parametrize('framework', FRAMEWORKS)
@pytest.mark.parametrize('name', sorted(MODELS))
def test_unit_pruning_removes_whole_heads(name, framework):
  graph = tfprune.from_keras(_randomized(MODELS[name], framework))
  heads = groups.analyse(graph).group('mha_query')
  assert heads.size == HEADS and heads.refused is None
  pruned = tfprune.prune(graph, 'unit', 30)  # floor(0.3 * 4) = 1 head
  exported = tfprune.to_keras(tfprune.compact(pruned))
  assert exported.get_layer('mha').get_config()['num_heads'] == HEADS - 1
  # The removed head's query, key and value columns are all zero, and it is
  # the one of least L2 norm.
  query = pruned.node('mha_query').params['kernel']
  key_dim = graph.node('mha_core').attrs['key_dim']
  per_head = query.reshape(query.shape[0], HEADS, key_dim)
  gone = [h for h in range(HEADS) if not per_head[:, h].any()]
  assert len(gone) == 1
  def norm(h):
    kernels = (graph.node(f'mha_{p}').params['kernel'] for p in
               ('query', 'key', 'value'))
    return sum(float(np.sum(w.reshape(w.shape[0], HEADS, -1)[:, h] ** 2))
               for w in kernels)
  norms = [norm(h) for h in range(HEADS)]
  assert norms[gone[0]] < min(n for h, n in enumerate(norms) if h != gone[0])


@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_residual_stream_through_layer_norm_is_kept_and_named(framework):
  graph = tfprune.from_keras(_randomized(encoder, framework))
  analysis = groups.analyse(graph)
  stream = analysis.group('embed')
  assert {'embed', 'mha', 'mlp2'} <= set(stream.producers)
  assert 'norm1 (layer_norm) normalises over the channels' in stream.refused
  assert analysis.group('mlp1').refused is None


def _gated(K):
  i = K.Input((6, 8))
  return K.Model(i, K.layers.MultiHeadAttention(2, 4, use_gate=True)(i, i))


def _over_images(K):
  i = K.Input((4, 4, 8))
  return K.Model(i, K.layers.MultiHeadAttention(2, 4, attention_axes=(1, 2))(i, i))


@pytest.mark.parametrize('make,framework,match', [
    (_gated, 'keras3', 'use_gate=True is not supported'),
    (_over_images, 'keras3', 'attention_axes'),
    (_over_images, 'tf_keras', 'attention_axes'),
])
def test_unsupported_attention_is_refused_in_one_line(make, framework, match):
  with pytest.raises(TfpruneError, match=match) as e:
    tfprune.from_keras(make(keras_module(framework)))
  assert '\n' not in str(e.value)


def text_classifier(K):
  """Token ids -> Embedding -> an encoder block -> pooled classifier."""
  i = K.Input((7,), dtype='int32')
  x = K.layers.Embedding(20, 8, name='embed')(i)
  y = K.layers.MultiHeadAttention(HEADS, 2, name='mha')(x, x)
  x = K.layers.LayerNormalization()(K.layers.Add()([x, y]))
  x = K.layers.Dense(12, activation='relu', name='mlp1')(x)
  x = K.layers.GlobalMaxPooling1D()(x)
  return K.Model(i, K.layers.Dense(3, activation='softmax')(x))


@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_embedding_text_classifier(framework):
  model = _randomized(text_classifier, framework)
  graph = tfprune.from_keras(model)
  rng = np.random.default_rng(4)
  for _ in range(2):
    ids = rng.integers(0, 20, (32, 7)).astype(np.float32)
    _close(tfprune.predict(graph, ids), np.asarray(model(ids.astype(np.int32))))
  for method, k in (('weight', 50), ('unit', 30)):
    pruned = tfprune.prune(graph, method, k)
    compacted = tfprune.compact(pruned)
    expected = tfprune.predict(pruned, ids)
    _close(tfprune.predict(compacted, ids), expected)
    _close(np.asarray(tfprune.to_keras(compacted)(ids)), expected)
  table = tfprune.prune(graph, 'weight', 50).node('embed').params['kernel']
  assert int((table == 0).sum()) == table.size // 2


def test_embedding_mask_zero_is_refused_in_one_line():
  K = keras_module('keras3')
  i = K.Input((5,), dtype='int32')
  x = K.layers.Embedding(10, 4, mask_zero=True)(i)
  model = K.Model(i, K.layers.GlobalAveragePooling1D()(x))
  with pytest.raises(TfpruneError, match='mask_zero=True') as e:
    tfprune.from_keras(model)
  assert '\n' not in str(e.value)
