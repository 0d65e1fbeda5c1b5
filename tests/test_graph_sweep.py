"""Pruning and sweeping any imported graph: exact counts, user model files and data.

Parameterized over methods and over dense, conv and depthwise kernels; the
sweep of a user's `.keras` model with a `.npz` reproduces Keras's accuracy at
k = 0, and bad input ends in one line and exit 2.
"""

import csv
import pathlib
import re

import numpy as np
import pytest

from tests import helpers
from tests import keras_zoo
from tfprune.criteria import graph_pruning
from tfprune.criteria import importances
from tfprune.criteria import pruning
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.graph import io as graph_io
from tfprune.keras_io import importer

LEVELS = (0, 30, 50, 90, 100)


@pytest.fixture(scope='module')
def mobilenet():
  return importer.from_keras(keras_zoo.build('mobilenet_v2', 'keras3'))


def _by_op(graph, op):
  return next(n for n in graph.weighted() if n.op == op and n.name != 'predictions')


@pytest.mark.parametrize('op', ['dense', 'conv2d', 'depthwise_conv2d'])
@pytest.mark.parametrize('method', sorted(graph_pruning.kernel_criteria()))
@pytest.mark.parametrize('k', LEVELS)
def test_exact_zero_counts_per_kernel(mobilenet, method, k, op):
  graph = mobilenet
  node = _by_op(graph, op) if op != 'dense' else graph.node('predictions')
  if method == 'filter_l1' and k == 100:  # always keeps one filter
    with pytest.raises(TfpruneError, match='would remove all'):
      graph_pruning.prune(graph, method, k, [node.name])
    return
  pruned = graph_pruning.prune(graph, method, k, [node.name])
  kernel = node.params['kernel']
  after = pruned.node(node.name).params['kernel']
  axis = graph_pruning.ops.get(node.op).kernels['kernel']
  if importances.get(method).removes_channels:
    units = kernel.shape[axis]
    dead = ~np.moveaxis(after != 0, axis, -1).reshape(-1, units).any(axis=0)
    assert dead.sum() == pruning.prune_count(k, units)
  else:
    assert kernel.size - np.count_nonzero(after) == pruning.prune_count(k, kernel.size)
  if method == 'weight' and 0 < k < 100:
    kept, cut = np.abs(kernel[after != 0]), np.abs(kernel[after == 0])
    assert kept.min() >= cut.max()
  # Every other node is untouched.
  for other in graph.nodes:
    if other.name != node.name:
      for name, value in other.params.items():
        assert pruned.node(other.name).params[name] is value


def test_default_layers_keep_the_output_layer(mobilenet):
  names = graph_pruning.prunable(mobilenet)
  assert 'predictions' not in names and len(names) == len(mobilenet.weighted()) - 1
  assert graph_pruning.prunable(mobilenet, prune_output_layer=True)[-1] == 'predictions'
  with pytest.raises(TfpruneError, match="'nope', which is not a layer with a kernel"):
    graph_pruning.prunable(mobilenet, ['nope'])


def test_graph_file_round_trip_is_exact(mobilenet, tmp_path):
  pruned = graph_pruning.prune(mobilenet, 'weight', 90,
                               graph_pruning.prunable(mobilenet))
  path = graph_io.save(pruned, tmp_path / 'g.npz')
  back = graph_io.load(path)
  assert len(graph_io.to_bytes(pruned)) < len(graph_io.to_bytes(mobilenet))
  for a, b in zip(pruned.nodes, back.nodes):
    assert (a.name, a.op, a.inputs) == (b.name, b.op, b.inputs)
    assert dict(a.attrs) == dict(b.attrs) or a.attrs == b.attrs
    for name in a.params:
      np.testing.assert_array_equal(a.params[name], b.params[name])
  (tmp_path / 'bad.npz').write_bytes(b'junk')
  with pytest.raises(TfpruneError, match='not a tfprune graph file'):
    graph_io.load(tmp_path / 'bad.npz')


def _user_model(tmp_path, name, framework):
  """A briefly trained user model and its .npz, on learnable synthetic data."""
  model = keras_zoo.build(name, framework)
  shape = tuple(model.inputs[0].shape[1:])
  classes = model.outputs[0].shape[-1]
  rng = np.random.default_rng(0)
  x = rng.standard_normal((300, *shape)).astype(np.float32)
  y = np.argmax(x.reshape(300, -1) @ rng.standard_normal(
      (int(np.prod(shape)), classes)), axis=1)
  model.compile(optimizer='adam', loss='sparse_categorical_crossentropy')
  model.fit(x[:200], y[:200], epochs=2, batch_size=50, verbose=0)
  model_path = tmp_path / 'model.keras'
  model.save(model_path)
  data_path = tmp_path / 'data.npz'
  np.savez(data_path, x_test=x[200:], y_test=y[200:], x_train=x[:200],
           y_train=y[:200])
  accuracy = np.mean(np.argmax(model.predict(x[200:], verbose=0), 1) == y[200:])
  return model_path, data_path, accuracy


@pytest.mark.parametrize('name, framework', [('mlp', 'keras3'),
                                             ('cnn', 'tf_keras')])
def test_sweep_of_a_user_model_file(name, framework, tmp_path):
  model_path, data_path, keras_accuracy = _user_model(tmp_path, name, framework)
  config = sweep.SweepConfig(
      weights_dir=None, model_file=str(model_path), data=str(data_path),
      out_dir=str(tmp_path / 'out'), methods=('weight', 'unit'),
      levels=(0, 50, 90), save_pruned=True)
  rows = sweep.run(config)
  assert [(r.method, r.k) for r in rows] == [
      (m, k) for m in ('weight', 'unit') for k in (0, 50, 90)]
  assert rows[0].accuracy == pytest.approx(keras_accuracy, abs=1e-9)
  with open(tmp_path / 'out' / sweep.CSV_NAME) as f:
    table = list(csv.DictReader(f))
  assert float(table[0]['accuracy']) == round(keras_accuracy, 4)
  assert float(table[1]['sparsity']) == pytest.approx(0.5, abs=0.01)
  assert rows[2].nonzero_params < rows[1].nonzero_params < rows[0].nonzero_params
  saved = graph_io.load(tmp_path / 'out' / 'pruned' / 'unit-k90.npz')
  assert saved.output == importer.from_keras(model_path).output


def test_wanda_obs_sweep_of_a_user_model_file(tmp_path):
  model_path, data_path, keras_accuracy = _user_model(tmp_path, 'cnn', 'keras3')
  config = sweep.SweepConfig(
      weights_dir=None, model_file=str(model_path), data=str(data_path),
      out_dir=str(tmp_path / 'out'), methods=('wanda', 'obs'),
      levels=(0, 50), calibration_size=100)
  heard = []
  rows = sweep.run(config, progress=lambda *point: heard.append(point))
  assert [(m, k) for m, k, _, _ in heard] == [(r.method, r.k) for r in rows] == [
      ('wanda', 0), ('wanda', 50), ('obs', 0), ('obs', 50)]
  assert [a for _, _, a, _ in heard] == [r.accuracy for r in rows]
  assert rows[0].accuracy == pytest.approx(keras_accuracy, abs=1e-9)
  assert rows[2].accuracy == pytest.approx(keras_accuracy, abs=0.01)
  assert rows[1].sparsity == rows[3].sparsity == pytest.approx(0.5, abs=0.01)


def _full_test_small_train(folder, data_dir, slice_dir):
  """MNIST's full test split (the manifest's accuracy is of it) beside the
  first 512 training images (the calibration draws 64 of them)."""
  (folder / 'mnist').mkdir(parents=True)
  for name, source in (('t10k-images-idx3-ubyte.gz', data_dir),
                       ('t10k-labels-idx1-ubyte.gz', data_dir),
                       ('train-images-idx3-ubyte.gz', slice_dir),
                       ('train-labels-idx1-ubyte.gz', slice_dir)):
    (folder / 'mnist' / name).symlink_to(pathlib.Path(source) / 'mnist' / name)
  return folder


def test_wanda_obs_sweep_script_on_a_cnn_folder(tmp_path, data_dir, mnist_slice_dir,
                                                capsys):
  out_dir = tmp_path / 'out'
  data_dir = _full_test_small_train(tmp_path / 'data', data_dir, mnist_slice_dir)
  code, _, err = helpers.run_main(
      'sweep', f'--weights_dir={helpers.REPO / "weights" / "lenet5-mnist"}',
      f'--data_dir={data_dir}', '--methods=wanda,obs', '--levels=0,90',
      '--calibration_size=64', f'--out_dir={out_dir}', capsys=capsys)
  assert code == 0, err[-20:]
  rows = helpers.read_csv(out_dir / sweep.CSV_NAME)
  assert [(r['method'], r['k']) for r in rows] == [
      ('wanda', '0'), ('wanda', '90'), ('obs', '0'), ('obs', '90')]
  assert rows[0]['accuracy'] == rows[2]['accuracy'] == '0.9927'
  assert float(rows[3]['sparsity']) == pytest.approx(0.9, abs=1e-3)
  progress = [l for l in err if re.match(r'\w+ k=\d+: ', l)]
  assert len(progress) == 4 and progress[0].startswith('wanda k=0: 99.27% (')


@pytest.mark.parametrize('args, match', [
    (['--methods=obs'], r"method 'obs' needs calibration data but \S*good.npz "
     'has no x_train/y_train: add them'),
    (['--methods=wanda'], "method 'wanda' needs calibration data but"),
    (['--bias_correction'], r"bias correction needs calibration data but \S*good.npz "
     'has no x_train/y_train: add them'),
    (['--prune_layers=nope'], "names 'nope', which is not a layer with a kernel"),
    (['--weights_dir=weights/mlp-mnist'], '--weights_dir and --model_file both given'),
    (['--data=MISSING'], r'data file \S*none.npz does not exist'),
    (['--data=WRONGSHAPE'], r'examples of shape \(7,\) but the model takes \(20,\)'),
])
def test_sweep_script_refuses_bad_user_input(args, match, tmp_path, capsys):
  K = keras_zoo.keras_module('keras3')
  model_path = tmp_path / 'm.keras'
  keras_zoo.build('mlp', 'keras3').save(model_path)
  good = tmp_path / 'good.npz'
  np.savez(good, x_test=np.zeros((4, 20), np.float32), y_test=np.zeros(4, np.int64))
  wrong = tmp_path / 'wrong.npz'
  np.savez(wrong, x_test=np.zeros((4, 7), np.float32), y_test=np.zeros(4, np.int64))
  del K
  args = [a.replace('MISSING', str(tmp_path / 'none.npz')).replace(
      'WRONGSHAPE', str(wrong)) for a in args]
  if not any(a.startswith('--data') for a in args):
    args.append(f'--data={good}')
  out_dir = tmp_path / 'out'
  code, _, err = helpers.run_main('sweep', f'--model_file={model_path}',
                                  f'--out_dir={out_dir}', *args, capsys=capsys)
  assert code == 2, err
  lines = [l for l in err if l.startswith('error:')]
  assert len(lines) == 1 and re.search(match, lines[0]), err
  assert not (out_dir / sweep.CSV_NAME).exists()


@pytest.mark.parametrize('arrays, match', [
    ({'x_train': np.zeros((2, 3))}, 'has no x_test/y_test'),
    ({'x_test': np.zeros((2, 3))}, 'has x_test but no y_test'),
    ({'x_test': np.zeros((2, 3)), 'y_test': np.zeros((2, 4))},
     'store integer class indices'),
    ({'x_test': np.zeros((2, 3)), 'y_test': np.zeros(3, np.int64)},
     '2 examples in x_test but 3 labels'),
])
def test_bad_npz_refused(arrays, match, tmp_path):
  from tfprune.data import user_data  # pylint: disable=import-outside-toplevel
  path = tmp_path / 'd.npz'
  np.savez(path, **arrays)
  with pytest.raises(TfpruneError, match=match):
    user_data.load(path)
