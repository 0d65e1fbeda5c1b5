"""The sweep: measured sparsity and counts, files written, plots, bad input."""

import csv
import json
import re

import pytest

from tests import helpers
from tfprune.criteria import graph_pruning
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.graph import weights
from tfprune.reports import plots
from tfprune.runtime import evaluate


def _config(tmp_path, data_dir, **overrides):
  fields = dict(weights_dir=str(helpers.PREBUILT), out_dir=str(tmp_path / 'out'),
                data_dir=data_dir, levels=(0, 50, 99))
  fields.update(overrides)
  return sweep.SweepConfig(**fields)


# The sweep's methods that need no data (every one but wanda and obs).
DATA_FREE = sorted(graph_pruning.CRITERIA)


@pytest.mark.parametrize('method', DATA_FREE)
@pytest.mark.parametrize('prune_output_layer', [False, True])
def test_rows_report_exact_sparsity_and_nonzero_counts(
    prebuilt, mnist_test, method, prune_output_layer):
  config = sweep.SweepConfig(weights_dir='unused', out_dir='unused',
                             methods=(method,), levels=(0, 50, 97.5),
                             prune_output_layer=prune_output_layer)
  rows = sweep.sweep(config, prebuilt.network, mnist_test)
  shapes = helpers.MLP_SHAPES if prune_output_layer else helpers.MLP_SHAPES[:-1]
  for row in rows:
    if method in ('weight', 'random'):
      pruned = sum((int(row.k * 10) * r * c) // 1000 for r, c in shapes)
    else:
      pruned = sum(((int(row.k * 10) * c) // 1000) * r for r, c in shapes)
    size = sum(r * c for r, c in shapes)
    # The trained weights have no exact zeros, so measured = requested.
    assert row.sparsity == pytest.approx(pruned / size, abs=1e-12)
    assert row.nonzero_params == prebuilt.network.num_params - pruned
  assert rows[0].accuracy == evaluate.accuracy(prebuilt.network, mnist_test.images,
                                               mnist_test.labels)


def test_run_writes_csv_config_and_plots(tmp_path, data_dir):
  config = _config(tmp_path, data_dir)
  rows = sweep.run(config)
  out = tmp_path / 'out'
  assert sorted(p.name for p in out.iterdir()) == sorted([
      'sweep.csv', 'sweep_config.json', 'pruning.png', 'weight_pruning.png',
      'unit_pruning.png'])
  with (out / 'sweep.csv').open() as f:
    table = list(csv.DictReader(f))
  assert [(r['method'], r['k']) for r in table] == [
      (m, k) for m in ('weight', 'unit') for k in ('0', '50', '99')]
  assert list(table[0]) == list(sweep.COLUMNS)
  assert [float(r['accuracy']) for r in table] == [round(r.accuracy, 4) for r in rows]
  record = json.loads((out / 'sweep_config.json').read_text())
  assert record['config']['levels'] == [0.0, 50.0, 99.0]
  assert record['weights_sha256'] == weights.load(helpers.PREBUILT).sha256
  for png in out.glob('*.png'):
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  assert not list(out.glob('.*'))  # no temporary files left


def test_without_biases_the_dense_network_scores_differently(prebuilt, mnist_test):
  with_b, without_b = (sweep.sweep(sweep.SweepConfig('u', 'u', levels=(0,), methods=('weight',),
                                                     use_biases=b), prebuilt.network, mnist_test)[0]
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


def test_weights_for_another_dataset_shape_are_refused(tmp_path, mnist_test):
  config = sweep.SweepConfig('w', 'o')
  with pytest.raises(TfpruneError, match='takes 12 inputs but the images have 784'):
    sweep.sweep(config, helpers.random_network(((12, 10),)), mnist_test)
  with pytest.raises(TfpruneError, match='have 3 outputs but mnist has 10 classes'):
    sweep.sweep(config, helpers.random_network(((784, 3),)), mnist_test)


# Through the script: exit status 2, one 'error:' line, nothing written.
SCRIPT_CASES = {
    'level-out-of-range': (['--levels=0,120'], r'k must be in \[0, 100\], got 120'),
    'level-not-a-number': (['--levels=ten'], "level 'ten' is not a number"),
    'empty-methods': (['--methods='], 'no pruning method given'),
    'unknown-method': (['--methods=weight,magic'], "unknown pruning method 'magic'"),
    'missing-weights': (['--weights_dir=/nonexistent/w'], 'weights folder /nonexistent/w does not exist'),
    'missing-data-folder': (['--data_dir=/nonexistent/data'], 'data folder /nonexistent/data does not exist'),
}


@pytest.mark.parametrize('name', sorted(SCRIPT_CASES))
def test_script_bad_input_exits_2_with_one_line(tmp_path, data_dir, name):
  args, pattern = SCRIPT_CASES[name]
  out = tmp_path / 'out'
  result = helpers.run_script('sweep', f'--out_dir={out}', f'--data_dir={data_dir}',
                              *args)
  assert result.returncode == 2, result.stderr
  lines = helpers.error_lines(result)
  assert len(lines) == 1 and re.search(pattern, lines[0]), result.stderr
  assert not out.exists() or not any(out.iterdir())


def test_script_refuses_unwritable_output_folder(tmp_path, data_dir):
  blocker = tmp_path / 'file'
  blocker.write_text('not a folder')
  result = helpers.run_script('sweep', f'--out_dir={blocker}/out', f'--data_dir={data_dir}')
  assert result.returncode == 2
  assert helpers.error_lines(result) == [
      f'error: output folder {blocker}/out is not writable (Not a directory): '
      'choose a writable folder with --out_dir']


def test_script_small_sweep_end_to_end(tmp_path, data_dir):
  out = tmp_path / 'out'
  result = helpers.run_script('sweep', f'--out_dir={out}', f'--data_dir={data_dir}',
                              '--levels=0,90', '--methods=unit')
  assert result.returncode == 0, result.stderr
  assert 'unit' in result.stdout and 'wall time' in result.stdout
  assert (out / 'sweep.csv').read_text().count('\n') == 3
  assert (out / 'unit_pruning.png').exists()
