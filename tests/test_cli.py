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
| calibrate_kernels | `--shapes=784by1000`, `--shapes=0x1000`, `--repeats=0`, `--rows=1` without `--path=graph`, `--path=gpu` | `error: shape '784by1000' is not INPUTSxUNITS: give shapes such as 784x1000`, … |
| structured_study | `--k=120`, `--batch_sizes=1,big`, `--finetune_learning_rates=2e-3,0.002` | `error: k must be in [0, 100], got 120: pass e.g. --k=50`, … |
| sweep | MNIST weights with `--dataset=fashion_mnist` | `error: the weights in … were trained on mnist, not fashion_mnist: …` |
| study_a | `--weights_dir=weights/mlp-mnist` | `error: the weights in … are a mlp model but this needs fashion_cnn: …` |
| gradual, benchmark | `--model_file` and `--weights_dir` | `error: --weights_dir and --model_file both given: pass one network to …` |
| gradual | `--data` without `x_train` | `error: … has no x_train/y_train to fine-tune on: add them …` |
"""

import os
import re
import signal
import subprocess
import sys
import textwrap

from absl import flags
import numpy as np
import pytest

from tests import helpers
from tfprune import cli
from tfprune.graph import io as graph_io
from tfprune.runtime import export


def run_script(name, *args, capsys):
  return helpers.run_main(name, *args, capsys=capsys)


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


def _truncated_export(tmp_path):
  path = export.save(tmp_path / 'p.npz', helpers.random_network(((784, 20), (20, 10))))
  path.write_bytes(path.read_bytes()[:100])
  return path


def _other_format(tmp_path):
  path = tmp_path / 'other.npz'
  np.savez(path, format=np.array('something-else'))
  return path


def _plain_export(tmp_path):
  return export.save(tmp_path / 'plain.npz',
                     helpers.random_network(((784, 20), (20, 10))))


def _three_classes(tmp_path):
  return export.save(tmp_path / 'three.npz',
                     helpers.random_network(((784, 20), (20, 3))))


def _pruned_blocker(tmp_path):
  (tmp_path / 'out').mkdir()
  (tmp_path / 'out' / 'pruned').write_text('a file where the export folder should be')
  return tmp_path / 'out'


def _user_model(tmp_path):
  """A small Keras CNN and (as user_model.npz) test data without a training split."""
  from tests import keras_zoo  # pylint: disable=import-outside-toplevel
  keras_zoo.build('cnn', 'tf_keras').save(tmp_path / 'user_model.keras')
  np.savez(tmp_path / 'user_model.npz', x_test=np.zeros((4, 12, 12, 3), np.float32),
           y_test=np.zeros(4, np.int64))
  return tmp_path / 'user_model'


def _file(tmp_path):
  path = tmp_path / 'file'
  path.write_text('not a folder')
  return path


def _only_test_split(tmp_path):
  return helpers.write_dataset(tmp_path / 'test-only')


def _bad_penguins(tmp_path):
  rows = ['species,island,bill_length_mm,bill_depth_mm,flipper_length_mm,'
          'body_mass_g,sex,year']
  rows += ['Adelie,Torgersen,39.1,18.7,181,3750,male,2007'] * 4
  rows.append('Adelie,Torgersen,39.5,17.4,186,3800,unknown,2007')
  (tmp_path / 'pdata' / 'penguins').mkdir(parents=True)
  (tmp_path / 'pdata' / 'penguins' / 'penguins.csv').write_text('\n'.join(rows) + '\n')
  return tmp_path / 'pdata'


# Files a case refers to as {name} in its args, made before it runs.
MAKERS = {'npy': _npy, 'binary': _binary, 'mnist_export': _mnist_export,
          'truncated_export': _truncated_export, 'other_format': _other_format,
          'plain_export': _plain_export, 'three_classes': _three_classes,
          'pruned_blocker': _pruned_blocker,
          'file': _file, 'only_test_split': _only_test_split,
          'bad_penguins': _bad_penguins, 'user_model': _user_model}

# name: (script, args (formatted with tmp, out, data: the real data folder, and
# the files of MAKERS), expected exit status, the one stderr line: exact text,
# or a regex after 're:'[, environment variables]).
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
                            'error: {npy} is not a readable pruned .npz (it holds a single '
                            '.npy array): write it again with tfprune sweep --save_pruned '
                            '(or tfprune.save); this tfprune writes graph files'),
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
    'holdout_data-size-zero': (
        'holdout_data', ['--out={out}/h.npz', '--size=0', '--data_dir={data}'], 2,
        'error: holdout size must be a positive integer, got 0: pass e.g. 5000'),
    'holdout_data-too-many': (
        'holdout_data', ['--out={out}/h.npz', '--size=59000', '--data_dir={data}'], 2,
        'error: 59000 held-out and 16384 calibration examples exceed the 60000 '
        'training examples: hold out at most 43616 or draw fewer calibration examples'),
    'holdout_data-out-under-a-file': (
        'holdout_data', ['--out={file}/h.npz'], 2,
        'error: output folder {file} is not writable (Not a directory): choose a '
        'writable folder with --out'),
    'calibrate_kernels-bad-shape': (
        'calibrate_kernels', ['--shapes=784by1000'], 2,
        "error: shape '784by1000' is not INPUTSxUNITS: give shapes such as 784x1000"),
    'calibrate_kernels-empty-dimension': (
        'calibrate_kernels', ['--shapes=0x1000'], 2,
        "error: shape '0x1000' has an empty dimension: give positive sizes such "
        'as 784x1000'),
    'calibrate_kernels-no-repeats': (
        'calibrate_kernels', ['--repeats=0'], 2,
        'error: repeats must be at least 1, got 0: give --repeats=5 or more'),
    'calibrate_kernels-rows-on-mlp': (
        'calibrate_kernels', ['--rows=1'], 2,
        'error: --rows=1 applies to --path=graph only and must be at least 1: '
        'drop it or give --path=graph'),
    'calibrate_kernels-bad-path': (
        'calibrate_kernels', ['--path=gpu'], 2,
        'error: flag --path=gpu is not valid: use one of mlp, graph'),
    'structured_study-k-above-100': (
        'structured_study', ['--k=120', '--out_dir={out}'], 2,
        'error: k must be in [0, 100], got 120: pass e.g. --k=50'),
    'structured_study-bad-batch-size': (
        'structured_study', ['--batch_sizes=1,big', '--out_dir={out}'], 2,
        'error: batch sizes must be whole numbers, got 1,big: give --batch_sizes=1,256'),
    'structured_study-repeated-rate': (
        'structured_study', ['--finetune_learning_rates=2e-3,0.002', '--out_dir={out}'],
        2, 'error: finetune_learning_rates repeats 0.002: give each rate once'),
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
    # Bad values the library refuses (each was one subprocess before).
    'sweep-calibration-zero': (
        'sweep', ['--methods=wanda', '--calibration_size=0', '--out_dir={out}'], 2,
        "re:^error: method 'wanda' needs calibration data but calibration_size is 0: "
        'set --calibration_size'),
    'sweep-bias-correction-zero': (
        'sweep', ['--bias_correction', '--calibration_size=0', '--out_dir={out}'], 2,
        're:^error: bias correction needs calibration data'),
    'sweep-calibration-negative': (
        'sweep', ['--methods=obs', '--calibration_size=-5', '--out_dir={out}'], 2,
        're:^error: calibration_size must be >= 0'),
    'sweep-calibration-larger-than-train': (
        'sweep', ['--methods=obs', '--calibration_size=60001', '--levels=50',
                  '--data_dir={data}', '--out_dir={out}'], 2,
        'error: calibration_size 60001 exceeds the 60000 training examples of '
        'mnist: pass at most 60000'),
    'sweep-calibration-without-train-split': (
        'sweep', ['--methods=weight,obs', '--levels=50', '--data_dir={only_test_split}',
                  '--out_dir={out}'], 2,
        "re:^error: method 'obs' needs calibration data from the mnist training "
        'split, which failed to load: missing data file'),
    'sweep-unit_bn-on-a-dense-chain': (
        'sweep', ['--methods=unit,unit_bn', '--levels=50', '--data_dir={data}',
                  '--out_dir={out}'], 2,
        "error: method 'unit_bn' ranks channels by batch-norm gamma, but this "
        'network has no batch norm on the channels it prunes: use unit or unit_l1'),
    'sweep-unit_l1-with-erk': (
        'sweep', ['--methods=unit_l1', '--allocation=erk', '--out_dir={out}'], 2,
        'error: --allocation=erk gives each layer its own level, but unit_l1 ranks '
        'channel groups across layers: use --allocation=uniform with unit_l1, or '
        'method unit'),
    'sweep-unwritable-out_dir': (
        'sweep', ['--out_dir={file}/out'], 2,
        'error: output folder {file}/out is not writable (Not a directory): '
        'choose a writable folder with --out_dir'),
    'sweep-unwritable-export-folder': (
        'sweep', ['--out_dir={pruned_blocker}', '--levels=50', '--methods=unit',
                  '--save_pruned', '--data_dir={data}'], 2,
        're:^error: {pruned_blocker}/pruned is not writable .*: choose a '
        'writable folder with --out_dir$'),
    'train-unwritable-weights_dir': (
        'train', ['--weights_dir={file}/w'], 2,
        'error: output folder {file} is not writable (Not a directory): choose a '
        'writable folder with --weights_dir'),
    'benchmark-unwritable-out_dir': (
        'benchmark', ['--out_dir={file}/b'], 2,
        'error: output folder {file}/b is not writable (Not a directory): choose '
        'a writable folder with --out_dir'),
    'evaluate-truncated-export': ('evaluate', ['--export={truncated_export}'], 2,
                                  're:is not a readable pruned .npz .*: write it '
                                  'again with tfprune sweep --save_pruned'),
    'evaluate-other-format': ('evaluate', ['--export={other_format}'], 2,
                              "re:has format 'something-else', neither a graph "
                              f"file nor '{export.FORMAT}': write it again"),
    'evaluate-missing-export': ('evaluate', ['--export={tmp}/none.npz'], 2,
                                'error: pruned file {tmp}/none.npz does not exist: '
                                'write one with tfprune sweep --save_pruned'),
    'evaluate-inputs-of-another-dataset': (
        'evaluate', ['--export={plain_export}', '--dataset=penguins'], 2,
        're:takes 784 inputs but penguins examples have 12 values: pass the '
        '--dataset it was made for$'),
    'evaluate-classes-of-another-dataset': (
        'evaluate', ['--export={three_classes}'], 2,
        're:has 3 outputs but mnist has 10 classes: pass the --dataset it was '
        'made for$'),
    'gradual-target-100': ('gradual', ['--targets=100', '--out_dir={out}'], 2,
                           r're:target sparsity must be in \[0, 100\), got 100:'),
    'gradual-target-not-a-number': ('gradual', ['--targets=ninety', '--out_dir={out}'],
                                    2, "re:got 'ninety'"),
    'gradual-begin-after-end': (
        'gradual', ['--begin_step=3', '--end_step=2', '--train_limit=256',
                    '--epochs=2', '--data_dir={data}', '--out_dir={out}'], 2,
        're:begin_step 3 is not before end_step 2'),
    'gradual-zero-cycles': ('gradual', ['--cycles=0', '--out_dir={out}'], 2,
                            're:cycles must be at least 1'),
    'gradual-bad-tf-config': ('gradual', ['--strategy=multiworker', '--out_dir={out}'],
                              2, 're:TF_CONFIG is not valid JSON',
                              {'TF_CONFIG': '{"cluster": '}),
    'gradual-unknown-strategy': (
        'gradual', ['--strategy=tpu', '--out_dir={out}'], 2,
        'error: flag --strategy=tpu is not valid: use one of default, mirrored, '
        'multiworker'),
    'gradual-model-file-and-weights': (
        'gradual', ['--model_file={tmp}/m.keras', '--weights_dir={tmp}/w',
                    '--out_dir={out}'], 2,
        'error: --weights_dir and --model_file both given: pass one network to '
        'prune'),
    'gradual-data-without-training-split': (
        'gradual', ['--model_file={user_model}.keras', '--data={user_model}.npz',
                    '--out_dir={out}'], 2,
        're:^error: .*user_model.npz has no x_train/y_train to fine-tune on: add '
        'them'),
    'benchmark-model-file-and-weights': (
        'benchmark', ['--model_file={tmp}/m.keras', '--weights_dir={tmp}/w',
                      '--out_dir={out}'], 2,
        'error: --weights_dir and --model_file both given: pass one network to '
        'benchmark'),
    'benchmark-mlp-on-ray': (
        'benchmark', ['--executor=ray', '--out_dir={out}'], 2,
        'error: --executor=ray runs the accuracy points of a graph benchmark: '
        'pass a CNN --weights_dir or a --model_file, or drop --executor for '
        'the MLP'),
    'evaluate-old-export-with-missing-data': (
        'evaluate', ['--export={plain_export}', '--data={tmp}/d.npz'], 2,
        'error: data file {tmp}/d.npz does not exist: pass an .npz with x_test '
        'and y_test (np.savez)'),
    'study_b-structured-100': (
        'study_b', ['--methods=structured_l1', '--levels=100', '--out_dir={out}'], 2,
        'error: structured_l1 at k=100 would remove every filter of a layer: '
        'use levels below 100'),
    'lottery-bad-penguins-line': (
        'lottery', ['--data_dir={bad_penguins}', '--epochs=3', '--out_dir={out}'], 2,
        "re:line 6, column sex: unknown value 'unknown', expected one of female, "
        'male or NA$'),
    'sweep-level-out-of-range': ('sweep', ['--levels=0,120', '--out_dir={out}'], 2,
                                 r're:^error: .*k must be in \[0, 100\], got 120'),
    'sweep-level-not-a-number': ('sweep', ['--levels=ten', '--out_dir={out}'], 2,
                                 "re:^error: level 'ten' is not a number"),
    'sweep-empty-methods': ('sweep', ['--methods=', '--out_dir={out}'], 2,
                            're:^error: no pruning method given'),
    'sweep-unknown-method': ('sweep', ['--methods=weight,magic', '--out_dir={out}'], 2,
                             "re:^error: unknown pruning method 'magic'"),
    'sweep-missing-weights': ('sweep', ['--weights_dir=/nonexistent/w', '--out_dir={out}'],
                              2, 're:^error: weights folder /nonexistent/w does not exist'),
    'sweep-missing-data-folder': (
        'sweep', ['--data_dir=/nonexistent/data', '--out_dir={out}'], 2,
        're:^error: data folder /nonexistent/data does not exist'),
}


@pytest.mark.parametrize('name', sorted(CASES))
def test_bad_input_ends_in_one_line(tmp_path, capsys, monkeypatch, request, name):
  script, args, status, expected, *env = CASES[name]
  files = {'tmp': tmp_path, 'out': tmp_path / 'out'}
  if any('{data}' in a for a in args):
    files['data'] = request.getfixturevalue('data_dir')
  # No case may depend on the data of the environment.
  monkeypatch.setenv('TFPRUNE_DATA_DIR', str(tmp_path / 'no-data'))
  for key, value in (env[0] if env else {}).items():
    monkeypatch.setenv(key, value)
  for key, make in MAKERS.items():
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
  if name != 'sweep-unwritable-export-folder':
    assert not (tmp_path / 'out').exists()
  else:  # the earlier folder is left as it was
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['pruned']


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
  # One subprocess, to see what a user sees: TensorFlow's start-up lines
  # once each, then the error line, exit 2. Which start-up lines TensorFlow
  # prints (oneDNN, CUDA, CPU features) depends on the CPU and the build, and
  # two of its libraries print them each; so no line may repeat, whichever
  # appear (glog's time and thread prefix aside). sweep.py imports
  # TensorFlow before it parses its flags.
  result = helpers.run_script('sweep', '--zzzzzz=1')
  assert result.returncode == 2, result.stderr
  lines = result.stderr.splitlines()
  messages = [re.sub(r'^[IWEF]\d{4} \S+ +\d+ ', '', l) for l in lines]
  assert len(messages) == len(set(messages)), lines
  assert [l for l in lines if l.startswith('error:')] == lines[-1:]
  assert lines[-1] == 'error: unknown flag --zzzzzz: see --help for the flags of this script'
  assert 'Traceback' not in result.stderr


def test_ctrl_c_during_a_sweep_says_the_earlier_results_are_unchanged(
    tmp_path, capsys, monkeypatch):
  weights_dir = tmp_path / 'w'
  from tfprune.graph import weights  # pylint: disable=g-import-not-at-top
  weights.save(weights_dir, helpers.random_network(((784, 16), (16, 10))),
               {'model': 'mlp', 'dataset': 'mnist'})
  data_dir = helpers.write_dataset(tmp_path / 'data')
  out = tmp_path / 'out'
  out.mkdir()
  (out / 'sweep.csv').write_text('earlier\n')

  def interrupt(*args):
    raise KeyboardInterrupt

  monkeypatch.setattr(graph_io, 'save', interrupt)
  code, _, err = run_script('sweep', f'--weights_dir={weights_dir}',
                            f'--data_dir={data_dir}', f'--out_dir={out}',
                            '--levels=50', '--save_pruned', capsys=capsys)
  assert code == 130
  assert err == [f'interrupted: earlier results in {out} are unchanged']
  assert [p.name for p in out.iterdir()] == ['sweep.csv']
  assert (out / 'sweep.csv').read_text() == 'earlier\n'


@pytest.mark.parametrize('signum,status', [(signal.SIGINT, 130),
                                           (signal.SIGTERM, 143)])
def test_a_signal_while_the_process_shuts_down_says_the_results_are_whole(
    tmp_path, signum, status):
  # The command's work is done ("wrote ..." printed); the signal arrives
  # while Python shuts down (here: from an atexit handler, as TensorFlow's
  # and Ray's run then).
  script = tmp_path / 'finished.py'
  script.write_text(textwrap.dedent(f'''
      import atexit, os, signal, time
      from tfprune import cli

      def main(argv):
        print('wrote results')
        atexit.register(lambda: (os.kill(os.getpid(), {int(signum)}),
                                 time.sleep(5)))

      cli.run(main)
      '''))
  result = subprocess.run([sys.executable, str(script)], capture_output=True,
                          text=True, cwd=helpers.REPO, check=False,
                          env={**os.environ, 'PYTHONPATH': str(helpers.REPO)})
  assert result.returncode == status, result.stderr
  assert result.stdout.splitlines() == ['wrote results']
  assert result.stderr.splitlines()[-1:] == [cli.INTERRUPTED_AFTER_RUN]
