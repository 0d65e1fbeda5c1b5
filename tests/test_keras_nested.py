"""Nested models: flattened into one graph, verified inside, or refused in one line.

Parameterized over both frameworks and the nested models of `keras_zoo`
(a MobileNetV2 backbone in a Sequential and in a functional model, blocks
nested twice with clashing layer names, nested models with two inputs and
two outputs, a Sequential in a Sequential): every layer of every nested model
becomes a node, named by its own name or, where that clashes, by its path;
verification compares the nested models' layers (a misread one is refused,
named); `to_keras` gives back a flat model; the sweep runs on a nested
`.keras` file end to end, with channel groups coupled through the nested
blocks.
"""

import numpy as np
import pytest

from tests import helpers
from tests import keras_zoo
from tfprune.criteria import graph_pruning
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.keras_io import build
from tfprune.keras_io import importer
from tfprune.keras_io import layers as layers_lib
from tfprune.keras_io import trace
from tfprune.keras_io import verify

NESTED = sorted(keras_zoo.NESTED)
WEIGHTED = ('Dense', 'Conv2D', 'DepthwiseConv2D', 'SeparableConv2D')
# twice_nested: every block layer name occurs in both blocks, so each is
# named by its path; the outer classifier keeps its own name.
TWICE_NESTED_KERNELS = [f'stage.block_{b}.{layer}' for b in 'ab'
                        for layer in ('conv', 'depthwise', 'project')]


def _leaves(model):
  """The layers of `model` and of its nested models, nested models left out."""
  out = []
  for layer in model.layers:
    if hasattr(layer, 'layers') and getattr(layer, 'inputs', None):
      out.extend(_leaves(layer))
    else:
      out.append(layer)
  return out


def _inputs(graph, n=6, seed=3):
  return np.random.default_rng(seed).standard_normal(
      (n, *graph.input_shape)).astype(np.float32)


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('name', NESTED)
def test_every_inner_layer_is_a_node(name, framework):
  model, graph = keras_zoo.imported(name, framework)
  leaves = _leaves(model)
  weighted = [l for l in leaves if type(l).__name__ in WEIGHTED]
  assert len(graph.weighted()) == len(weighted)
  plain = {n.name for n in graph.nodes}
  unique = [l.name for l in leaves if [m.name for m in leaves].count(l.name) == 1
            and type(l).__name__ != 'InputLayer']
  assert set(unique) <= plain  # a layer with a unique name keeps it
  assert not any(hasattr(l, 'layers') for l in build.to_keras(graph).layers)
  x = _inputs(graph)
  helpers.assert_same_up_to_rounding(evaluator.predict(graph, x),
                                     np.asarray(model(x, training=False)))


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_clashing_names_are_paths(framework):
  graph = keras_zoo.imported('twice_nested', framework)[1]
  assert [n.name for n in graph.weighted()] == [*TWICE_NESTED_KERNELS, 'classifier']
  assert {'stage.block_a.bn', 'stage.block_b.add'} <= {n.name for n in graph.nodes}
  rebuilt = build.to_keras(graph)
  assert rebuilt.get_layer('stage.block_b.conv').kernel.shape == (3, 3, 6, 6)


def test_mobilenet_backbone_layers_keep_their_names():
  graph = keras_zoo.imported('mobilenet_in_sequential', 'keras3')[1]
  weighted = [n.name for n in graph.weighted()]
  assert weighted[0] == 'Conv1' and weighted[-2:] == ['Conv_1', 'classifier']
  assert {'block_1_expand', 'block_16_project', 'bn_Conv1'} <= {
      n.name for n in graph.nodes}
  assert graph_pruning.prunable(graph, ['classifier', 'block_1_expand']) == [
      'block_1_expand', 'classifier']


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('name', ['twice_nested', 'sequential_in_sequential',
                                  'two_in_two_out'])
def test_verification_compares_inner_layers(name, framework, monkeypatch):
  model = keras_zoo.imported(name, framework)[0]  # only read
  seen = []
  original = verify.keras_outputs

  def spy(traced, wanted, x):
    values = original(traced, wanted, x)
    seen.extend(node for node, tensor in traced.tensors.items()
                if any(tensor is w for _, w in wanted))
    return values
  monkeypatch.setattr(verify, 'keras_outputs', spy)
  graph = importer.from_keras(model)
  # One node per layer in these models: every one, nested or not, compared.
  layers = [l for l in _leaves(model) if type(l).__name__ != 'InputLayer']
  assert set(seen) == {n.name for n in graph.nodes[1:]}
  assert len(seen) == len(layers) == len(graph.nodes) - 1


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_miswired_nested_call_is_refused(framework, monkeypatch):
  # Read the two-input model `join` as called on its inputs the other way
  # round: inside `join` every layer agrees (it is run on the swapped values
  # too), but its output as the caller sees it does not.
  model, _ = keras_zoo.imported('two_in_two_out', framework)  # imported as is
  original = trace._inbound  # pylint: disable=protected-access

  def swapped(node, which):
    tensors = original(node, which)
    owner = getattr(node, 'layer', None) or getattr(node, 'operation', None)
    return tensors[::-1] if getattr(owner, 'name', '') == 'join' else tensors
  monkeypatch.setattr(trace, '_inbound', swapped)
  with pytest.raises(TfpruneError, match=r'does not compute the output of nested '
                     r'model join \(layer subtract\w*, merge\) as Keras does'):
    importer.from_keras(model)


_READ = dict(layers_lib.LAYERS)


def _swapped_batch_norm(call):  # reads gamma as beta and beta as gamma
  node = _READ['BatchNormalization'](call)[0]
  return [node.replace(params={'gamma': node.params['beta'],
                               'beta': node.params['gamma']})]


def _flipped_depthwise(call):  # reads the kernel upside down
  node = _READ['DepthwiseConv2D'](call)[0]
  return [node.replace(params={'kernel': node.params['kernel'][::-1]})]


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('name, layer, misread, named', [
    ('twice_nested', 'BatchNormalization', _swapped_batch_norm,
     r'stage\.block_a\.bn \(batch_norm\)'),
    ('twice_nested', 'DepthwiseConv2D', _flipped_depthwise,
     r'stage\.block_a\.depthwise \(depthwise_conv2d\)'),
    ('sequential_in_sequential', 'BatchNormalization', _swapped_batch_norm,
     r'batch_normalization\w* \(batch_norm\)'),
    ('mobilenet_in_sequential', 'DepthwiseConv2D', _flipped_depthwise,
     r'expanded_conv_depthwise \(depthwise_conv2d\)'),
])
def test_misread_inner_layer_is_refused_naming_it(name, layer, misread, named,
                                                  framework, monkeypatch):
  model = keras_zoo.imported(name, framework)[0]  # only read
  monkeypatch.setitem(layers_lib.LAYERS, layer, misread)
  with pytest.raises(TfpruneError, match=rf'layer {named} as Keras does') as info:
    importer.from_keras(model)
  assert str(info.value).startswith(f'model {model.name}: the imported graph')
  assert '\n' not in str(info.value)


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('name', sorted(keras_zoo.REFUSED_NESTED))
def test_refused_nested_models_in_one_line(name, framework):
  model = keras_zoo.build(name, framework)
  with pytest.raises(TfpruneError, match=keras_zoo.REFUSED_NESTED[name][1]) as info:
    importer.from_keras(model)
  assert '\n' not in str(info.value)


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_layer_shared_between_levels_refused(framework):
  K = keras_zoo.keras_module(framework)
  dense = K.layers.Dense(4, name='twice')
  i = K.Input((4,))
  inner = K.Model(i, dense(i), name='inner')
  j = K.Input((4,))
  with pytest.raises(TfpruneError, match=r'layer twice \(Dense\) cannot be '
                     'imported: it is called more than once'):
    importer.from_keras(K.Model(j, dense(inner(j))))


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_paths_that_still_clash_are_refused(framework):
  K = keras_zoo.keras_module(framework)
  i = K.Input((4,))
  block = K.Model(i, K.layers.Dense(4, name='d')(i), name='block')
  j = K.Input((4,))
  x = K.layers.Dense(4, name='d')(block(j))
  model = K.Model(j, K.layers.Dense(2, name='block.d')(x))
  with pytest.raises(TfpruneError, match=r'two layers would both be named '
                     r'block\.d .*: rename one') as info:
    importer.from_keras(model)
  assert '\n' not in str(info.value)


def test_nested_model_called_on_a_constant_refused():
  # tf_keras lets one input of a nested model be a constant, which is no
  # node of the graph (Keras 3 refuses to build such a model).
  K = keras_zoo.keras_module('tf_keras')
  a, b = K.Input((4,)), K.Input((4,))
  join = K.Model([a, b], K.layers.Subtract()([a, b]), name='join')
  x = K.Input((4,))
  model = K.Model(x, K.layers.Dense(2)(join([x, np.ones((1, 4), np.float32)])))
  with pytest.raises(TfpruneError, match=r'^layer join \(Functional\) cannot be '
                     r'imported: it is called on 1 tensor\(s\) but has 2 inputs'):
    importer.from_keras(model)


def _trained(tmp_path, name, framework):
  """A briefly trained nested model saved as .keras, and its .npz."""
  model = keras_zoo.build(name, framework)
  shape = tuple(model.inputs[0].shape[1:])
  rng = np.random.default_rng(0)
  x = rng.standard_normal((240, *shape)).astype(np.float32)
  y = np.argmax(x.reshape(240, -1) @ rng.standard_normal((int(np.prod(shape)), 3)),
                axis=1)
  model.compile(optimizer='adam', loss='sparse_categorical_crossentropy')
  model.fit(x[:160], y[:160], epochs=2, batch_size=40, verbose=0)
  path = tmp_path / 'nested.keras'
  model.save(path)
  data = tmp_path / 'data.npz'
  np.savez(data, x_test=x[160:], y_test=y[160:])
  accuracy = np.mean(np.argmax(model.predict(x[160:], verbose=0), 1) == y[160:])
  return path, data, x[160:], y[160:], accuracy


@pytest.fixture(scope='module')
def trained_nested(tmp_path_factory):
  """`_trained` twice_nested per framework, made once: the sweeps only read it."""
  made = {}

  def get(framework):
    if framework not in made:
      made[framework] = _trained(tmp_path_factory.mktemp(f'nested-{framework}'),
                                 'twice_nested', framework)
    return made[framework]
  return get


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_sweep_of_a_nested_model_file(framework, tmp_path, capsys, trained_nested):
  path, data, x, y, accuracy = trained_nested(framework)
  out = tmp_path / 'out'
  code, _, err = helpers.run_main(
      'sweep', f'--model_file={path}', f'--data={data}', '--methods=weight,unit',
      '--levels=0,50', '--save_keras', f'--out_dir={out}', '--noprogress',
      capsys=capsys)
  assert code == 0, err
  rows = helpers.read_csv(out / 'sweep.csv')
  assert [(r['method'], r['k']) for r in rows] == [
      ('weight', '0'), ('weight', '50'), ('unit', '0'), ('unit', '50')]
  assert float(rows[0]['accuracy']) == round(accuracy, 4)
  K = keras_zoo.keras_module(framework)
  unit = K.models.load_model(out / 'pruned' / 'unit-k50.keras', compile=False)
  assert not any(hasattr(l, 'layers') for l in unit.layers)  # flat
  # The block's add ties its conv and its projection: 6 channels -> 3, and
  # the next block reads 3; the classifier's 3 outputs are kept.
  assert unit.get_layer('stage.block_a.conv').kernel.shape == (3, 3, 3, 3)
  assert unit.get_layer('stage.block_a.project').kernel.shape == (1, 1, 3, 3)
  assert unit.get_layer('stage.block_b.conv').kernel.shape == (3, 3, 3, 3)
  assert unit.get_layer('classifier').kernel.shape == (3, 3)
  predicted = np.argmax(np.asarray(unit(x, training=False)), axis=1)
  assert f'{np.mean(predicted == y):.4f}' == rows[3]['accuracy']
  weight = K.models.load_model(out / 'pruned' / 'weight-k50.keras', compile=False)
  kernel = weight.get_layer('stage.block_b.depthwise').get_weights()[0]
  assert np.count_nonzero(kernel == 0) == kernel.size // 2


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_prune_layers_takes_the_node_names(framework, tmp_path, capsys,
                                          trained_nested):
  path, data, _, _, _ = trained_nested(framework)
  out = tmp_path / 'out'
  code, _, err = helpers.run_main(
      'sweep', f'--model_file={path}', f'--data={data}', '--methods=weight',
      '--levels=50', '--prune_layers=stage.block_b.conv', '--save_keras',
      f'--out_dir={out}', '--noprogress', capsys=capsys)
  assert code == 0, err
  K = keras_zoo.keras_module(framework)
  pruned = K.models.load_model(out / 'pruned' / 'weight-k50.keras', compile=False)
  for name in TWICE_NESTED_KERNELS:
    kernel = pruned.get_layer(name).get_weights()[0]
    zeros = kernel.size // 2 if name == 'stage.block_b.conv' else 0
    assert np.count_nonzero(kernel == 0) == zeros, name
  code, _, err = helpers.run_main(
      'sweep', f'--model_file={path}', f'--data={data}', '--prune_layers=conv',
      f'--out_dir={out}', capsys=capsys)
  assert code == 2
  assert [l for l in err if l.startswith('error:')] == [
      "error: --prune_layers names 'conv', which is not a layer with a kernel: "
      f'choose from {",".join(TWICE_NESTED_KERNELS)},classifier']
