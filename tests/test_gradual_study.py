"""The gradual-pruning study on the prebuilt MLP: exports, resume, bad input."""

import dataclasses
import json
import pathlib

import numpy as np
import pytest

from tests import helpers
from tfprune.data import datasets
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.graph import weights
from tfprune.drivers import gradual_study
from tfprune.training import schedules


def small_config(out_dir, data_dir, **kwargs) -> gradual_study.GradualConfig:
  """Both procedures at 90% on 256 training examples (2 steps per epoch)."""
  settings = dict(out_dir=str(out_dir), weights_dir=str(helpers.PREBUILT),
                  data_dir=data_dir, targets=(90,), epochs=2, cycles=2,
                  cycle_epochs=1, train_limit=256, learning_rate=1e-4)
  settings.update(kwargs)
  return gradual_study.GradualConfig(**settings)


@pytest.fixture(scope='module')
def study(tmp_path_factory, mnist_slice_dir):
  out_dir = tmp_path_factory.mktemp('study')
  config = small_config(out_dir, mnist_slice_dir)
  return config, gradual_study.run(config, command='pytest', verbose=0)


def test_study_writes_every_output(study):
  config, result = study
  out_dir = pathlib.Path(config.out_dir)
  for name in (gradual_study.CONFIG_NAME, gradual_study.RESULTS_NAME,
               gradual_study.ONESHOT_NAME, gradual_study.PLOT_NAME):
    assert (out_dir / name).stat().st_size > 0
  rows = helpers.read_csv(out_dir / gradual_study.RESULTS_NAME)
  assert [(r['procedure'], r['target']) for r in rows] == [
      ('gradual', '90'), ('iterative', '90')]
  oneshot = helpers.read_csv(out_dir / gradual_study.ONESHOT_NAME)
  assert [r['k'] for r in oneshot] == ['0', '10', '20', '30', '40', '50', '60',
                                       '70', '80', '90']
  saved = json.loads((out_dir / gradual_study.CONFIG_NAME).read_text())
  # The graph fields (model_file, data) and allow_other_data are left out at
  # their defaults, so the committed MLP study's config is unchanged.
  expected = dataclasses.asdict(config)
  assert expected.pop('model_file') is None and expected.pop('data') is None
  assert expected.pop('allow_other_data') is False
  assert expected.pop('engine') is None  # likewise: the committed configs stay
  assert saved['config'] == json.loads(json.dumps(expected))
  assert saved['replicas'] == 1
  for run in config.runs():
    run_dir = out_dir / 'runs' / gradual_study.run_name(run)
    assert len(helpers.read_csv(run_dir / 'epochs.csv')) == run.total_epochs
    assert (run_dir / 'model.tflite').stat().st_size > 0
    assert any((run_dir / 'tensorboard').rglob('events.out.tfevents.*'))


def test_exported_weights_evaluate_like_keras_and_tflite(study):
  config, result = study
  mnist_test = datasets.load('mnist', 'test', config.data_dir)
  for run, row in zip(config.runs(), result.results):
    folder = weights.load(pathlib.Path(config.out_dir) / 'runs' /
                          gradual_study.run_name(run) / 'weights')
    # The oracle: numpy on the saved arrays, not the evaluator that scored it.
    accuracy = float(np.mean(helpers.numpy_chain_logits(
        folder.network.kernels, folder.network.biases,
        mnist_test.images).argmax(1) == mnist_test.labels))
    assert accuracy == pytest.approx(row.accuracy, abs=1e-4)
    assert abs(row.keras_accuracy - row.accuracy) <= 2 / len(mnist_test)
    assert abs(row.tflite_accuracy - row.accuracy) <= 2 / len(mnist_test)
    assert folder.manifest['command'] == 'pytest'
    assert folder.manifest['pruning']['target'] == 0.9
    hidden = folder.network.kernels[:-1]
    for kernel in hidden:
      assert int(np.sum(kernel == 0)) == schedules.tfmot_pruned_count(kernel.size,
                                                                      0.9)
    assert np.all(folder.network.kernels[-1] != 0)
    assert row.sparsity == pytest.approx(
        sum(int(np.sum(k == 0)) for k in hidden) / sum(k.size for k in hidden))
    assert row.tflite_bytes < 0.25 * row.tflite_dense_bytes


def test_rerun_skips_finished_runs(study):
  config, result = study
  logs = sorted(pathlib.Path(config.out_dir).rglob('epochs.csv'))
  before = [p.stat().st_mtime_ns for p in logs]
  again = gradual_study.run(config, verbose=0)
  assert again.results == result.results
  assert [p.stat().st_mtime_ns for p in logs] == before


def test_resume_with_other_settings_is_refused(study):
  config, _ = study
  results = pathlib.Path(config.out_dir) / gradual_study.RESULTS_NAME
  before = results.read_bytes()
  changed = dataclasses.replace(config, epochs=3)
  with pytest.raises(TfpruneError, match=r'was made with epochs=2 but this run '
                     r'has epochs=3: pass the same flags to resume'):
    gradual_study.run(changed, verbose=0)
  assert results.read_bytes() == before


@pytest.mark.parametrize('kwargs, message', [
    (dict(targets=(100,)), r'target sparsity must be in \[0, 100\), got 100'),
    (dict(targets=(-5,)), r'target sparsity must be in \[0, 100\), got -5'),
    (dict(targets=()), 'no target sparsity given'),
    (dict(procedures=()), 'no procedure given'),
    (dict(procedures=('gradual', 'oneshot')), "unknown procedure 'oneshot'"),
    (dict(epochs=0), 'epochs must be at least 1'),
    (dict(cycles=0), 'cycles must be at least 1'),
    (dict(strategy='tpu'), "unknown strategy 'tpu'"),
    (dict(model='vgg'), "unknown model 'vgg'"),
    (dict(train_limit=0), 'train_limit must be at least 1'),
])
def test_bad_config_is_refused(kwargs, message, tmp_path):
  with pytest.raises(TfpruneError, match=message):
    small_config(tmp_path / 'out', None, **kwargs)


def test_schedule_errors_come_before_any_output(tmp_path, data_dir):
  config = small_config(tmp_path / 'out', data_dir, end_step=10)
  with pytest.raises(TfpruneError, match='end_step 10 is past the last training '
                     'step 4'):
    gradual_study.run(config, verbose=0)
  assert not (tmp_path / 'out').exists()


# --- the script ----------------------------------------------------------------

def _script(out_dir, data_dir, *args, env=None):
  return helpers.run_script(
      'gradual', f'--out_dir={out_dir}', f'--data_dir={data_dir}',
      '--train_limit=256', '--epochs=2', '--targets=90', '--verbose=0', *args,
      env=env)


# Bad input through the script is in tests/test_cli.py.


def test_script_mirrored_on_two_logical_cpus(tmp_path, mnist_slice_dir):
  out_dir = tmp_path / 'mirrored'
  result = _script(out_dir, mnist_slice_dir, '--strategy=mirrored', '--logical_cpus=2',
                   '--procedures=gradual', '--granularity=weight',
                   '--export_tflite=false')
  assert result.returncode == 0, result.stderr[-3000:]
  saved = json.loads((out_dir / gradual_study.CONFIG_NAME).read_text())
  assert saved['replicas'] == 2
  (row,) = helpers.read_csv(out_dir / gradual_study.RESULTS_NAME)
  folder = weights.load(out_dir / 'runs' / 'gradual-weight-90' / 'weights')
  for kernel in folder.network.kernels[:-1]:
    assert int(np.sum(kernel == 0)) == schedules.tfmot_pruned_count(kernel.size,
                                                                    0.9)
  assert float(row['accuracy']) == pytest.approx(
      folder.manifest['test_accuracy'], abs=1e-4)
  assert row['tflite_bytes'] == ''


def test_sweep_accepts_the_exported_weights(study, tmp_path):
  config, result = study
  folder = pathlib.Path(config.out_dir) / 'runs' / 'gradual-weight-90' / 'weights'
  rows = sweep.run(sweep.SweepConfig(
      weights_dir=str(folder), out_dir=str(tmp_path), data_dir=config.data_dir,
      methods=('weight',), levels=(0, 90, 95)))
  assert rows[0].accuracy == pytest.approx(result.results[0].accuracy, abs=1e-4)
  assert rows[0].sparsity == pytest.approx(result.results[0].sparsity)
  assert rows[1].accuracy == rows[0].accuracy  # already 90% sparse: no change
  assert rows[2].sparsity == pytest.approx(0.95, abs=1e-6)
