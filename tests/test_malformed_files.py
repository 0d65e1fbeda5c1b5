"""Malformed files and paths: one `error:` line naming the file and what is wrong, exit 2.

A table of damaged inputs, each made from a good file by one change, run
through the tool that reads it (in-process, `helpers.run_main`). None may
reach the generic "internal error" path, which is kept for real bugs.
Also: a run killed outright leaves a staging folder that the next run into
the same folder removes.
"""

import io
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from tests import helpers
from tfprune import atomic
from tfprune.keras_compat import keras

MNIST_MLP = helpers.PREBUILT


def _rewrite_zip(path: pathlib.Path, change) -> None:
  """Rewrites the .npz at `path` with `change(members)` applied to {name: bytes}."""
  with zipfile.ZipFile(path) as archive:
    members = {i.filename: archive.read(i) for i in archive.infolist()}
  change(members)
  out = io.BytesIO()
  with zipfile.ZipFile(out, 'w') as archive:
    for name, data in members.items():
      archive.writestr(name, data)
  path.write_bytes(out.getvalue())


def _npy(array) -> bytes:
  out = io.BytesIO()
  np.save(out, array)
  return out.getvalue()


def _graph_json(members):
  return json.loads(np.load(io.BytesIO(members['graph.json.npy'])).tobytes())


def _set_graph_json(members, structure):
  members['graph.json.npy'] = _npy(np.frombuffer(
      json.dumps(structure).encode(), dtype=np.uint8))


def _drop_member(members):
  del members[next(n for n in members if n.endswith('.kernel.dense.npy')
                   or n.endswith('.kernel.values.npy'))]


def _no_params(members):
  structure = _graph_json(members)
  del next(n for n in structure['nodes'] if n['params'])['params']
  _set_graph_json(members, structure)


def _indices_past_the_end(members):
  name = next(n for n in members if n.endswith('.indices.npy'))
  indices = np.load(io.BytesIO(members[name]))
  indices[-1] = 10**8
  members[name] = _npy(indices)


@pytest.fixture(scope='module')
def graph_file(tmp_path_factory):
  """A sweep's graph file of a small CNN with sparse (indices/values) kernels."""
  from tfprune.drivers import sweep  # pylint: disable=import-outside-toplevel
  folder = tmp_path_factory.mktemp('graph')
  keras.utils.set_random_seed(0)
  model = keras.Sequential([
      keras.Input((12, 12, 1)), keras.layers.Conv2D(8, 3, activation='relu'),
      keras.layers.Flatten(), keras.layers.Dense(64, activation='relu'),
      keras.layers.Dense(5)])
  model.save(folder / 'm.keras')
  rng = np.random.default_rng(0)
  np.savez(folder / 'd.npz', x_test=rng.random((16, 12, 12, 1), dtype=np.float32),
           y_test=rng.integers(0, 5, 16))
  sweep.run(sweep.SweepConfig(None, str(folder / 'out'),
                              model_file=str(folder / 'm.keras'),
                              data=str(folder / 'd.npz'), methods=('weight',),
                              levels=(95,), save_pruned=True))
  path = folder / 'out' / 'pruned' / 'weight-k95.npz'
  with zipfile.ZipFile(path) as archive:
    assert any(n.endswith('.indices.npy') for n in archive.namelist())
  return path, folder / 'd.npz'


@pytest.mark.parametrize('change, message', [
    (_drop_member, r'is damaged \(member n\d+\.kernel\.\w+\.npy is missing\)'),
    (_no_params, r"is damaged \(node '\w+' has no params entry\)"),
    (_indices_past_the_end, r'is damaged \(n\d+\.kernel\.indices reaches '
                            r'100000000, past the \d+ values'),
])
def test_a_damaged_graph_file_is_named(graph_file, tmp_path, capsys, change,
                                       message):
  good, data = graph_file
  path = tmp_path / 'broken.npz'
  shutil.copy(good, path)
  _rewrite_zip(path, change)
  code, _, err = helpers.run_main('evaluate', f'--export={path}',
                                  f'--data={data}', capsys=capsys)
  assert code == 2 and len(err) == 1, err
  assert err[0].startswith(f'error: {path} is damaged')
  assert __import__('re').search(message, err[0]), err[0]


@pytest.mark.parametrize('field, value, message', [
    ('sha256', ['a', 'b'], '"sha256" is a list, not an object'),
    ('sha256', {'weight-1.npy': 7}, '"sha256" is a dict, not an object'),
    ('layers', 5, '"layers" is a int, not a list of objects'),
    ('layers', ['weight-1.npy'], '"layers" is a list, not a list of objects'),
])
def test_a_manifest_with_wrong_types_is_named(tmp_path, capsys, field, value,
                                              message):
  folder = tmp_path / 'mlp'
  shutil.copytree(MNIST_MLP, folder)
  manifest = json.loads((folder / 'manifest.json').read_text())
  (folder / 'manifest.json').write_text(json.dumps({**manifest, field: value}))
  code, _, err = helpers.run_main('sweep', f'--weights_dir={folder}',
                                  '--levels=0', f'--out_dir={tmp_path / "out"}',
                                  capsys=capsys)
  assert code == 2 and len(err) == 1, err
  assert err[0].startswith(f'error: corrupt {folder / "manifest.json"}: {message}')


@pytest.mark.parametrize('case', ['component', 'path'])
def test_an_out_dir_too_long_is_named(tmp_path, capsys, case):
  name = 'x' * 300 if case == 'component' else '/'.join(['y' * 200] * 25)
  code, _, err = helpers.run_main('sweep', '--levels=0',
                                  f'--out_dir={tmp_path / name}', capsys=capsys)
  assert code == 2 and len(err) == 1, err
  assert 'cannot be used (File name too long): choose a shorter or valid path ' \
         'with --out_dir' in err[0]


def test_data_that_is_a_npy_file_is_named(tmp_path, capsys):
  np.save(tmp_path / 'x.npy', np.zeros((4, 784), np.float32))
  code, _, err = helpers.run_main(
      'sweep', f'--data={tmp_path / "x.npy"}', '--levels=0',
      f'--out_dir={tmp_path / "out"}', capsys=capsys)
  assert code == 2 and err == [
      f'error: {tmp_path / "x.npy"} is a single .npy array, not an .npz of named '
      'arrays: write it with np.savez(path, x_test=..., y_test=...)']


def test_min_seconds_nan_is_named(tmp_path, capsys):
  code, _, err = helpers.run_main('benchmark', '--min_seconds=nan',
                                  f'--out_dir={tmp_path / "out"}', capsys=capsys)
  assert code == 2 and err == [
      'error: min_seconds must be a number >= 0, got nan: pass e.g. '
      '--min_seconds=1']


def test_holdout_onto_an_existing_folder_is_named(tmp_path, mnist_slice_dir,
                                                  capsys):
  (tmp_path / 'taken').mkdir()
  code, _, err = helpers.run_main(
      'holdout_data', f'--out={tmp_path / "taken"}', '--size=100',
      '--max_calibration_size=100', f'--data_dir={mnist_slice_dir}',
      capsys=capsys)
  assert code == 2 and err == [
      f'error: {tmp_path / "taken"} is an existing folder, not a file: pass the '
      'path of a file to write (e.g. inside that folder)']


def test_staging_folders_of_dead_runs_are_removed(tmp_path):
  dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                        capture_output=True, text=True, check=True)
  stale = tmp_path / f'{atomic.STAGING_PREFIX}{dead.stdout.strip()}.abc'
  (stale / 'pruned').mkdir(parents=True)
  alive = tmp_path / f'{atomic.STAGING_PREFIX}{os.getpid()}.def'
  alive.mkdir()
  with atomic.staging(tmp_path) as stage:
    (stage / 'new.txt').write_text('new')
  assert not stale.exists() and alive.exists()
  assert (tmp_path / 'new.txt').read_text() == 'new'


def test_a_sigkilled_sweep_leaves_nothing_after_the_next_run(tmp_path,
                                                             mnist_slice_dir):
  out = tmp_path / 'out'
  command = [sys.executable, str(helpers.REPO / 'experiments' / 'sweep.py'),
             f'--data_dir={mnist_slice_dir}', f'--out_dir={out}',
             '--methods=weight,unit', '--levels=0,50,90', '--save_pruned']
  env = dict(os.environ, PYTHONPATH=str(helpers.REPO))
  killed = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
  deadline = time.monotonic() + 300
  for line in killed.stderr:  # the first measured point: mid-run
    if line.startswith('weight k=0:') or time.monotonic() > deadline:
      break
  killed.send_signal(signal.SIGKILL)
  killed.wait()
  assert [p.name.startswith(atomic.STAGING_PREFIX) for p in tmp_path.iterdir()] \
      == [True], list(tmp_path.iterdir())
  rerun = subprocess.run(command, env=env, capture_output=True, text=True,
                         check=False, timeout=600)
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert sorted(p.name for p in tmp_path.iterdir()) == ['out']
  assert sorted(p.name for p in out.iterdir()) == sorted([
      'pruned', 'sweep.csv', 'sweep_config.json', 'timing.json',
      *(p.name for p in out.glob('*.png'))])
  assert len(list(out.glob('*.png'))) > 0
  assert sorted(p.name for p in (out / 'pruned').iterdir()) == [
      f'{m}-k{k}.npz' for m in ('unit', 'weight') for k in (0, 50, 90)]


def test_sigterm_says_what_was_kept_and_exits_143(tmp_path, mnist_slice_dir):
  out = tmp_path / 'out'
  command = [sys.executable, str(helpers.REPO / 'experiments' / 'sweep.py'),
             f'--data_dir={mnist_slice_dir}', f'--out_dir={out}',
             '--methods=weight,unit', '--levels=0,50,90,95,99']
  env = dict(os.environ, PYTHONPATH=str(helpers.REPO))
  run = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
  lines = []
  for line in run.stderr:
    lines.append(line.rstrip('\n'))
    if line.startswith('weight k=0:'):
      run.send_signal(signal.SIGTERM)
      break
  lines += run.stderr.read().splitlines()
  assert run.wait(timeout=120) == 143
  assert lines[-1] == f'interrupted: earlier results in {out} are unchanged'
  assert not out.exists()
