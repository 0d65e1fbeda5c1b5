"""Outputs that match the run: a reused folder, the data a model is scored on, the data folder.

- a sweep rerun into a folder of an earlier sweep leaves exactly its own
  outputs there (the earlier run's plots of other methods and its `pruned/`
  go; files the sweep did not write stay);
- `--model_file` without `--data` is refused unless `--dataset` is given;
- a relative `$TFPRUNE_DATA_DIR` is made absolute as it is read.
"""

import os
import pathlib

import pytest

from tests import helpers
from tfprune.data import datasets
from tfprune.drivers import stale_outputs
from tfprune.drivers import sweep
from tfprune.graph import weights


def _inputs(tmp_path):
  folder = tmp_path / 'w'
  weights.save(folder, helpers.random_chain(((784, 16), (16, 10))),
               {'model': 'mlp', 'dataset': 'mnist'})
  return str(folder), str(helpers.write_dataset(tmp_path / 'data'))


def _names(folder):
  return sorted(p.name for p in pathlib.Path(folder).iterdir())


def test_a_reused_out_dir_holds_exactly_the_new_runs_files(tmp_path):
  weights_dir, data_dir = _inputs(tmp_path)
  out = tmp_path / 'out'
  sweep.run(sweep.SweepConfig(weights_dir, str(out), data_dir=data_dir,
                              methods=('weight', 'unit', 'random'), levels=(0, 50),
                              save_pruned=True))
  assert _names(out) == ['pruned', 'pruning.png', 'random_pruning.png',
                         'sweep.csv', 'sweep_config.json', 'timing.json',
                         'unit_pruning.png', 'weight_pruning.png']
  # The user's own files, one named like a sweep's plot of a method the
  # earlier sweep did not run: not the sweep's, so they stay.
  (out / 'notes.txt').write_text('mine')
  (out / 'obs_pruning.png').write_text('mine too')
  sweep.run(sweep.SweepConfig(weights_dir, str(out), data_dir=data_dir,
                              methods=('weight',), levels=(0, 50)))
  assert _names(out) == ['notes.txt', 'obs_pruning.png', 'pruning.png',
                         'sweep.csv', 'sweep_config.json', 'timing.json',
                         'weight_pruning.png']
  assert (out / 'notes.txt').read_text() == 'mine'
  assert helpers.read_csv(out / 'sweep.csv')[-1]['method'] == 'weight'


def test_a_folder_without_an_earlier_sweep_names_nothing(tmp_path):
  (tmp_path / 'weight_pruning.png').write_text('a user file')
  (tmp_path / 'sweep.csv').write_bytes(b'\xff\xfe not a sweep')
  assert stale_outputs.earlier_sweep(tmp_path, 'sweep.csv', 'sweep_config.json',
                                     ['timing.json'], 'pruned') == set()
  assert stale_outputs.earlier_sweep(tmp_path / 'none', 'sweep.csv',
                                     'sweep_config.json', [], 'pruned') == set()


@pytest.mark.parametrize('command', ['sweep', 'benchmark', 'gradual', 'sensitivity'])
def test_model_file_without_data_is_refused_unless_dataset_is_given(
    command, tmp_path, capsys):
  out = tmp_path / 'out'
  code, _, err = helpers.run_main(command, f'--model_file={tmp_path}/m.keras',
                                  f'--out_dir={out}', capsys=capsys)
  assert (code, err) == (2, [
      "error: --model_file without --data: pass --data=<your .npz> with your "
      "model's examples, or --dataset=<name> to use a registry dataset"])
  assert not out.exists()
  # With --dataset given, that choice is the user's: the run goes on (to the
  # missing model file here).
  code, _, err = helpers.run_main(command, f'--model_file={tmp_path}/m.keras',
                                  '--dataset=mnist', f'--out_dir={out}',
                                  f'--data_dir={helpers.write_dataset(tmp_path / "d")}',
                                  capsys=capsys)
  assert code == 2 and '--model_file without --data' not in err[-1], err


def test_a_relative_data_dir_variable_is_made_absolute(data_dir, tmp_path,
                                                       monkeypatch):
  monkeypatch.chdir(tmp_path)
  relative = os.path.relpath(data_dir, tmp_path)
  assert not os.path.isabs(relative)
  monkeypatch.setenv(datasets.DATA_DIR_ENV, relative)
  resolved = datasets.resolve_data_dir(None)
  assert resolved == os.path.abspath(data_dir)
  assert datasets.resolve_data_dir('given') == 'given'  # a flag is kept as given
  assert datasets.load('mnist', 'test', None, limit=10).images.shape[0] == 10
  # A link made from it (as tests/test_graph_sweep.py makes) resolves from
  # any working folder.
  link = tmp_path / 'labels.gz'
  link.symlink_to(pathlib.Path(resolved) / 'mnist' / 't10k-labels-idx1-ubyte.gz')
  monkeypatch.chdir(pathlib.Path(data_dir).parent)
  assert link.resolve().is_file()
