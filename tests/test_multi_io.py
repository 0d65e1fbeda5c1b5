"""Models with several inputs and outputs, in tf_keras and Keras 3.

Every model of `keras_zoo.MULTI_IO` (two inputs concatenated, two heads,
both, and `a + b` of two inputs written as operators) must equal Keras on
two batches; weight pruning at 50% and unit pruning at 30%, compacted and
exported with `to_keras`, must predict what the pruned graph predicts, at
every output, with the outputs' widths kept. The sweep command reads an
`.npz` of `x_test_<input>` / `y_test_<output>` arrays, scores every output,
and refuses arrays that do not match the model in one line; `evaluate` and
`sensitivity` read the same arrays and score the output the sweep scores.
The data-aware methods (wanda, obs, their N:M modes) and bias correction
calibrate on one array per input: a node that reads a model input is pruned
exactly as in the one-input graph of that input and node. Tolerances are
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
from tfprune.allocation import scan as scan_lib
from tfprune.criteria import bias_correction
from tfprune.criteria import graph_pruning
from tfprune.criteria import nm_calibrated
from tfprune.data import datasets
from tfprune.drivers import allocated
from tfprune.drivers import sensitivity
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import io as graph_io
from tfprune.graph.ir import Graph
from tfprune.graph.ir import Node

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
    (['--methods=wanda'], lambda a: {k: v for k, v in _with_train(a).items()
                                     if k != 'x_train_table'},
     r"its x_train arrays do not match the model's inputs \(image, table\): "
     'missing x_train_table'),
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


def _test_accuracies(graph, arrays):
  """Each output's accuracy on the `_arrays` test split, computed here."""
  x = {'image': arrays['x_test_image'], 'table': arrays['x_test_table']}
  outputs = evaluator.Evaluator(graph).predict_outputs(x)
  return {o: float(np.mean(np.argmax(outputs[o], axis=1)
                           == arrays[f'y_test_{o}'])) for o in graph.outputs}


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_evaluate_prints_every_output_the_scored_one_first(framework, tmp_path,
                                                           capsys):
  model_path = _save_two_in_two_heads(tmp_path, framework)
  arrays = _arrays()
  data = tmp_path / 'd.npz'
  np.savez(data, **arrays)
  want = _test_accuracies(api.from_keras(str(model_path)), arrays)
  assert want['kind'] != want['score']  # so the order is seen
  for args, first, other in (([], 'kind', 'score'),
                             (['--score_output=score'], 'score', 'kind')):
    code, out, err = helpers.run_main('evaluate', f'--export={model_path}',
                                      f'--data={data}', *args, capsys=capsys)
    assert code == 0, err[-5:]
    assert (f'{model_path}: accuracy {100 * want[first]:.2f}% (output {first}; '
            f'other outputs: {other} {100 * want[other]:.2f}%) on {data} test'
            in out), out


@pytest.mark.parametrize('export', ['keras', 'graph'])
def test_evaluate_refuses_what_it_cannot_score(export, tmp_path, capsys):
  model_path = _save_two_in_two_heads(tmp_path)
  path = model_path if export == 'keras' else graph_io.save(
      api.from_keras(str(model_path)), tmp_path / 'g.npz')
  data = tmp_path / 'd.npz'
  np.savez(data, **_arrays())
  for args, line in (
      ([], f'error: {path} has 2 input(s) and 2 output(s), and a registry '
           'dataset gives one of each: pass --data, an .npz of '
           'x_test_<input name> and y_test_<output name> arrays'),
      ([f'--data={data}', '--score_output=nope'],
       'error: --score_output=nope is not an output of the model: choose from '
       'kind, score')):
    code, out, err = helpers.run_main('evaluate', f'--export={path}', *args,
                                      capsys=capsys)
    assert (code, out) == (2, '')
    assert [l for l in err if l.startswith('error:')] == [line], err


def _rows_of(array, drawn):
  """Where each example of `drawn` is in `array`."""
  flat = array.reshape(len(array), -1)
  return [int(np.flatnonzero(np.all(flat == row.reshape(-1), axis=1))[0])
          for row in drawn]


def test_holdout_and_calibration_draw_the_same_examples_of_every_input(
    tmp_path):
  arrays = _with_train(_arrays(n=30))
  split = datasets.Split(
      {n: arrays[f'x_train_{n}'] for n in ('image', 'table')},
      {n: arrays[f'y_train_{n}'] for n in ('kind', 'score')})
  x, labels = sensitivity.holdout(split, 12, 3, 'd.npz')
  calibration = sweep.calibration(sweep.SweepConfig(
      weights_dir=None, model_file='m.keras', data='d.npz', methods=('obs',),
      out_dir=str(tmp_path), calibration_size=12, calibration_seed=3), split)
  for drawn in (calibration, x):
    found = [_rows_of(arrays[f'x_train_{n}'], drawn[n])
             for n in ('image', 'table')]
    assert found[0] == found[1] and len(set(found[0])) == 12
  for output in ('kind', 'score'):  # the held-out examples' labels
    np.testing.assert_array_equal(labels[output],
                                  arrays[f'y_train_{output}'][found[0]])


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_sensitivity_scans_the_scored_output(framework, tmp_path, capsys):
  model_path = _save_two_in_two_heads(tmp_path, framework)
  arrays = _with_train(_arrays(n=60))
  data = tmp_path / 'd.npz'
  np.savez(data, **arrays)
  graph = api.from_keras(str(model_path))
  split = datasets.Split(
      {n: arrays[f'x_train_{n}'] for n in ('image', 'table')},
      {n: arrays[f'y_train_{n}'] for n in ('kind', 'score')})
  x, labels = sensitivity.holdout(split, 40, 0, str(data))
  scans = {}
  for output in ('kind', 'score'):
    out_dir = tmp_path / output
    code, _, err = helpers.run_main(
        'sensitivity', f'--model_file={model_path}', f'--data={data}',
        '--levels=0,60', '--holdout_size=40', '--criterion=unit',
        *([] if output == 'kind' else ['--score_output=score']),
        f'--out_dir={out_dir}', capsys=capsys)
    assert code == 0, err[-5:]
    record = json.loads((out_dir / sensitivity.CONFIG_NAME).read_text())
    assert record['accuracy_output'] == output
    assert record['layers'] == graph_pruning.prunable(graph)  # not the heads
    scans[output] = scan_lib.read_csv(out_dir / sensitivity.CSV_NAME)
    for name in record['layers']:
      pruned = graph_pruning.prune(graph, 'unit', 60, [name])
      for k, one in ((0, graph), (60, pruned)):
        outputs = evaluator.Evaluator(graph).predict_outputs(x, one)[output]
        curve = scans[output].curves[name]
        i = curve.levels.index(k)
        want = np.mean(np.argmax(outputs, axis=1) == labels[output])
        assert curve.accuracy[i] == pytest.approx(want, abs=5e-5)  # 4 decimals
        assert curve.loss[i] == pytest.approx(
            sensitivity.cross_entropy(outputs, labels[output]), abs=5e-7)
  assert scans['kind'].curves != scans['score'].curves


def test_sensitivity_refuses_an_unknown_output(tmp_path, capsys):
  model_path = _save_two_in_two_heads(tmp_path)
  data = tmp_path / 'd.npz'
  np.savez(data, **_with_train(_arrays()))
  code, _, err = helpers.run_main(
      'sensitivity', f'--model_file={model_path}', f'--data={data}',
      '--levels=50', '--score_output=nope', f'--out_dir={tmp_path / "out"}',
      capsys=capsys)
  assert code == 2
  assert [l for l in err if l.startswith('error:')] == [
      'error: --score_output=nope is not an output of the model: choose from '
      'kind, score']
  assert not (tmp_path / 'out').exists()


def _calibration(graph, n=48, seed=7):
  """Calibration examples by input name, flattened as the sweep draws them."""
  return {name: a.reshape(n, -1) for name, a in _batch(graph, seed, n).items()}


def _alone(graph, name):
  """The one-input graph of node `name` and the model input it reads, its
  output an identity after the node (which, as in `graph`, is no output)."""
  node = graph.node(name)
  (source,) = node.inputs
  i = [n.name for n in graph.inputs].index(source)
  return Graph((graph.inputs[i], node, Node('read', 'identity', (name,))),
               'read', graph.input_shapes[i])


def _reading_an_input(graph, names):
  inputs = {n.name for n in graph.inputs}
  return [n for n in names if set(graph.node(n).inputs) <= inputs]


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('method', ['wanda', 'obs'])
@pytest.mark.parametrize('name', ['image_and_table', 'two_in_two_heads'])
def test_data_aware_methods_calibrate_on_every_input(name, method, framework):
  _, graph = keras_zoo.imported(name, framework)
  names = graph_pruning.prunable(graph)
  calibration = _calibration(graph)
  pruned = api.prune(graph, method, 50, calibration=calibration)
  in_order = [calibration[n.name] for n in graph.inputs]
  as_list = api.prune(graph, method, 50, calibration=in_order)
  for node in graph.weighted():
    kernel = pruned.node(node.name).params['kernel']
    if node.name in names:  # exactly floor(k·n/100) zeros
      assert np.sum(kernel == 0) == kernel.size // 2, node.name
    else:  # the outputs are never pruned
      assert node.name in graph.outputs
      np.testing.assert_array_equal(kernel, node.params['kernel'])
    for key, value in pruned.node(node.name).params.items():
      np.testing.assert_array_equal(as_list.node(node.name).params[key], value)
  direct = _reading_an_input(graph, names)
  assert len(direct) == 2  # one node on each input
  for node_name in direct:
    alone = _alone(graph, node_name)
    source = alone.inputs[0].name
    want = api.prune(alone, method, 50, layers=[node_name],
                     calibration=calibration[source]).node(node_name).params
    for key, value in pruned.node(node_name).params.items():
      np.testing.assert_array_equal(value, want[key])


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_bias_correction_calibrates_on_every_input(framework):
  _, graph = keras_zoo.imported('two_in_two_heads', framework)
  names = graph_pruning.prunable(graph)
  calibration = _calibration(graph)
  pruned = api.prune(graph, 'weight', 60)
  corrected = bias_correction.correct_biases(graph, pruned, names, calibration)
  for name in names:  # the kernels (and so the sparsity) kept
    np.testing.assert_array_equal(corrected.node(name).params['kernel'],
                                  pruned.node(name).params['kernel'])
  for name in _reading_an_input(graph, names):
    alone = _alone(graph, name)
    want = bias_correction.correct_biases(
        alone, api.prune(alone, 'weight', 60, layers=[name]), [name],
        calibration[alone.inputs[0].name])
    np.testing.assert_array_equal(corrected.node(name).params['bias'],
                                  want.node(name).params['bias'])
    assert not np.array_equal(want.node(name).params['bias'],
                              pruned.node(name).params['bias'])


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
@pytest.mark.parametrize('method', ['wanda', 'obs'])
def test_calibrated_nm_patterns_on_two_inputs(method, framework):
  _, graph = keras_zoo.imported('operator_sum', framework)
  names = graph_pruning.prunable(graph)
  calibration = _calibration(graph)
  pruned = allocated.graph_pattern(graph, method, names, '2:4', calibration)
  for name in names:  # 2 of every 4 consecutive inputs of each unit kept
    kept = pruned.node(name).params['kernel'] != 0
    for start in range(0, len(kept), 4):
      assert np.all(kept[start:start + 4].sum(axis=0) <= 2), name
    assert kept.sum() < kept.size
  (direct,) = _reading_an_input(graph, names)
  alone = _alone(graph, direct)
  want = nm_calibrated.prune(alone, method, [direct], '2:4',
                             calibration[alone.inputs[0].name])
  for key, value in pruned.node(direct).params.items():
    np.testing.assert_array_equal(value, want.node(direct).params[key])


@pytest.mark.parametrize('framework', keras_zoo.FRAMEWORKS)
def test_sweep_runs_the_data_aware_methods_on_two_inputs(framework, tmp_path,
                                                         capsys):
  model_path = _save_two_in_two_heads(tmp_path, framework)
  data = tmp_path / 'd.npz'
  np.savez(data, **_with_train(_arrays()))
  out_dir = tmp_path / 'out'
  code, _, err = helpers.run_main(
      'sweep', f'--model_file={model_path}', f'--data={data}',
      '--methods=wanda,obs', '--levels=0,50', '--bias_correction',
      '--calibration_size=32', f'--out_dir={out_dir}', capsys=capsys)
  assert code == 0, err[-5:]
  rows = helpers.read_csv(out_dir / sweep.CSV_NAME)
  assert [(r['method'], r['k']) for r in rows] == [
      ('wanda', '0'), ('wanda', '50'), ('obs', '0'), ('obs', '50')]
  dense = _test_accuracies(api.from_keras(str(model_path)), _arrays())
  for row in rows:
    if row['k'] == '0':  # nothing pruned, nothing to correct
      assert row['accuracy'] == f'{dense["kind"]:.4f}'
      assert row['accuracy_score'] == f'{dense["score"]:.4f}'
    else:
      assert float(row['sparsity']) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize('given, match', [
    ('one', r'one calibration array given but the network reads 2 inputs '
            r'\(image, table\): give a dict of arrays by input name'),
    ('list1', r'1 calibration arrays given but the network reads 2 \(image, '
              r'table\): give one per input'),
    ('extra', r"missing \['table'\], extra \['tabel'\]"),
    ('size', r'the network takes inputs of shape \(5,\) at input table but '
             'the calibration examples have 4 values'),
    ('nan', 'the calibration data at input table holds NaN/Inf values'),
    ('lengths', r'calibration arrays of \[48, 40\] examples: give the same '
                'examples to every input'),
])
@pytest.mark.parametrize('method', ['wanda', 'obs'])
def test_data_aware_methods_refuse_calibration_that_does_not_fit(method, given,
                                                                 match):
  _, graph = keras_zoo.imported('two_in_two_heads', 'keras3')
  x = _calibration(graph)
  nan = x['table'].copy()
  nan[5, 1] = np.nan
  bad = {'one': x['image'], 'list1': [x['image']],
         'extra': {'image': x['image'], 'tabel': x['table']},
         'size': {'image': x['image'], 'table': x['table'][:, :4]},
         'nan': {'image': x['image'], 'table': nan},
         'lengths': {'image': x['image'], 'table': x['table'][:40]}}[given]
  with pytest.raises(TfpruneError, match=match):
    api.prune(graph, method, 50, calibration=bad)
