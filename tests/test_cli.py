"""Bad input through the scripts: one table, one line each, nothing written.

Every case runs a script's real `main` through `cli.run` in this process (the
script's flags are defined for the case and removed after it), so a case costs
milliseconds instead of a fresh interpreter and a TensorFlow import. Each
checks the exit status, that stderr is exactly one line (the table gives it, or
a pattern for it), and that the output path was not created.

| script | bad input | the line on stderr (exit 2 unless noted) |
|---|---|---|
| any | unknown flag `--datset` | `error: unknown flag --datset: did you mean --dataset?` |
| any | required flag missing | `error: flag --export is required: pass --export=<value>` |
| any | bad enum / int / bool value | `error: flag --model=vgg is not valid: use one of mlp, …` |
| any | positional argument | `error: unexpected arguments ['stray']: pass options as --flag=value` |
| any | Ctrl-C | `interrupted: nothing was written over` (exit 130) |
| any | unexpected exception | `error: internal error <Type>: <message>: rerun with --debug for the traceback` (exit 1) |
| evaluate | `--export` is a `.npy` file | `error: … is a single .npy array, not a pruned export (.npz): …` |
| evaluate | an MNIST export with `--dataset=fashion_mnist` | `error: … was pruned from weights trained on mnist, not fashion_mnist: pass --dataset=mnist` |
| plot | `--csv` is a binary file | `error: … is not a text CSV (byte N is not UTF-8): …` |
| train | `--model=resnet18 --dataset=penguins` | `error: model resnet18 is a CNN and needs images, but penguins examples are vectors …` |
| study_c | `--dataset=penguins` | the same |
| sweep | MNIST weights with `--dataset=fashion_mnist` | `error: the weights in … were trained on mnist, not fashion_mnist: …` |
| study_a | `--weights_dir=weights/mlp-mnist` | `error: the weights in … are a mlp model but this needs fashion_cnn: …` |
"""

import pathlib
import re
import runpy

from absl import app
from absl import flags
import numpy as np
import pytest

from tests import helpers
from tfprune import cli
from tfprune import export

app.define_help_flags()
_BASE_FLAGS = frozenset(flags.FLAGS)


def run_script(name, *args, capsys):
  """Runs experiments/<name>.py's main through `cli.run` here.

  Returns:
    (exit status, stdout, stderr lines).
  """
  try:
    namespace = runpy.run_path(str(helpers.REPO / 'experiments' / f'{name}.py'),
                               run_name=f'_script_{name}')
    capsys.readouterr()
    code = _run(namespace['main'], [name, *args])
  finally:
    for flag in set(flags.FLAGS) - _BASE_FLAGS:
      delattr(flags.FLAGS, flag)
    flags.FLAGS.unparse_flags()
  out, err = capsys.readouterr()
  return code, out, err.splitlines()


def _run(main, argv, **kwargs):
  flags.FLAGS.unparse_flags()
  with pytest.raises(SystemExit) as exit_info:
    cli.run(main, argv=argv, **kwargs)
  return exit_info.value.code


def _npy(tmp_path):
  path = tmp_path / 'weights.npy'
  np.save(path, np.zeros((3, 3), np.float32))
  return path


def _binary(tmp_path):
  path = tmp_path / 'sweep.csv'
  path.write_bytes(bytes(range(256)) * 4)
  return path


def _mnist_export(tmp_path):
  """A valid export of an MLP pruned from the prebuilt MNIST weights."""
  path = tmp_path / 'unit-k90.npz'
  export.save(path, helpers.random_network(((784, 16), (16, 10))), True,
              {'method': 'unit', 'k': 90, 'weights_dir': str(helpers.PREBUILT)})
  return path


# name: (script, args (formatted with tmp, out and the made files), expected
# exit status, the one stderr line: exact text, or a regex after 're:').
CASES = {
    'unknown-flag': ('sweep', ['--datset=mnist', '--out_dir={out}'], 2,
                     'error: unknown flag --datset: did you mean --dataset?'),
    'unknown-flag-no-suggestion': (
        'plot', ['--zzzzzz=1'], 2,
        'error: unknown flag --zzzzzz: see --help for the flags of this script'),
    'missing-required-flag': ('evaluate', [], 2,
                              'error: flag --export is required: pass --export=<value>'),
    'flag-without-value': ('train', ['--weights_dir={out}', '--epochs'], 2,
                           'error: flag --epochs has no value: pass it as --epochs=<value>'),
    'bad-enum': ('train', ['--weights_dir={out}', '--model=vgg'], 2,
                 'error: flag --model=vgg is not valid: use one of mlp, fashion_cnn, '
                 'lenet5, resnet18, penguin_mlp_tanh, penguin_mlp'),
    'bad-int': ('train', ['--weights_dir={out}', '--epochs=abc'], 2,
                "error: flag --epochs=abc is not valid (invalid literal for int() "
                "with base 10: 'abc'): give a whole number"),
    'bad-float': ('study_a', ['--finetune_lr=fast', '--out_dir={out}'], 2,
                  "re:^error: flag --finetune_lr=fast is not valid \\(.*\\): give a number$"),
    'bad-bool': ('sweep', ['--use_biases=maybe', '--out_dir={out}'], 2,
                 "re:^error: flag --use_biases=maybe is not valid \\(.*\\): give true or false$"),
    'positional-argument': ('sweep', ['stray', '--out_dir={out}'], 2,
                            "error: unexpected arguments ['stray']: pass options as --flag=value"),
    # The four tracebacks of issue 15.
    'evaluate-npy-export': ('evaluate', ['--export={npy}'], 2,
                            'error: {npy} is a single .npy array, not a pruned export '
                            '(.npz): re-export it with experiments/sweep.py --save_pruned'),
    'plot-binary-csv': ('plot', ['--csv={binary}', '--out_dir={out}'], 2,
                        'error: {binary} is not a text CSV (byte 128 is not UTF-8): '
                        'pass a sweep.csv written by experiments/sweep.py'),
    'train-cnn-on-penguins': (
        'train', ['--weights_dir={out}', '--model=resnet18', '--dataset=penguins'], 2,
        'error: model resnet18 is a CNN and needs images, but penguins examples are '
        'vectors of shape (12,): choose an image dataset or one of the models mlp, '
        'penguin_mlp_tanh, penguin_mlp'),
    'study_c-on-penguins': (
        'study_c', ['--dataset=penguins', '--out_dir={out}'], 2,
        'error: model resnet18 is a CNN and needs images, but penguins examples are '
        'vectors of shape (12,): choose an image dataset or one of the models mlp, '
        'penguin_mlp_tanh, penguin_mlp'),
    # Silent wrong answers of issue 15, refused.
    'sweep-mnist-weights-on-fashion': (
        'sweep', ['--dataset=fashion_mnist', f'--weights_dir={helpers.PREBUILT}',
                  '--out_dir={out}'], 2,
        f'error: the weights in {helpers.PREBUILT} were trained on mnist, not '
        'fashion_mnist: pass --dataset=mnist, or a --weights_dir trained on '
        'fashion_mnist'),
    'evaluate-mnist-export-on-fashion': (
        'evaluate', ['--export={mnist_export}', '--dataset=fashion_mnist'], 2,
        'error: {mnist_export} was pruned from weights trained on mnist, not '
        'fashion_mnist: pass --dataset=mnist'),
    'study_a-mlp-weights': (
        'study_a', [f'--weights_dir={helpers.PREBUILT}', '--out_dir={out}'], 2,
        f'error: the weights in {helpers.PREBUILT} are a mlp model but this needs '
        'fashion_cnn: pass a --weights_dir with fashion_cnn weights '
        '(experiments/train.py --model=fashion_cnn)'),
}


@pytest.mark.parametrize('name', sorted(CASES))
def test_bad_input_ends_in_one_line(tmp_path, capsys, monkeypatch, name):
  script, args, status, expected = CASES[name]
  monkeypatch.setenv('TFPRUNE_DATA_DIR', str(tmp_path / 'no-data'))
  files = {'tmp': tmp_path, 'out': tmp_path / 'out'}
  for key, make in (('npy', _npy), ('binary', _binary),
                    ('mnist_export', _mnist_export)):
    if any(f'{{{key}}}' in a for a in args):
      files[key] = make(tmp_path)
  args = [a.format(**files) for a in args]
  code, _, err = run_script(script, *args, capsys=capsys)
  assert code == status, err
  assert len(err) == 1, err
  expected = expected.format(**files)
  if expected.startswith('re:'):
    assert re.search(expected[3:], err[0]), err
  else:
    assert err[0] == expected
  assert not (tmp_path / 'out').exists()


def test_ctrl_c_ends_in_one_line_and_status_130(capsys):
  def main(argv):
    del argv
    raise KeyboardInterrupt

  assert _run(main, ['script']) == cli.EXIT_INTERRUPTED
  assert capsys.readouterr().err.splitlines() == [cli.INTERRUPTED]
  assert _run(main, ['script'], interrupted='interrupted: kept runs in x') == 130
  assert capsys.readouterr().err.splitlines() == ['interrupted: kept runs in x']


def test_unexpected_exception_is_one_line_with_a_hint_and_status_1(capsys):
  def main(argv):
    del argv
    raise RuntimeError('the disk\nis on fire')

  assert _run(main, ['script']) == cli.EXIT_INTERNAL
  assert capsys.readouterr().err.splitlines() == [
      'error: internal error RuntimeError: the disk is on fire: rerun with '
      '--debug for the traceback']
  assert _run(main, ['script', '--debug']) == cli.EXIT_INTERNAL
  err = capsys.readouterr().err
  assert err.startswith('Traceback (most recent call last):')
  assert err.splitlines()[-1].startswith('error: internal error RuntimeError')


def test_long_messages_are_cut_between_words():
  text = ' '.join(['word'] * 200)
  short = cli.one_line(text, limit=50)
  assert len(short) <= 50 and short.endswith('word…')
  assert cli.one_line('a\n  b\tc') == 'a b c'


def test_a_real_script_prints_one_line_and_one_banner(tmp_path):
  # One subprocess, to see what a user sees: TensorFlow's start-up banner (it
  # prints it twice on its own) once, then the error line, exit 2.
  result = helpers.run_script('evaluate', '--zzzzzz=1')
  assert result.returncode == 2, result.stderr
  lines = result.stderr.splitlines()
  assert sum('oneDNN custom operations' in l for l in lines) <= 1
  assert [l for l in lines if l.startswith('error:')] == lines[-1:]
  assert 'Traceback' not in result.stderr
