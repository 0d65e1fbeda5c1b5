"""The sweep: measured sparsity and counts, files written, plots, bad input."""

import csv
import filecmp
import json
import os
import shutil
import signal
import stat

import numpy as np
import pytest

from tests import helpers
from tfprune.criteria import graph_pruning
from tfprune.data import datasets
from tfprune.drivers import folder_graph
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.graph import network_graph
from tfprune.graph import weights
from tfprune.reports import plots


def _config(tmp_path, data_dir, **overrides):
  fields = dict(weights_dir=str(helpers.PREBUILT), out_dir=str(tmp_path / 'out'),
                data_dir=data_dir, levels=(0, 50, 99))
  fields.update(overrides)
  return sweep.SweepConfig(**fields)


# The sweep's methods that need no data (every one but wanda and obs).
DATA_FREE = sorted(graph_pruning.kernel_criteria())


@pytest.fixture(scope='module')
def slice_test(mnist_slice_dir):
  """The first 1,000 MNIST test images: the counts below do not depend on
  how many images each point is scored on."""
  return datasets.load('mnist', 'test', mnist_slice_dir)


@pytest.mark.parametrize('method', DATA_FREE)
@pytest.mark.parametrize('prune_output_layer', [False, True])
def test_rows_report_exact_sparsity_and_nonzero_counts(
    prebuilt, slice_test, method, prune_output_layer):
  config = sweep.SweepConfig(weights_dir='unused', out_dir='unused',
                             methods=(method,), levels=(0, 50, 97.5),
                             prune_output_layer=prune_output_layer)
  saved = []
  rows = sweep.sweep(config, folder_graph.to_graph(prebuilt), slice_test,
                     on_pruned=lambda method, k, graph: saved.append(graph))
  shapes = helpers.MLP_SHAPES if prune_output_layer else helpers.MLP_SHAPES[:-1]
  dense_params = sum(a.size for a in prebuilt.network.kernels + prebuilt.network.biases)
  for row, graph in zip(rows, saved, strict=True):
    if method in ('weight', 'random'):
      pruned = sum((int(row.k * 10) * r * c) // 1000 for r, c in shapes)
    else:  # the graph's outputs are not channels to remove
      pruned = sum(((int(row.k * 10) * c) // 1000) * r
                   for r, c in helpers.MLP_SHAPES[:-1])
    size = sum(r * c for r, c in shapes)
    # The trained weights have no exact zeros, so measured = requested.
    assert row.sparsity == pytest.approx(pruned / size, abs=1e-12)
    # The row counts the graph the sweep saves (compacted where units go: a
    # unit whose weights are all gone takes its bias and next-layer row).
    kernels = [n.params['kernel'] for n in graph.nodes if 'kernel' in n.params]
    assert row.nonzero_params == sum(
        np.count_nonzero(a) for n in graph.nodes for a in n.params.values())
    assert row.flops == sum(np.count_nonzero(w) for w in kernels)  # one position
    assert row.nonzero_params <= dense_params - pruned
    if method == 'unit' and row.k:
      assert row.nonzero_params < dense_params - pruned
  # Oracle: the dense chain by numpy.
  h = slice_test.images.reshape(len(slice_test), -1).astype(np.float64)
  for i, (w, b) in enumerate(zip(prebuilt.network.kernels, prebuilt.network.biases)):
    h = h @ w + b
    h = np.maximum(h, 0) if i < len(prebuilt.network.kernels) - 1 else h
  assert rows[0].accuracy == np.mean(h.argmax(axis=1) == slice_test.labels)


def test_run_writes_csv_config_and_plots(tmp_path, mnist_slice_dir):
  config = _config(tmp_path, mnist_slice_dir)
  rows = sweep.run(config)
  out = tmp_path / 'out'
  assert sorted(p.name for p in out.iterdir()) == sorted([
      'sweep.csv', 'sweep_config.json', 'timing.json', 'pruning.png',
      'weight_pruning.png', 'unit_pruning.png'])
  with (out / 'sweep.csv').open() as f:
    table = list(csv.DictReader(f))
  assert [(r['method'], r['k']) for r in table] == [
      (m, k) for m in ('weight', 'unit') for k in ('0', '50', '99')]
  assert list(table[0]) == list(sweep.COLUMNS)
  assert [float(r['accuracy']) for r in table] == [round(r.accuracy, 4) for r in rows]
  record = json.loads((out / 'sweep_config.json').read_text())
  assert record['config']['levels'] == [0.0, 50.0, 99.0]
  assert record['weights_sha256'] == weights.load(helpers.PREBUILT).sha256
  assert 'seconds' not in (out / 'sweep_config.json').read_text()
  assert json.loads((out / 'timing.json').read_text())['sweep_seconds'] > 0
  for png in out.glob('*.png'):
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  assert not list(out.glob('.*'))  # no temporary files left


def test_without_biases_the_dense_network_scores_differently(prebuilt, slice_test):
  with_b, without_b = (sweep.sweep(sweep.SweepConfig('u', 'u', levels=(0,), methods=('weight',),
                                                     use_biases=b),
                                   folder_graph.to_graph(prebuilt, b), slice_test)[0]
                       for b in (True, False))
  assert with_b.accuracy != without_b.accuracy
  assert without_b.nonzero_params == sum(k.size for k in prebuilt.network.kernels)


def test_plot_redraws_from_csv_alone(tmp_path):
  csv_path = tmp_path / 'sweep.csv'
  csv_path.write_text('method,k,accuracy,sparsity,nonzero_params\n'
                      'weight,0,0.98,0,10\nweight,90,0.97,0.9,1\n'
                      'random,0,0.98,0,10\n')
  written = plots.plot_sweep(csv_path, tmp_path / 'plots')
  assert sorted(p.name for p in written) == [
      'pruning.png', 'random_pruning.png', 'weight_pruning.png']


@pytest.mark.parametrize('content,pattern', [
    ('method,k\nweight,0\n', "no column 'accuracy'"),
    ('method,k,accuracy,sparsity\nweight,abc,0.9,0\n', 'line 2: non-numeric'),
    ('method,k,accuracy,sparsity\n', 'holds no rows'),
])
def test_plot_refuses_bad_csv(tmp_path, content, pattern):
  (tmp_path / 'sweep.csv').write_text(content)
  with pytest.raises(TfpruneError, match=pattern):
    plots.plot_sweep(tmp_path / 'sweep.csv', tmp_path)


@pytest.mark.parametrize('texts,pattern', [
    (['120'], r'k must be in \[0, 100\], got 120'),
    (['-5'], r'k must be in \[0, 100\], got -5'),
    (['abc'], "level 'abc' is not a number"),
    (['nan'], r'k must be a number in \[0, 100\]'),
])
def test_bad_levels_are_refused(texts, pattern):
  with pytest.raises(TfpruneError, match=pattern):
    sweep.parse_levels(texts)


@pytest.mark.parametrize('fields,pattern', [
    (dict(methods=()), 'no pruning method given'),
    (dict(methods=('weight', 'magic')), "unknown pruning method 'magic'"),
    (dict(levels=()), 'no pruning level given'),
    (dict(dataset='svhn'), "unknown dataset 'svhn'"),
])
def test_bad_config_is_refused(fields, pattern):
  with pytest.raises(TfpruneError, match=pattern):
    sweep.SweepConfig(weights_dir='w', out_dir='o', **fields)


def test_failed_run_keeps_earlier_results(tmp_path, data_dir):
  out = tmp_path / 'out'
  out.mkdir()
  (out / 'sweep.csv').write_text('earlier results\n')
  bad_data = tmp_path / 'data'
  helpers.write_dataset(bad_data)
  (bad_data / 'mnist' / 't10k-labels-idx1-ubyte.gz').write_bytes(b'broken')
  with pytest.raises(TfpruneError, match='corrupt or truncated'):
    sweep.run(_config(tmp_path, str(bad_data)))
  assert (out / 'sweep.csv').read_text() == 'earlier results\n'
  assert [p.name for p in out.iterdir()] == ['sweep.csv']


def _tiny_sweep_inputs(tmp_path):
  """A small MNIST-shaped weight folder and 20 images."""
  folder = tmp_path / 'w'
  weights.save(folder, helpers.random_network(((784, 100), (100, 10))),
               {'model': 'mlp', 'dataset': 'mnist'})
  return str(folder), str(helpers.write_dataset(tmp_path / 'data'))


def test_identical_sweeps_write_identical_files(tmp_path):
  weights_dir, data_dir = _tiny_sweep_inputs(tmp_path)
  config = sweep.SweepConfig(weights_dir, str(tmp_path / 'out'), data_dir=data_dir,
                             levels=(0, 50, 90, 99))
  out, first = tmp_path / 'out', tmp_path / 'first'
  sweep.run(config)
  shutil.copytree(out, first)
  sweep.run(config)
  for name in (sweep.CSV_NAME, sweep.CONFIG_NAME):
    assert filecmp.cmp(out / name, first / name, shallow=False), name


def _snapshot(folder):
  return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
          for p in sorted(folder.rglob('*'))}


def test_interrupted_sweep_leaves_the_earlier_run_whole(tmp_path, monkeypatch):
  weights_dir, data_dir = _tiny_sweep_inputs(tmp_path)
  out = tmp_path / 'out'
  sweep.run(sweep.SweepConfig(weights_dir, str(out), data_dir=data_dir,
                              levels=(0, 90), save_pruned=True))
  (out / 'notes.txt').write_text('kept\n')
  before = _snapshot(out)
  assert 'pruned/unit-k90.npz' in before
  saved = []
  real_save = sweep.graph_io.save

  def save_then_interrupt(graph, path, *args):
    if len(saved) == 3:
      raise KeyboardInterrupt
    saved.append(path)
    return real_save(graph, path, *args)

  monkeypatch.setattr(sweep.graph_io, 'save', save_then_interrupt)
  with pytest.raises(KeyboardInterrupt):
    sweep.run(sweep.SweepConfig(weights_dir, str(out), data_dir=data_dir,
                                methods=('weight',), levels=(10, 20, 30, 40),
                                save_pruned=True))
  assert len(saved) == 3
  assert _snapshot(out) == before  # no new export, no staging folder left
  assert sorted(p.name for p in tmp_path.iterdir()) == ['data', 'out', 'w']


def test_a_finished_sweep_replaces_the_earlier_outputs_as_a_set(tmp_path):
  weights_dir, data_dir = _tiny_sweep_inputs(tmp_path)
  out = tmp_path / 'out'
  sweep.run(sweep.SweepConfig(weights_dir, str(out), data_dir=data_dir,
                              levels=(0, 90), save_pruned=True))
  (out / 'notes.txt').write_text('kept\n')
  sweep.run(sweep.SweepConfig(weights_dir, str(out), data_dir=data_dir,
                              methods=('weight',), levels=(50,), save_pruned=True))
  assert sorted(p.name for p in (out / 'pruned').iterdir()) == ['weight-k50.npz']
  assert (out / 'notes.txt').read_text() == 'kept\n'
  assert [r['k'] for r in helpers.read_csv(out / sweep.CSV_NAME)] == ['50']


def test_outputs_get_the_users_umask_and_failed_runs_leave_no_folder(tmp_path):
  weights_dir, data_dir = _tiny_sweep_inputs(tmp_path)
  previous = os.umask(0o027)
  try:
    sweep.run(sweep.SweepConfig(weights_dir, str(tmp_path / 'a' / 'out'),
                                data_dir=data_dir, levels=(90,), save_pruned=True))
  finally:
    os.umask(previous)
  out = tmp_path / 'a' / 'out'
  assert stat.S_IMODE((out / sweep.CSV_NAME).stat().st_mode) == 0o640
  assert stat.S_IMODE((out / 'pruned').stat().st_mode) == 0o750
  assert stat.S_IMODE((out / 'pruned' / 'unit-k90.npz').stat().st_mode) == 0o640
  with pytest.raises(TfpruneError):
    sweep.run(sweep.SweepConfig(weights_dir, str(tmp_path / 'b' / 'c' / 'out'),
                                data_dir=str(tmp_path / 'nowhere'), levels=(90,)))
  assert not (tmp_path / 'b').exists()


def test_weights_for_another_dataset_shape_are_refused(tmp_path, slice_test):
  config = sweep.SweepConfig('w', 'o')
  with pytest.raises(TfpruneError, match=r'examples of shape \(28, 28, 1\) but '
                     r'the model takes \(12,\)'):
    sweep.sweep(config, network_graph.to_graph(helpers.random_network(((12, 10),))),
                slice_test)
  with pytest.raises(TfpruneError, match=r'y_test\[0\] is 7 but the model has 3 outputs'):
    sweep.sweep(config, network_graph.to_graph(helpers.random_network(((784, 3),))),
                slice_test)


# Bad input through the script is in tests/test_cli.py.


def test_script_small_sweep_end_to_end(tmp_path, mnist_slice_dir, capsys):
  # The script's main in this process (`helpers.run_main`): a fresh
  # interpreter's start of sweep.py is tests/test_cli.py's real-script case.
  out = tmp_path / 'out'
  code, stdout, err = helpers.run_main(
      'sweep', f'--out_dir={out}', f'--data_dir={mnist_slice_dir}',
      '--levels=0,90', '--methods=unit', capsys=capsys)
  assert code == 0, err
  assert 'unit' in stdout and 'wall time' in stdout
  assert (out / 'sweep.csv').read_text().count('\n') == 3
  assert (out / 'unit_pruning.png').exists()


def test_ctrl_c_cannot_split_the_final_moves(tmp_path, monkeypatch):
  weights_dir, data_dir = _tiny_sweep_inputs(tmp_path)
  seen = []
  real_move_all = sweep.atomic._move_all

  def move_all(entries, target):
    seen.append(signal.getsignal(signal.SIGINT))
    real_move_all(entries, target)

  monkeypatch.setattr(sweep.atomic, '_move_all', move_all)
  before = signal.getsignal(signal.SIGINT)
  sweep.run(sweep.SweepConfig(weights_dir, str(tmp_path / 'out'),
                              data_dir=data_dir, levels=(90,)))
  assert seen == [signal.SIG_IGN]
  assert signal.getsignal(signal.SIGINT) is before
