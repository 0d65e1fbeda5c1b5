"""Models with several inputs and outputs, in tf_keras and Keras 3.

Every model of `keras_zoo.MULTI_IO` (two inputs concatenated, two heads,
both, and `a + b` of two inputs written as operators) must equal Keras on
two batches; weight pruning at 50% and unit pruning at 30%, compacted and
exported with `to_keras`, must predict what the pruned graph predicts, at
every output, with the outputs' widths kept. The sweep command reads an
`.npz` of `x_test_<input>` / `y_test_<output>` arrays, scores every output,
and refuses arrays that do not match the model in one line. Tolerances are
relative to each output's scale (`helpers.assert_same_up_to_rounding`:
float32 round-off of another summation order).
"""

import json
import re

import numpy as np
import pytest

from tests import helpers
from tests import keras_zoo
from tfprune import api
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import io as graph_io

NAMES = sorted(keras_zoo.MULTI_IO)


def _batch(graph, seed, n=6):
  """One random array per input of `graph`, by input name."""
  rng = np.random.default_rng(seed)
  return {node.name: rng.standard_normal((n, *shape)).astype(np.float32)
          for node, shape in zip(graph.inputs, graph.input_shapes)}


def _input_names(model) -> list[str]:
  return [t._keras_history[0].name for t in model.inputs]  # pylint: disable=protected-access


def _keras(model, x: dict) -> list[np.ndarray]:
  """The model's outputs on `x` (by input name), as a list in output order."""
  inputs = [x[name] for name in _input_names(model)]
  out = model(inputs if len(inputs) > 1 else inputs[0], training=False)
  return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('name', NAMES)
def test_import_equals_keras_on_two_batches(name, framework):
  model, graph = keras_zoo.imported(name, framework)
  assert len(graph.inputs) == len(model.inputs)
  assert len(graph.outputs) == len(model.outputs)
  assert len(graph.inputs) + len(graph.outputs) > 2
  for seed in (1, 2):
    x = _batch(graph, seed)
    ours = evaluator.Evaluator(graph).predict_outputs(x)
    for name_out, theirs in zip(graph.outputs, _keras(model, x)):
      helpers.assert_same_up_to_rounding(ours[name_out], theirs)


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('method, k', [('weight', 50), ('unit', 30)])
@pytest.mark.parametrize('name', NAMES)
def test_pruned_compacted_exported_predict_the_pruned_graph(name, method, k,
                                                             framework):
  _, graph = keras_zoo.imported(name, framework)
  pruned = api.prune(graph, method, k)
  compacted = api.compact(pruned)
  exported = api.to_keras(compacted)
  x = _batch(graph, 3)
  expected = evaluator.Evaluator(pruned).predict_outputs(x)
  got = evaluator.Evaluator(compacted).predict_outputs(x)
  assert _input_names(exported) == [n.name for n in graph.inputs]
  for output, theirs in zip(graph.outputs, _keras(exported, x)):
    helpers.assert_same_up_to_rounding(got[output], expected[output])
    helpers.assert_same_up_to_rounding(theirs, expected[output])
  assert compacted.output_shapes == graph.output_shapes
  if method == 'weight':  # every pruned kernel (not the outputs') holds k% zeros
    for node in pruned.weighted():
      kernel = node.params['kernel']
      if node.name in graph.outputs:
        assert np.array_equal(kernel, graph.node(node.name).params['kernel'])
      else:
        assert np.sum(kernel == 0) >= int(kernel.size * k / 100)
  else:  # channels were removed; no output lost a unit
    assert compacted.num_params < graph.num_params
    for output in graph.outputs:
      assert compacted.shapes[output] == graph.shapes[output]


@pytest.mark.parametrize('name', NAMES)
def test_graph_file_keeps_inputs_and_outputs(name, tmp_path):
  _, graph = keras_zoo.imported(name, 'keras3')
  pruned = api.prune(graph, 'weight', 50)
  path = graph_io.save(pruned, tmp_path / 'g.npz')
  loaded = graph_io.load(path)
  assert loaded.outputs == graph.outputs
  assert loaded.input_shapes == graph.input_shapes
  assert [n.name for n in loaded.inputs] == [n.name for n in graph.inputs]
  x = _batch(graph, 4)
  want = evaluator.Evaluator(pruned).predict_outputs(x)
  for output, value in evaluator.Evaluator(loaded).predict_outputs(x).items():
    np.testing.assert_array_equal(value, want[output])


def test_one_input_one_output_properties_refuse_several():
  _, graph = keras_zoo.imported('two_in_two_heads', 'keras3')
  with pytest.raises(TfpruneError, match=r'has 2 \(image, table\)'):
    graph.input_shape  # pylint: disable=pointless-statement
  with pytest.raises(TfpruneError, match=r'has 2 \(kind, score\)'):
    graph.output  # pylint: disable=pointless-statement


@pytest.mark.parametrize('given, match', [
    ('one', r'one input array given but the network reads 2 \(image, table\)'),
    ('list1', r'1 input arrays given but the network reads 2'),
    ('extra', r"missing \['table'\], extra \['tabel'\]"),
    ('shape', r'inputs of shape \(4,\) but the network takes \(5,\) at input table'),
    ('lengths', r'input arrays of \[6, 5\] examples'),
])
def test_evaluator_refuses_inputs_that_do_not_match(given, match):
  _, graph = keras_zoo.imported('two_in_two_heads', 'keras3')
  x = _batch(graph, 5)
  bad = {'one': x['image'], 'list1': [x['image']],
         'extra': {'image': x['image'], 'tabel': x['table']},
         'shape': {'image': x['image'], 'table': x['table'][:, :4]},
         'lengths': {'image': x['image'], 'table': x['table'][:5]}}[given]
  with pytest.raises(TfpruneError, match=match):
    evaluator.predict(graph, bad)


def test_accuracies_score_each_output_against_its_labels():
  _, graph = keras_zoo.imported('two_heads', 'keras3')
  x = _batch(graph, 6, n=50)
  outputs = evaluator.Evaluator(graph).predict_outputs(x)
  right = {o: np.argmax(v, axis=1) for o, v in outputs.items()}
  wrong_flag = (right['flag'] + 1) % 2
  scores = evaluator.Evaluator(graph).accuracies(
      x, {'kind': right['kind'], 'flag': wrong_flag})
  assert scores == {'kind': 1.0, 'flag': 0.0}
  with pytest.raises(TfpruneError, match='give one label array per output'):
    evaluator.Evaluator(graph).accuracies(x, {'kind': right['kind']})


def _save_two_in_two_heads(tmp_path, framework='keras3'):
  path = tmp_path / ('m.keras' if framework == 'keras3' else 'm.h5')
  keras_zoo.build('two_in_two_heads', framework).save(path)
  return path


def _arrays(n=40, seed=0):
  rng = np.random.default_rng(seed)
  return {'x_test_image': rng.standard_normal((n, 8, 8, 2)).astype(np.float32),
          'x_test_table': rng.standard_normal((n, 5)).astype(np.float32),
          'y_test_kind': rng.integers(0, 3, n), 'y_test_score': rng.integers(0, 2, n)}


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_sweep_command_scores_every_output(framework, tmp_path, capsys):
  model_path = _save_two_in_two_heads(tmp_path, framework)
  arrays = _arrays()
  data = tmp_path / 'd.npz'
  np.savez(data, **arrays)
  out_dir = tmp_path / 'out'
  code, _, err = helpers.run_main(
      'sweep', f'--model_file={model_path}', f'--data={data}',
      '--methods=weight,unit', '--levels=0,50', '--score_output=score',
      f'--out_dir={out_dir}', capsys=capsys)
  assert code == 0, err[-20:]
  rows = helpers.read_csv(out_dir / sweep.CSV_NAME)
  assert list(rows[0])[-1] == 'accuracy_kind'
  config = json.loads((out_dir / sweep.CONFIG_NAME).read_text())
  assert config['accuracy_output'] == 'score'
  assert config['config']['score_output'] == 'score'
  # The k = 0 rows are the model's own accuracies, output by output.
  graph = api.from_keras(str(model_path))
  x = {'image': arrays['x_test_image'], 'table': arrays['x_test_table']}
  outputs = evaluator.Evaluator(graph).predict_outputs(x)
  for output, column in (('score', 'accuracy'), ('kind', 'accuracy_kind')):
    want = np.mean(np.argmax(outputs[output], axis=1) == arrays[f'y_test_{output}'])
    assert rows[0][column] == f'{want:.4f}'
    assert rows[2][column] == f'{want:.4f}'
  assert float(rows[1]['sparsity']) == pytest.approx(0.5, abs=0.01)
  assert int(rows[3]['nonzero_params']) < int(rows[2]['nonzero_params'])


def test_one_input_model_reads_x_test_or_its_named_array(tmp_path, capsys):
  model_path = tmp_path / 'm.keras'
  keras_zoo.build('mlp', 'keras3').save(model_path)
  model_input = api.from_keras(str(model_path)).inputs[0].name
  rng = np.random.default_rng(0)
  x, y = rng.standard_normal((30, 20)).astype(np.float32), rng.integers(0, 5, 30)
  lines = []
  for name, arrays in (('plain', {'x_test': x, 'y_test': y}),
                       ('named', {f'x_test_{model_input}': x, 'y_test': y})):
    np.savez(tmp_path / f'{name}.npz', **arrays)
    code, _, err = helpers.run_main(
        'sweep', f'--model_file={model_path}', f'--data={tmp_path / name}.npz',
        '--methods=weight', '--levels=0,50', f'--out_dir={tmp_path / name}',
        capsys=capsys)
    assert code == 0, err[-20:]
    lines.append((tmp_path / name / sweep.CSV_NAME).read_text())
  assert lines[0] == lines[1]


def _renamed(a, old, new):
  a[new] = a.pop(old)
  return a


def _nan_at(a):
  a['x_test_table'][3, 2] = np.nan
  return a


@pytest.mark.parametrize('change, match', [
    (lambda a: _renamed(a, 'x_test_table', 'x_test_tabel'),
     r"its x_test arrays do not match the model's inputs \(image, table\): "
     'missing x_test_table; extra x_test_tabel'),
    (lambda a: {k: v for k, v in a.items() if k != 'y_test_score'},
     "its y_test arrays do not match the model's outputs .*missing y_test_score"),
    (lambda a: {'x_test': a['x_test_image'], 'y_test_kind': a['y_test_kind'],
                'y_test_score': a['y_test_score']},
     r'x_test is one array but the model has 2 inputs \(image, table\): store '
     'x_test_image, x_test_table'),
    (lambda a: {**a, 'x_test': a['x_test_image']},
     'has both x_test and x_test_image, x_test_table'),
    (_nan_at, r'x_test_table\[3, 2\] is nan'),
    (lambda a: {**a, 'y_test_score': a['y_test_score'] + 1},
     r'y_test_score\[\d+\] is 2 but the model has 2 outputs'),
    (lambda a: {**a, 'y_test_kind': a['y_test_kind'].astype(np.float32)},
     'y_test_kind has dtype float32 .* store integer class indices'),
    (lambda a: {**a, 'x_test_image': a['x_test_image'].transpose(0, 3, 1, 2)},
     r'x_test_image holds examples of shape \(2, 8, 8\) .*transposed'),
    (lambda a: {**a, 'x_test_table': a['x_test_table'][:30]},
     'different numbers of examples .*x_test_table 30'),
])
def test_sweep_command_refuses_arrays_that_do_not_fit(change, match, tmp_path,
                                                      capsys):
  model_path = _save_two_in_two_heads(tmp_path)
  arrays = change(_arrays())
  data = tmp_path / 'd.npz'
  np.savez(data, **arrays)
  out_dir = tmp_path / 'out'
  code, _, err = helpers.run_main('sweep', f'--model_file={model_path}',
                                  f'--data={data}', '--levels=0',
                                  f'--out_dir={out_dir}', capsys=capsys)
  assert code == 2, err
  lines = [l for l in err if l.startswith('error:')]
  assert len(lines) == 1, err
  assert re.search(match, lines[0]), lines[0]
  assert not (out_dir / sweep.CSV_NAME).exists()


def test_sweep_refuses_an_unknown_score_output(tmp_path, capsys):
  model_path = _save_two_in_two_heads(tmp_path)
  data = tmp_path / 'd.npz'
  np.savez(data, **_arrays())
  code, _, err = helpers.run_main(
      'sweep', f'--model_file={model_path}', f'--data={data}', '--levels=0',
      '--score_output=nope', f'--out_dir={tmp_path / "out"}', capsys=capsys)
  assert code == 2
  assert [l for l in err if l.startswith('error:')] == [
      'error: --score_output=nope is not an output of the model: choose from '
      'kind, score']


def _with_train(arrays):
  """`arrays` plus a training split of the same names (`x_train_<input>`, ...)."""
  return {**arrays, **{k.replace('_test_', '_train_'): v.copy()
                       for k, v in arrays.items()}}


@pytest.mark.parametrize('args, change, match', [
    (['--methods=wanda'], _with_train,
     "method 'wanda' calibrates models with one input, and .* holds "
     'x_train_image, x_train_table'),
    (['--methods=weight'], lambda a: {**_with_train(a), 'y_train_kind': a[
        'y_test_kind'] + 3}, r'y_train_kind\[0\] is \d+ but the model has 3 outputs'),
])
def test_sweep_refuses_training_arrays_it_cannot_use(args, change, match,
                                                     tmp_path, capsys):
  model_path = _save_two_in_two_heads(tmp_path)
  data = tmp_path / 'd.npz'
  np.savez(data, **change(_arrays()))
  code, _, err = helpers.run_main(
      'sweep', f'--model_file={model_path}', f'--data={data}', '--levels=0',
      *args, f'--out_dir={tmp_path / "out"}', capsys=capsys)
  assert code == 2, err
  lines = [l for l in err if l.startswith('error:')]
  assert len(lines) == 1 and re.search(match, lines[0]), err
