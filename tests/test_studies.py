"""Smoke runs of the three CNN studies, exact counts in their outputs, bad input.

Studies A and B run their scripts for one finetuning epoch on tiny real data
(untrained weights: only the pipeline is under test); Study C runs in-process
on tensorflow-datasets mock CIFAR-10 (the mock patches tfds in this process).
"""

import csv
import json
import os

import numpy as np
import pytest

from tests import helpers
from tfprune.errors import TfpruneError
from tfprune.graph import weights
from tfprune.keras_io import models
from tfprune.keras_io import trace
from experiments.studies import study_resnet


def _untrained(tmp_path, name):
  folder = tmp_path / name
  model = models.get(name)((28, 28, 1), 10)
  weights.save(folder, trace.trace(model).graph, {'model': name})
  return folder


def _rows(path):
  with open(path, newline='') as f:
    return list(csv.DictReader(f))


def test_study_a_script_prunes_exact_global_counts(tmp_path, data_dir, capsys):
  code, _, err = helpers.run_main(
      'study_a', f'--weights_dir={_untrained(tmp_path, "fashion_cnn")}',
      '--levels=0.01,50', '--finetune_epochs=1', '--train_limit=256',
      '--test_limit=200', f'--out_dir={tmp_path / "a"}', f'--data_dir={data_dir}',
      capsys=capsys)
  assert code == 0, err[-20:]
  rows = _rows(tmp_path / 'a' / 'study_a.csv')
  kernel_weights = 3 * 3 * 32 + 3 * 3 * 32 * 64 + 3136 * 128 + 128 * 10
  pruned = {(r['schedule'], float(r['k'])): int(r['pruned_weights']) for r in rows}
  for schedule in ('oneshot', 'gradual'):
    assert pruned[schedule, 0.01] == kernel_weights // 10_000
    assert pruned[schedule, 50.0] == kernel_weights // 2
  assert (tmp_path / 'a' / 'study_a.png').stat().st_size > 0
  _check_timing(tmp_path / 'a', rows, ('schedule', 'k'))


def _check_timing(folder, rows, keys):
  """No seconds in the CSV; timing.json holds one entry per row."""
  assert not any('second' in c or 'time' in c for c in rows[0])
  record = json.loads((folder / 'timing.json').read_text())
  assert [tuple(str(t[k]) for k in keys) for t in record['rows']] == [
      tuple(r[k] for k in keys) for r in rows]
  assert record['machine']['cpu_count'] == os.cpu_count()


def test_study_b_script_reports_every_method(tmp_path, mnist_slice_dir, capsys):
  code, _, err = helpers.run_main(
      'study_b', f'--weights_dir={_untrained(tmp_path, "lenet5")}',
      '--levels=50', '--cycles=1', '--finetune_epochs=1', '--train_limit=256',
      '--timing_repeats=1', f'--out_dir={tmp_path / "b"}',
      f'--data_dir={mnist_slice_dir}',
      capsys=capsys)
  assert code == 0, err[-20:]
  rows = {r['method']: r for r in _rows(tmp_path / 'b' / 'study_b.csv')}
  assert set(rows) == {'dense', 'random', 'l1', 'structured_l1'}
  assert float(rows['dense']['params_ratio']) == 1.0
  # Unstructured: FLOPs halve on paper, but nothing compacts and the file
  # stays the same size; structured: the compacted network really shrinks.
  for method in ('random', 'l1'):
    assert float(rows[method]['npy_bytes_ratio']) == 1.0
    assert float(rows[method]['flops_ratio']) < 0.55
  assert float(rows['structured_l1']['compact_npy_bytes_ratio']) < 0.5
  assert float(rows['structured_l1']['compact_flops_ratio']) < 0.5
  _check_timing(tmp_path / 'b', list(rows.values()), ('method', 'k'))


def test_missing_cifar10_says_what_to_download(tmp_path):
  with pytest.raises(TfpruneError, match=r'CIFAR-10 is not in .*--download.*tfds build cifar10'):
    study_resnet.load_cifar10('test', str(tmp_path / 'tfds'))


def test_iterative_schedule_prunes_step_fraction_of_the_remaining():
  levels = study_resnet.iterative_levels(90, 0.11)
  assert len(levels) == 20 and levels[-1] == 90
  np.testing.assert_allclose(levels[:2], [11, 100 * (1 - 0.89 ** 2)])
  assert len(study_resnet.iterative_levels(50, 0.11)) == 6


def test_study_c_on_mock_cifar10(tmp_path):
  # What is checked here is the tfds path and the pruning under masks through
  # retraining, not the dense training (epochs=0) or the saved networks:
  # test_resnet_folder's test_study_c_networks_score_like_keras trains the
  # dense network and scores every saved network.
  tfds = pytest.importorskip('tensorflow_datasets')
  config = study_resnet.StudyCConfig(
      out_dir=str(tmp_path / 'c'), width=0.0625, epochs=0, targets=(50,),
      oneshot_retrain_epochs=1, step_fraction=0.3, step_retrain_epochs=1,
      final_retrain_epochs=0, batch_size=32, save_networks=False)
  with tfds.testing.mock_data(num_examples=32):
    rows = study_resnet.run(config, verbose=False)
  by = {(r['procedure'], r['target']): r for r in rows}
  assert by['oneshot', 50]['measured_sparsity'] == 0.5
  assert by['iterative', 50]['measured_sparsity'] == 0.5
  assert by['iterative', 50]['prune_steps'] == 2  # 30%, then exactly 50%
  assert (tmp_path / 'c' / 'study_c_config.json').exists()
  _check_timing(tmp_path / 'c', _rows(tmp_path / 'c' / 'study_c.csv'),
                ('procedure', 'target'))
