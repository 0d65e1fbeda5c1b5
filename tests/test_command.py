"""The `tfprune` command: its subcommands, their help, a real sweep through it.

Most cases run `tfprune.commands.main` in this process (`helpers.run_main`:
each command's flags are defined for the case and removed after it); one
case runs the installed console script's code path in a fresh interpreter
(`python -m tfprune`) and one experiments/ script, as a user would.
"""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from tests import helpers
from tests import keras_zoo
from tfprune import commands
from tfprune.commands import defaults
from tfprune.errors import TfpruneError

# Each experiments/ script running a command, and the command.
WRAPPERS = {'sweep': 'sweep', 'evaluate': 'evaluate', 'gradual': 'gradual',
            'structured_benchmark': 'structured', 'sensitivity': 'sensitivity',
            'benchmark': 'benchmark', 'train': 'train', 'plot': 'plot',
            'holdout_data': 'holdout', 'compare_engines': 'engines'}


def _main(args, capsys):
  with pytest.raises(SystemExit) as exit_info:
    commands.main(args)
  out, err = capsys.readouterr()
  return exit_info.value.code, out, err.splitlines()


@pytest.mark.parametrize('args', [['--help'], ['-h'], ['help']])
def test_help_lists_every_command_and_exits_0(args, capsys):
  code, out, err = _main(args, capsys)
  assert (code, err) == (0, [])
  listed = [l.split()[0] for l in out.splitlines() if l.startswith('  ')]
  assert listed == list(commands.COMMANDS)
  assert 'finetune = gradual' in out


@pytest.mark.parametrize('name', sorted([*commands.COMMANDS, *commands.ALIASES]))
def test_every_command_help_exits_0_with_its_flags(name, capsys):
  code, out, err = helpers.run_main(name, '--help', capsys=capsys)
  assert code == 0, err
  module = commands.COMMANDS[commands.ALIASES.get(name, name)][0]
  # The command's docstring first, then its own flags and --debug.
  assert out.startswith(f'tfprune {commands.ALIASES.get(name, name)}'), out[:200]
  assert f'tfprune.commands.{module}:\n  --' in out
  assert '--[no]debug' in out
  assert not [l for l in err if l.startswith('error:')]


SCRIPTS = sorted(p.stem for p in (helpers.REPO / 'experiments').glob('*.py')
                 if p.stem != '__init__')


@pytest.mark.parametrize('script', SCRIPTS)
def test_every_script_help_exits_0(script, capsys):
  # absl's own --help ends with status 1; every script's (and command's) is 0.
  code, out, err = helpers.run_main(script, '--help', capsys=capsys)
  assert code == 0, err
  assert '\nflags:\n' in out and '--[no]debug' in out
  assert not [l for l in err if l.startswith('error:')]


def test_unknown_command_is_one_line_and_status_2(capsys):
  code, out, err = _main(['swep', '--levels=0'], capsys)
  assert (code, out) == (2, '')
  assert err == ["error: unknown command 'swep': choose one of "
                 + ', '.join([*commands.COMMANDS, *commands.ALIASES])]


@pytest.mark.parametrize('args', [[], ['--levels=0']])
def test_no_command_is_one_line_and_status_2(args, capsys):
  code, _, err = _main(args, capsys)
  assert code == 2 and len(err) == 1
  assert err[0].startswith('error: no command given') and 'choose one of sweep,' in err[0]


def test_script_help_shows_the_script_docstring(capsys):
  # Every experiments/ script runs its command; its --help keeps the script's
  # own ready-to-run commands.
  for script, command in WRAPPERS.items():
    source = (helpers.REPO / 'experiments' / f'{script}.py').read_text()
    assert f'commands.run_script({command!r}, __doc__)' in source
    assert f'python experiments/{script}.py' in source


def test_defaults_outside_a_clone_are_refused_in_one_line(monkeypatch):
  assert defaults.CLONE == helpers.REPO
  assert defaults.in_clone('weights', 'mlp-mnist') == os.path.relpath(
      helpers.PREBUILT)
  monkeypatch.setattr(defaults, 'CLONE', None)
  assert defaults.in_clone('img') is None
  with pytest.raises(TfpruneError, match=r'^--out_dir has no default here .*: '
                     r'pass --out_dir=<folder>$'):
    defaults.required(None, 'out_dir', 'folder')
  with pytest.raises(TfpruneError, match='^no network given, .*: pass '
                     '--model_file=<your Keras model> with --data=<your .npz>, '
                     'or --weights_dir=<weight folder>$'):
    defaults.network(None)
  assert defaults.required('runs/x', 'out_dir', 'folder') == 'runs/x'


def _user_model(tmp_path):
  """A small trained Keras 3 MLP and its .npz (test split only)."""
  model = keras_zoo.build('mlp', 'keras3')
  rng = np.random.default_rng(0)
  x = rng.standard_normal((240, 20)).astype(np.float32)
  y = np.argmax(x @ rng.standard_normal((20, model.outputs[0].shape[-1])), axis=1)
  model.compile(optimizer='adam', loss='sparse_categorical_crossentropy')
  model.fit(x, y, epochs=2, batch_size=60, verbose=0)
  model.save(tmp_path / 'my.keras')
  np.savez(tmp_path / 'my.npz', x_test=x[:120], y_test=y[:120])
  accuracy = np.mean(np.argmax(model.predict(x[:120], verbose=0), 1) == y[:120])
  return tmp_path / 'my.keras', tmp_path / 'my.npz', accuracy


def test_tfprune_sweep_end_to_end(tmp_path, capsys):
  model, data, keras_accuracy = _user_model(tmp_path)
  out = tmp_path / 'out'
  code, stdout, err = helpers.run_main(
      'sweep', f'--model_file={model}', f'--data={data}', '--levels=0,50',
      '--methods=weight,unit', f'--out_dir={out}', capsys=capsys)
  assert code == 0, err
  with open(out / 'sweep.csv') as f:
    table = list(csv.DictReader(f))
  assert [(r['method'], r['k']) for r in table] == [
      ('weight', '0'), ('weight', '50'), ('unit', '0'), ('unit', '50')]
  # k = 0 scores the network read, exactly as Keras does.
  assert float(table[0]['accuracy']) == round(keras_accuracy, 4)
  assert float(table[1]['sparsity']) == pytest.approx(0.5, abs=0.01)
  assert int(table[1]['nonzero_params']) < int(table[0]['nonzero_params'])
  assert 'wrote' in stdout and (out / 'sweep_config.json').is_file()


def test_console_script_in_a_fresh_interpreter(tmp_path):
  # What a user runs: `python -m tfprune` is the console script's code path
  # (`tfprune = tfprune.commands:main`); from another folder, exit 0 on
  # --help and one error line, exit 2, on an unknown command.
  run = lambda *a: subprocess.run([sys.executable, '-m', 'tfprune', *a],
                                  capture_output=True, text=True, cwd=tmp_path,
                                  timeout=600, check=False)
  shown = run('--help')
  assert shown.returncode == 0 and 'holdout' in shown.stdout, shown.stderr
  sweep_help = run('sweep', '--help')
  assert sweep_help.returncode == 0, sweep_help.stderr
  assert '--model_file' in sweep_help.stdout
  wrong = run('prune')
  assert wrong.returncode == 2
  assert wrong.stderr.splitlines() == [
      "error: unknown command 'prune': choose one of "
      + ', '.join([*commands.COMMANDS, *commands.ALIASES])]
  script = helpers.run_script('plot', '--help')
  assert script.returncode == 0, script.stderr
  assert script.stdout.startswith('Redraw the plots of a sweep')
