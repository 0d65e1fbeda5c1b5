"""The benchmark on the prebuilt weights, at two levels: ratios and files."""

import json

import pytest

from tests import helpers
from tfprune import benchmark


def test_benchmark_writes_ratios_against_dense(tmp_path, data_dir):
  config = benchmark.BenchmarkConfig(
      weights_dir=str(helpers.PREBUILT), out_dir=str(tmp_path), data_dir=data_dir,
      methods=('weight', 'unit'), levels=(0, 90), repeats=1, single_repeats=3)
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
  assert len(table) == 1 + 4 + 1  # header, one line per row, the sweep line
  assert table[-1].startswith('default sweep (20 points)')
