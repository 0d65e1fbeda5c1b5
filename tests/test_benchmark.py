"""The benchmark on the prebuilt weights, at two levels: ratios and files."""

import json

import numpy as np
import pytest

from tests import helpers
from tfprune.drivers import benchmark
from tfprune.errors import TfpruneError
from tfprune.runtime import paired_timing
from tfprune.runtime import timers


def test_benchmark_writes_ratios_against_dense(tmp_path, mnist_slice_dir):
  config = benchmark.BenchmarkConfig(
      weights_dir=str(helpers.PREBUILT), out_dir=str(tmp_path), data_dir=mnist_slice_dir,
      methods=('weight', 'unit'), levels=(0, 90), repeats=1, single_repeats=3,
      min_seconds=0.01)
  record = benchmark.run(config)
  assert json.loads((tmp_path / benchmark.JSON_NAME).read_text())['rows'] == record['rows']
  assert (tmp_path / benchmark.PLOT_NAME).read_bytes()[:4] == b'\x89PNG'
  rows = {(r['method'], r['k']): r for r in record['rows']}
  assert rows[('weight', 0)]['nonzero_ratio'] == 1.0
  assert rows[('weight', 0)]['accuracy'] == pytest.approx(record['dense']['accuracy'])
  assert rows[('unit', 90)]['kernels'] == '+'.join(['dense'] * 5)
  # 10% of the hidden units are left: the compact network is far cheaper.
  assert rows[('unit', 90)]['theoretical_speedup'] > 20
  assert rows[('weight', 90)]['export_size_ratio'] < 0.2
  assert record['default_sweep']['points'] == 20
  table = benchmark.format_table(record).splitlines()
  assert len(table) == 1 + 4 + 2  # header, one line per row, noise, sweep
  assert table[-2].startswith('~ within the noise of identical runs (dense vs '
                              'dense, 2 alternated rounds): ')
  assert table[-1].startswith('default sweep (20 points)')
  noise = record['noise']
  assert noise['batch_10000'] >= 1 and noise['batch_1'] >= 1
  for row, line in zip(record['rows'], table[1:5]):
    # Each ratio is of the two times next to it; a ratio inside the A-vs-A
    # control's range is marked as noise, in the record and in the table.
    assert row['throughput_ratio_10000'] == pytest.approx(
        row['dense_seconds_10000'] / row['seconds_10000'])
    assert row['throughput_ratio_1'] == pytest.approx(
        row['dense_seconds_1'] / row['seconds_1'])
    for b, key in ((10000, 'batch_10000'), (1, 'batch_1')):
      ratio = row[f'throughput_ratio_{b}']
      assert row[f'within_noise_{b}'] == (1 / noise[key] <= ratio <= noise[key])
      assert (f'{ratio:.2f}x~' in line) == row[f'within_noise_{b}'], line


def test_paired_times_summarise_each_function_over_alternating_blocks():
  calls = []
  first, second = (lambda: calls.append('a')), (lambda: calls.append('b'))
  benchmark.paired_times(first, second, runs=4, min_seconds=0.0, rounds=2)
  # A warm-up and a probe call each, then two rounds of blocks of 2.
  assert ''.join(calls) == 'aabb' + 'aabb' * 2


def test_graph_benchmark_times_the_compacted_model_apart_from_results(tmp_path):
  from tests import keras_zoo  # pylint: disable=import-outside-toplevel
  from tfprune.drivers import graph_benchmark  # pylint: disable=import-outside-toplevel
  from tfprune.keras_io import importer  # pylint: disable=import-outside-toplevel
  model = keras_zoo.build('residual', 'keras3')
  model.save(tmp_path / 'residual.keras')
  rng = np.random.default_rng(0)
  np.savez(tmp_path / 'data.npz',
           x_test=rng.standard_normal((64, 10, 10, 3)).astype(np.float32),
           y_test=rng.integers(0, 3, 64))
  config = graph_benchmark.GraphBenchmarkConfig(
      out_dir=str(tmp_path / 'out'), model_file=str(tmp_path / 'residual.keras'),
      data=str(tmp_path / 'data.npz'), methods=('weight', 'unit', 'unit_l1'),
      levels=(0, 70), min_seconds=0, runs=2)
  record = graph_benchmark.run(config)
  out = tmp_path / 'out'
  rows = helpers.read_csv(out / graph_benchmark.CSV_NAME)
  assert list(rows[0]) == list(graph_benchmark.COLUMNS)  # no timing in results
  # The evaluator's kernel per weighted node: the residual model's are small.
  graph = importer.from_keras(str(tmp_path / 'residual.keras'))
  assert {r['kernels'] for r in rows} == {'+'.join(
      'dense' if n.op == 'dense' else 'conv' for n in graph.weighted())}
  by_key = {(r['method'], r['k']): r for r in rows}
  dense = by_key[('unit', '0')]
  assert int(by_key[('unit', '70')]['params']) < int(dense['params'])
  assert int(by_key[('unit', '70')]['keras_bytes']) < int(dense['keras_bytes'])
  # unit_l1 removes as many channels as unit, ranked otherwise.
  assert by_key[('unit_l1', '70')]['params'] == by_key[('unit', '70')]['params']
  assert by_key[('weight', '70')]['params'] == dense['params']  # masked only
  assert int(by_key[('weight', '70')]['graph_bytes']) < int(dense['graph_bytes'])
  timing = json.loads((out / graph_benchmark.TIMING_NAME).read_text())
  # The measured model is identified by its weights (its file has a date).
  from tfprune.drivers import mobilenet_model  # pylint: disable=import-outside-toplevel
  assert timing['model_weights_sha256'] == mobilenet_model.weights_sha256(model)
  assert [(t['method'], t['timed']) for t in timing['timings']] == [
      ('weight', 'graph'), ('weight', 'graph'), ('unit', 'keras'), ('unit', 'keras'),
      ('unit_l1', 'keras'), ('unit_l1', 'keras')]
  # One A-vs-A control per timed kind and batch size; each row's speed-up is
  # marked as noise exactly when it lies within its control's range.
  assert sorted((c['timed'], c['batch']) for c in timing['controls']) == [
      (kind, b) for kind in ('graph', 'keras') for b in graph_benchmark.BATCHES]
  noise = {(c['timed'], c['batch']): c['noise'] for c in timing['controls']}
  for t in timing['timings']:
    for b in graph_benchmark.BATCHES:
      assert t[f'speedup_{b}'] == pytest.approx(
          t[f'dense_seconds_{b}'] / t[f'seconds_{b}'])
      assert t[f'min_seconds_{b}'] <= t[f'seconds_{b}']
      assert t[f'dense_min_seconds_{b}'] <= t[f'dense_seconds_{b}']
      assert t[f'noise_{b}'] == noise[t['timed'], b] >= 1
      assert t[f'within_noise_{b}'] == (
          1 / t[f'noise_{b}'] <= t[f'speedup_{b}'] <= t[f'noise_{b}'])
  table = graph_benchmark.format_table(record).splitlines()
  assert table[7].startswith('speed-ups: median over 6 alternated rounds; ~')
  assert len(table) == 1 + 6 + 1 + 4
  assert (out / graph_benchmark.PLOT_NAME).stat().st_size > 0
  assert len(record['rows']) == 6


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


def test_graph_benchmark_refuses_a_data_aware_method_listing_the_ones_it_times(tmp_path):
  from tfprune.drivers import graph_benchmark  # pylint: disable=import-outside-toplevel
  with pytest.raises(TfpruneError, match=r"method 'obs' needs calibration data, which "
                     r"this timing run does not draw: choose one of "
                     r"weight,unit,random,unit_l1,unit_bn,filter_l1$"):
    graph_benchmark.GraphBenchmarkConfig(out_dir=str(tmp_path), model_file='m.keras',
                                         methods=('obs',))


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
