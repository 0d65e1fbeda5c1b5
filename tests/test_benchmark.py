"""The one benchmark: every network through the same path, results apart from timings.

The MLP, LeNet-5 and the Fashion CNN weight folders, the ResNet-18 model
file and a user's `.keras` are benchmarked by the same code: their CSV rows
are the sweep's points (accuracy, sparsity, the saved graph's bytes), the
timings and the A-vs-A controls go to the timing file, and a speed-up is
marked as noise exactly when it lies within its control's range.
"""

import json

import numpy as np
import pytest

from tests import helpers
from tests import keras_zoo
from tfprune.drivers import benchmark
from tfprune.drivers import mobilenet_model
from tfprune.drivers import point_cost
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.keras_io import importer
from tfprune.reports import benchmark_table
from tfprune.runtime import paired_timing
from tfprune.runtime import timers

WEIGHTS = helpers.REPO / 'weights'
# Each network, the data it was made on, and whether a Dense layer of it is
# large enough for CSR (the benchmark then times CSR against dense too).
NETWORKS = {
    'mlp': ({'weights_dir': str(WEIGHTS / 'mlp-mnist')}, 'mnist', True),
    'lenet5': ({'weights_dir': str(WEIGHTS / 'lenet5-mnist')}, 'mnist', False),
    'fashion_cnn': ({'weights_dir': str(WEIGHTS / 'fashion_cnn-fashion_mnist')},
                    'fashion_mnist', True),
    'resnet18': ({'model_file': str(WEIGHTS / 'resnet18-w0.25-fashion_mnist'
                                    / 'model.keras')}, 'fashion_mnist', False),
}


def _check_record(record, out, batches):
  """What every benchmark must write: CSV without timings, JSON with them,
  each speed-up the ratio of its medians, `~` exactly within the noise."""
  rows = helpers.read_csv(out / benchmark_table.CSV_NAME)
  assert list(rows[0]) == list(benchmark_table.COLUMNS)  # no timing in results
  assert benchmark_table.to_csv(record['rows']) == (
      out / benchmark_table.CSV_NAME).read_text()
  timing = json.loads((out / benchmark_table.TIMING_NAME).read_text())
  assert timing['timings'] == json.loads(json.dumps(record['timings']))
  noise = {(c['timed'], c['batch']): c['noise'] for c in timing['controls']}
  for t in timing['timings']:
    for prefix in ('', 'csr_') if 'csr_kernels' in t else ('',):
      for b in batches:
        speedup = t[f'{prefix}speedup_{b}']
        assert speedup == pytest.approx(
            t[f'{prefix}dense_seconds_{b}'] / t[f'{prefix}seconds_{b}'])
        assert t[f'{prefix}min_seconds_{b}'] <= t[f'{prefix}seconds_{b}']
        assert t[f'{prefix}noise_{b}'] == noise[t['timed'], b] >= 1
        assert t[f'{prefix}within_noise_{b}'] == (
            1 / noise[t['timed'], b] <= speedup <= noise[t['timed'], b])
  table = benchmark_table.format_table(record).splitlines()
  assert len(table) == 1 + len(rows) + 1 + len(timing['controls'])
  for t, line in zip(timing['timings'], table[1:]):
    for b in batches:
      assert (f'{t[f"speedup_{b}"]:.2f}x~' in line) == t[f'within_noise_{b}']
  assert (out / benchmark_table.PLOT_NAME).read_bytes()[:4] == b'\x89PNG'
  return rows, timing


@pytest.mark.parametrize('name', NETWORKS)
def test_every_network_is_benchmarked_through_the_one_path(name, data_dir,
                                                           tmp_path):
  network, dataset, large_dense = NETWORKS[name]
  config = benchmark.BenchmarkConfig(
      out_dir=str(tmp_path / 'out'), dataset=dataset, data_dir=data_dir,
      levels=(0, 50), batch_sizes=(1, 3), min_seconds=0, runs=1, **network)
  record = benchmark.run(config)
  rows, timing = _check_record(record, tmp_path / 'out', (1, 3))
  # The rows are the sweep's points of the same network and data.
  swept = sweep.sweep(config.sweep_config(), *benchmark.load_checked(config)[:2])
  assert [(r['method'], r['k'], r['accuracy'], r['sparsity'], r['kernels'])
          for r in rows] == [(r.method, f'{r.k:g}', f'{r.accuracy:.4f}',
                              f'{r.sparsity:.6f}', r.kernels) for r in swept]
  assert [int(r['graph_bytes']) for r in rows] == [r.size_bytes for r in swept]
  by_key = {(r['method'], r['k']): r for r in rows}
  # unit removes channels: a smaller saved model; weight only masks.
  assert int(by_key['unit', '50']['params']) < int(by_key['unit', '0']['params'])
  assert by_key['weight', '50']['params'] == by_key['unit', '0']['params']
  assert [(t['method'], t['timed'], 'csr_kernels' in t)
          for t in timing['timings']] == [
              ('weight', 'graph', large_dense)] * 2 + [('unit', 'keras', False)] * 2


def test_mlp_benchmark_times_obs_and_csr_against_dense(mnist_slice_dir, tmp_path):
  config = benchmark.BenchmarkConfig(
      out_dir=str(tmp_path), weights_dir=str(helpers.PREBUILT),
      data_dir=mnist_slice_dir, methods=('weight', 'obs'), levels=(0, 90),
      batch_sizes=(1, 10), calibration_size=64, min_seconds=0, runs=2)
  record = benchmark.run(config)
  rows, timing = _check_record(record, tmp_path, (1, 10))
  by_key = {(r['method'], r['k']): r for r in rows}
  assert by_key['obs', '90']['timed'] == 'masked graph'
  assert float(by_key['obs', '90']['sparsity']) == pytest.approx(0.9, abs=1e-3)
  # The four large layers on CSR against dense, on every weight-level row.
  assert {t['csr_kernels'] for t in timing['timings']} == {
      'csr+csr+csr+csr+dense'}
  dense = record['dense']
  assert dense['params'] == sum(i * u + u for i, u in helpers.MLP_SHAPES)
  row = record['rows'][3]  # obs at k = 90: nonzero ratio about 0.1
  assert row['nonzero_params'] / dense['params'] < 0.11
  # The graph file stores 8 bytes (uint32 index, float32 value) per non-zero
  # of a sparse array, 4 per entry of a dense one: about 2x the density.
  assert row['graph_bytes'] < 2.1 * row['nonzero_params'] / dense['params'] * (
      dense['graph_bytes'])


def test_a_users_keras_model_is_identified_by_its_weights(tmp_path):
  model = keras_zoo.build('residual', 'keras3')
  model.save(tmp_path / 'residual.keras')
  rng = np.random.default_rng(0)
  np.savez(tmp_path / 'data.npz',
           x_test=rng.standard_normal((64, 10, 10, 3)).astype(np.float32),
           y_test=rng.integers(0, 3, 64))
  config = benchmark.BenchmarkConfig(
      out_dir=str(tmp_path / 'out'), model_file=str(tmp_path / 'residual.keras'),
      data=str(tmp_path / 'data.npz'), methods=('weight', 'unit', 'unit_l1'),
      levels=(0, 70), min_seconds=0, runs=2)
  record = benchmark.run(config)
  rows, timing = _check_record(record, tmp_path / 'out', (1, 256))
  # The evaluator's kernel per weighted node: the residual model's are small.
  graph = importer.from_keras(str(tmp_path / 'residual.keras'))
  assert {r['kernels'] for r in rows} == {'+'.join(
      'dense' if n.op == 'dense' else 'conv' for n in graph.weighted())}
  by_key = {(r['method'], r['k']): r for r in rows}
  dense = by_key[('unit', '0')]
  assert int(by_key[('unit', '70')]['keras_bytes']) < int(dense['keras_bytes'])
  # unit_l1 removes as many channels as unit, ranked otherwise.
  assert by_key[('unit_l1', '70')]['params'] == by_key[('unit', '70')]['params']
  assert int(by_key[('weight', '70')]['graph_bytes']) < int(dense['graph_bytes'])
  # The measured model is identified by its weights (its file has a date).
  assert timing['model_weights_sha256'] == mobilenet_model.weights_sha256(model)
  # One A-vs-A control per timed kind and batch size.
  assert sorted((c['timed'], c['batch']) for c in timing['controls']) == [
      (kind, b) for kind in ('graph', 'keras') for b in (1, 256)]


@pytest.mark.parametrize('field, value, message', [
    ('batch_sizes', (1, 0), r'batch_sizes must be at least 1 each, got \[1, 0\]'),
    ('batch_sizes', (1, 1), '--batch_sizes gives 1 twice'),
    ('methods', ('weight', 'nope'), "'nope'"),
    ('min_seconds', float('nan'), 'min_seconds must be a number >= 0, got nan'),
    ('runs', 0, 'runs must be at least 1, got 0: pass e.g. --runs=20'),
])
def test_bad_benchmark_settings_are_refused(tmp_path, field, value, message):
  with pytest.raises(TfpruneError, match=message):
    benchmark.BenchmarkConfig(out_dir=str(tmp_path),
                              weights_dir=str(helpers.PREBUILT), **{field: value})


def test_point_cost_refuses_a_data_aware_method_listing_the_ones_it_times(tmp_path):
  with pytest.raises(TfpruneError, match=r"method 'obs' needs calibration data, which "
                     r"this timing run does not draw: choose one of "
                     r"weight,unit,random,unit_l1,unit_bn,filter_l1$"):
    point_cost.PointCostConfig(out_dir=str(tmp_path), model_file='m.keras',
                               methods=('obs',))


def test_pair_keeps_min_median_and_each_rounds_ratio(monkeypatch):
  # Fixed call times instead of a clock: baseline calls take 4, 2 (round 1)
  # and 6, 8 (round 2) seconds; candidate calls 1, 3 and 2, 2.
  monkeypatch.setattr(timers, 'timings', lambda fn, repeats, warm_up=True: [1.0])
  monkeypatch.setattr(timers, 'interleaved_timings', lambda fns, runs, rounds: [
      [4.0, 2.0, 6.0, 8.0], [1.0, 3.0, 2.0, 2.0]])
  pair = paired_timing.pair(None, None, runs=4, min_seconds=0, rounds=2)
  assert (pair.baseline_min, pair.baseline_median) == (2.0, 5.0)
  assert (pair.candidate_min, pair.candidate_median) == (1.0, 2.0)
  assert pair.round_ratios == (1.5, 3.5)  # medians 3/2 and 7/2
  assert (pair.speedup, pair.speedup_of_min) == (2.5, 2.0)
  # As a control it would say identical runs strayed up to 3.5x from 1x.
  assert pair.noise() == pytest.approx(3.5)
  assert paired_timing.within_noise(1 / 3.5, 3.5)
  assert paired_timing.within_noise(3.5, 3.5)
  assert not paired_timing.within_noise(3.6, 3.5)
  ratios = paired_timing.Pair(1, 1, 1, 1, (0.5, 1.2)).noise()
  assert ratios == pytest.approx(2.0)  # a slow round counts like a fast one


def test_paired_model_times_time_both_models_at_each_batch_size():
  seen = []

  class Model:  # a stand-in for a Keras model: called through __call__
    def __init__(self, tag):
      self.tag = tag

    def __call__(self, x):
      seen.append((self.tag, int(x.shape[0])))
      return x

  times = benchmark.paired_model_times(Model('a'), Model('b'), (3,), (1, 5),
                                       runs=2, min_seconds=0.0, rounds=1)
  assert sorted(times) == [1, 5]
  assert all(len(pair) == 2 and min(pair) >= 0 for pair in times.values())
  # tf.function traces each model once per batch size: a, then b, per size.
  assert seen == [('a', 1), ('b', 1), ('a', 5), ('b', 5)]
