"""Issue-3 bad input through the scripts: calibration, export folder, exports.

Each case runs `experiments/sweep.py` or `experiments/evaluate.py` in a fresh
interpreter and checks exit status 2, one `error:` line naming the problem and
the fix, and that nothing was written.
"""

import csv
import re
import shutil

import numpy as np
import pytest

from tests import helpers
from tfprune.runtime import export


def _assert_refused(result, pattern):
  assert result.returncode == 2, result.stderr
  lines = helpers.error_lines(result)
  assert len(lines) == 1 and re.search(pattern, lines[0]), result.stderr


CALIBRATION_CASES = {
    'zero': (['--methods=wanda', '--calibration_size=0'],
             "method 'wanda' needs calibration data but calibration_size is 0: "
             'set --calibration_size'),
    'bias-correction-zero': (['--bias_correction', '--calibration_size=0'],
                             'bias correction needs calibration data'),
    'larger-than-train': (['--methods=obs', '--calibration_size=60001'],
                          'calibration_size 60001 exceeds the 60000 training '
                          'examples of mnist: pass at most 60000'),
    'negative': (['--methods=obs', '--calibration_size=-5'],
                 'calibration_size must be >= 0'),
}


@pytest.mark.parametrize('name', sorted(CALIBRATION_CASES))
def test_sweep_refuses_bad_calibration(tmp_path, data_dir, name):
  args, pattern = CALIBRATION_CASES[name]
  out = tmp_path / 'out'
  result = helpers.run_script('sweep', f'--out_dir={out}', f'--data_dir={data_dir}',
                              '--levels=50', *args)
  _assert_refused(result, pattern)
  assert not out.exists() or not any(out.iterdir())


def test_sweep_names_the_method_when_training_data_is_missing(tmp_path, data_dir):
  only_test = tmp_path / 'data' / 'mnist'
  only_test.mkdir(parents=True)
  for name in ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'):
    shutil.copy(f'{data_dir}/mnist/{name}', only_test / name)
  out = tmp_path / 'out'
  result = helpers.run_script('sweep', f'--out_dir={out}',
                              f'--data_dir={tmp_path / "data"}', '--levels=50',
                              '--methods=weight,obs')
  _assert_refused(result, "method 'obs' needs calibration data from the mnist "
                  'training split, which failed to load: missing data file')
  assert not out.exists() or not any(out.iterdir())


def test_sweep_refuses_an_unwritable_export_folder(tmp_path, data_dir):
  out = tmp_path / 'out'
  out.mkdir()
  (out / 'pruned').write_text('a file where the export folder should be')
  result = helpers.run_script('sweep', f'--out_dir={out}', f'--data_dir={data_dir}',
                              '--levels=50', '--methods=unit', '--save_pruned')
  _assert_refused(result, f'{out}/pruned is not writable .*: choose a writable '
                  'folder with --out_dir')
  assert sorted(p.name for p in out.iterdir()) == ['pruned']


def test_saved_export_scores_like_the_sweep(tmp_path, data_dir):
  out = tmp_path / 'out'
  result = helpers.run_script('sweep', f'--out_dir={out}', f'--data_dir={data_dir}',
                              '--levels=90', '--methods=weight,unit', '--save_pruned')
  assert result.returncode == 0, result.stderr
  with open(out / 'sweep.csv', newline='') as f:
    rows = {r['method']: r for r in csv.DictReader(f)}
  for method, row in rows.items():
    path = out / 'pruned' / f'{method}-k90.npz'
    assert path.stat().st_size == int(row['size_bytes'])
    scored = helpers.run_script('evaluate', f'--export={path}', f'--data_dir={data_dir}')
    assert scored.returncode == 0, scored.stderr
    assert f'accuracy {100 * float(row["accuracy"]):.2f}%' in scored.stdout
    assert f'layers {row["units"]}' in scored.stdout


def _truncate(path):
  path.write_bytes(path.read_bytes()[:100])


def _other_format(path):
  np.savez(path, format=np.array('something-else'))


EXPORT_CASES = {
    'truncated': (_truncate, [], 'is not a readable .npz file'),
    'other-format': (_other_format, [], "has format 'something-else', expected "
                     f"'{export.FORMAT}'"),
    'missing': (lambda p: p.unlink(), [], 'does not exist: write one with --save_pruned'),
    'wrong-dataset': (lambda p: None, ['--dataset=penguins'],
                      'has 10 outputs but penguins has 3 classes: pass the '
                      '--dataset it was made for'),
}


@pytest.mark.parametrize('name', sorted(EXPORT_CASES))
def test_evaluate_refuses_a_bad_export(tmp_path, data_dir, name):
  breaker, args, pattern = EXPORT_CASES[name]
  path = export.save(tmp_path / 'p.npz', helpers.random_network(((784, 20), (20, 10))))
  breaker(path)
  result = helpers.run_script('evaluate', f'--export={path}', f'--data_dir={data_dir}',
                              *args)
  _assert_refused(result, pattern)
