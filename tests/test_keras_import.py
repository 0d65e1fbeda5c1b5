"""The importer: every model exact (equal to Keras) or refused in one line.

Parameterized over both frameworks (tf_keras and Keras 3), the seven ordinary
models of `keras_zoo`, its small variations and its nested models (flattened;
more in `test_keras_nested`); a graph that would misread a
layer (an activation or a batch norm computed differently) must be refused,
naming the layer.
"""


import numpy as np
import pytest

from tests import helpers
from tests import keras_zoo
from tfprune.errors import TfpruneError
from tfprune.graph.ops import activations
from tfprune.graph import evaluator
from tfprune.keras_io import build
from tfprune.keras_io import importer
from tfprune.keras_io import layers as layers_lib

EXACT = sorted({**keras_zoo.MODELS, **keras_zoo.VARIATIONS, **keras_zoo.NESTED})


def _inputs(model, n=12, seed=1):
  shape = tuple(model.inputs[0].shape[1:])
  return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


def _keras(model, x):
  return np.asarray(model(x, training=False))


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('name', EXACT)
def test_import_equals_keras(name, framework):
  model, graph = keras_zoo.imported(name, framework)
  x = _inputs(model)
  helpers.assert_same_up_to_rounding(evaluator.predict(graph, x),
                                     _keras(model, x))
  assert graph.metadata['framework'] == framework
  assert graph.input_shape == tuple(model.inputs[0].shape[1:])
  for node in graph.nodes[1:]:
    if node.name in [l.name for l in model.layers]:
      keras_shape = tuple(model.get_layer(node.name).output.shape[1:])
      assert graph.shapes[node.name] == keras_shape, node.name


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('target', build.FRAMEWORKS)
@pytest.mark.parametrize('name', EXACT)
def test_to_keras_predicts_like_the_model(name, framework, target):
  model, graph = keras_zoo.imported(name, framework)
  rebuilt = build.to_keras(graph, target)
  assert type(rebuilt).__module__.startswith(
      'keras.' if target == 'keras3' else 'tf_keras')
  x = _inputs(model)
  helpers.assert_same_up_to_rounding(_keras(rebuilt, x),
                                     _keras(model, x))
  # And the rebuilt model imports to the same graph again.
  again = importer.from_keras(rebuilt)
  assert [n.op for n in again.nodes] == [n.op for n in graph.nodes]


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_subclassed_model_refused_in_one_line(framework):
  model = keras_zoo.build('subclassed', framework)
  with pytest.raises(TfpruneError, match='subclassed') as info:
    importer.from_keras(model)
  assert '\n' not in str(info.value)


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_misread_activation_is_refused_naming_the_layer(framework, monkeypatch):
  model = keras_zoo.build('dense_tanh', framework)
  importer.from_keras(model)
  monkeypatch.setitem(activations.FUNCTIONS, 'tanh', lambda x, a: x)
  with pytest.raises(TfpruneError, match=r'layer dense\w* \(dense\)') as info:
    importer.from_keras(model)
  assert 'does not compute' in str(info.value) and '\n' not in str(info.value)


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_misread_batch_norm_is_refused_naming_the_layer(framework, monkeypatch):
  model = keras_zoo.build('conv_relu_bn', framework)
  original = layers_lib.LAYERS['BatchNormalization']

  def swapped(call):  # reads gamma as beta and beta as gamma
    node = original(call)[0]
    return [node.replace(params={'gamma': node.params['beta'],
                                 'beta': node.params['gamma']})]
  monkeypatch.setitem(layers_lib.LAYERS, 'BatchNormalization', swapped)
  with pytest.raises(TfpruneError, match=r'batch_normalization\w* \(batch_norm\)'):
    importer.from_keras(model)


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('make, match', [
    (lambda K: K.Sequential([K.Input((8, 3)), K.layers.SimpleRNN(2),
                             K.layers.Dense(2)]),
     r'layer simple_rnn\w* \(SimpleRNN\) cannot be imported: SimpleRNN is not '
     r'supported; supported layers: .*Conv2D'),
    (lambda K: K.Sequential([K.Input((8, 3)), K.layers.Bidirectional(
        K.layers.SimpleRNN(2)), K.layers.Dense(2)]),
     r'\(Bidirectional\) cannot be imported: it wraps SimpleRNN and SimpleRNN: '
     r'only LSTM or GRU both ways is supported'),
    (lambda K: K.Sequential([K.Input((8, 3)), K.layers.Conv1D(
        2, 3, padding='causal'), K.layers.Flatten(), K.layers.Dense(2)]),
     r"padding 'causal' is not supported"),
    (lambda K: K.Sequential([K.Input((6, 6, 4)), K.layers.UpSampling2D(
        interpolation='bilinear'), K.layers.Flatten(), K.layers.Dense(2)]),
     r"interpolation 'bilinear' is not supported"),
    (lambda K: K.Sequential([K.Input((None, None, 3)), K.layers.Conv2D(2, 3),
                             K.layers.GlobalAveragePooling2D(),
                             K.layers.Dense(2)]), r'unknown sizes'),
])
def test_unsupported_is_refused_in_one_line(framework, make, match):
  K = keras_zoo.keras_module(framework)
  with pytest.raises(TfpruneError, match=match) as info:
    importer.from_keras(make(K))
  assert '\n' not in str(info.value)


def test_shared_layer_refused():
  K = keras_zoo.keras_module('keras3')
  dense = K.layers.Dense(4)
  i = K.Input((4,))
  model = K.Model(i, dense(dense(i)))
  with pytest.raises(TfpruneError, match='called more than once'):
    importer.from_keras(model)


def test_user_data_is_checked_too():
  model = keras_zoo.build('cnn', 'keras3')
  x = np.random.default_rng(0).uniform(0, 255, (4, 12, 12, 3)).astype(np.float32)
  graph = importer.from_keras(model, data=x)
  helpers.assert_same_up_to_rounding(evaluator.predict(graph, x),
                                     _keras(model, x))
