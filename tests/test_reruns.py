"""Every script run twice with the same flags writes the same bytes.

Each case runs a `tfprune` command or an experiments/ script on a small real
configuration twice, into the same output folder (as a user reruns a
command), and compares every file of the two runs byte for byte: the CSVs,
configs, manifests, weight files, graph files, `.keras` files and plots. Files
documented as timings (`timing.json`, the studies' `*timing*.json`, and
`study_b.png`, whose right panel plots Study B's measured times) are the only
ones left out; for the tools that print their result instead of writing
it (`evaluate`, `keras_baseline`), the printed lines are compared.

Training is included: on one machine TensorFlow's kernels are deterministic
for these CPU runs (the seeds are fixed), so a second run equals the first.
"""

import pathlib
import shutil

import pytest

from tests import helpers

MLP = str(helpers.PREBUILT)
LENET = str(helpers.REPO / 'weights' / 'lenet5-mnist')
FASHION_CNN = str(helpers.REPO / 'weights' / 'fashion_cnn-fashion_mnist')

# name: (command or script, flags; {out} is the output folder, {mnist} the
# MNIST slice, {data} the full data folder, {made} a folder of inputs the
# case's setup made; outputs a script prints instead of writing).
CASES = {
    'sweep-mlp': ('sweep', ['--weights_dir=' + MLP, '--data_dir={mnist}',
                            '--levels=0,50,90', '--methods=weight,unit,wanda',
                            '--calibration_size=64', '--save_pruned',
                            '--out_dir={out}']),
    'sweep-lenet': ('sweep', ['--weights_dir=' + LENET, '--data_dir={mnist}',
                              '--levels=50', '--methods=weight,unit',
                              '--save_pruned', '--out_dir={out}']),
    'sweep-keras': ('sweep', ['--model_file={made}/lenet.keras',
                              '--dataset=mnist', '--data_dir={mnist}',
                              '--levels=50', '--methods=weight,unit',
                              '--save_keras', '--out_dir={out}']),
    'sensitivity': ('sensitivity', ['--weights_dir=' + MLP, '--data_dir={mnist}',
                                    '--levels=0,50,90', '--holdout_size=100',
                                    '--out_dir={out}']),
    'gradual': ('gradual', ['--weights_dir=' + MLP, '--data_dir={mnist}',
                            '--train_limit=256', '--epochs=2', '--targets=90',
                            '--verbose=0', '--out_dir={out}']),
    'train': ('train', ['--model=mlp', '--epochs=1', '--train_limit=512',
                        '--data_dir={mnist}', '--weights_dir={out}/mlp',
                        '--overwrite']),
    'holdout': ('holdout_data', ['--size=100', '--max_calibration_size=100',
                                 '--data_dir={mnist}', '--out={out}/holdout.npz']),
    'plot': ('plot', ['--csv={made}/sweep/sweep.csv', '--out_dir={out}']),
    'study_a': ('study_a', ['--weights_dir=' + FASHION_CNN, '--levels=0.01,50',
                            '--finetune_epochs=1', '--train_limit=256',
                            '--test_limit=200', '--data_dir={data}',
                            '--out_dir={out}']),
    'study_b': ('study_b', ['--weights_dir=' + LENET, '--levels=50',
                            '--cycles=1', '--finetune_epochs=1',
                            '--train_limit=256', '--timing_repeats=1',
                            '--data_dir={mnist}', '--out_dir={out}']),
    'lottery': ('lottery', ['--model=mlp', '--dataset=mnist', '--epochs=2', '--procedures=unpruned,lottery',
                            '--rounds=1', '--seeds=0', '--train_limit=256',
                            '--validation_size=64', '--data_dir={mnist}',
                            '--out_dir={out}', '--overwrite']),
    'structured_study': ('structured_study', [
        '--dataset=mnist', '--data_dir={mnist}', '--width=0.125', '--epochs=1',
        '--train_limit=320', '--validation_size=64', '--test_limit=200',
        '--finetune_epochs=1', '--finetune_learning_rates=0.001',
        '--batch_sizes=1', '--timing_runs=1', '--timing_rounds=1',
        '--out_dir={out}']),
    'make_vit': ('make_vit', ['--dataset=mnist', '--data_dir={mnist}',
                              '--epochs=1', '--train_limit=256', '--blocks=1',
                              '--dim=16', '--heads=2', '--mlp_dim=32',
                              '--out_dir={out}']),
    'make_mobilenet': ('make_mobilenet', ['--dataset=mnist', '--data_dir={mnist}',
                                          '--epochs=1', '--train_limit=128',
                                          '--out_dir={out}']),
    'architectures': ('architectures', ['--only=small_cnn,two_inputs,lstm',
                                        '--out={out}/architectures.csv']),
    'evaluate': ('evaluate', ['--export={made}/sweep/pruned/unit-k50.npz',
                              '--data_dir={mnist}']),
    'keras_baseline': ('keras_baseline', ['--weights_dir=' + MLP,
                                          '--levels=0,50', '--data_dir={mnist}']),
}
PRINTING = {'evaluate', 'keras_baseline'}


TIMING_FIGURES = {'study_b.png'}  # docs/studies/study-b.md: its right panel


def _is_timing(path: pathlib.Path) -> bool:
  return (path.suffix == '.json' and 'timing' in path.name
          or path.name in TIMING_FIGURES)


def _files(folder: pathlib.Path) -> dict[str, bytes]:
  return {str(p.relative_to(folder)): p.read_bytes()
          for p in sorted(folder.rglob('*')) if p.is_file() and not _is_timing(p)}


@pytest.fixture(scope='module')
def made(mnist_slice_dir, tmp_path_factory):
  """Inputs of the cases that read other tools' outputs: a sweep with its
  exports (for `plot` and `evaluate`) and a Keras model file."""
  from tfprune.drivers import sweep  # pylint: disable=import-outside-toplevel
  import keras  # pylint: disable=import-outside-toplevel
  folder = tmp_path_factory.mktemp('made')
  sweep.run(sweep.SweepConfig(MLP, str(folder / 'sweep'), data_dir=mnist_slice_dir,
                              methods=('weight', 'unit'), levels=(0, 50),
                              save_pruned=True))
  keras.utils.set_random_seed(0)
  keras.Sequential([
      keras.Input((28, 28, 1)), keras.layers.Conv2D(6, 5, activation='relu'),
      keras.layers.MaxPooling2D(), keras.layers.Conv2D(8, 3, activation='relu'),
      keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10),
  ]).save(folder / 'lenet.keras')
  return folder


@pytest.mark.parametrize('case', sorted(CASES))
def test_a_second_run_writes_the_same_bytes(case, made, mnist_slice_dir,
                                            data_dir, tmp_path, capsys):
  name, flags = CASES[case]
  out = tmp_path / 'out'
  flags = [f.format(out=out, mnist=mnist_slice_dir, data=data_dir, made=made)
           for f in flags]
  runs = []
  for _ in range(2):
    code, stdout, err = helpers.run_main(name, *flags, capsys=capsys)
    assert code == 0, err[-5:]
    runs.append(stdout if case in PRINTING else _files(out))
    if case not in PRINTING:
      shutil.copytree(out, tmp_path / f'run{len(runs)}')
  first, second = runs
  if case in PRINTING:
    assert first and first == second
    return
  assert first, f'{case} wrote nothing in {out}'
  assert sorted(first) == sorted(second)
  differ = [path for path in first if first[path] != second[path]]
  assert not differ, (f'{case}: these files differ between two runs: {differ}; '
                      f'{_first_difference(first, second, differ)}')


def _first_difference(first: dict[str, bytes], second: dict[str, bytes],
                      differ: list[str]) -> str:
  """The first differing line of a differing text file (for the message)."""
  for path in differ:
    try:
      a, b = first[path].decode().splitlines(), second[path].decode().splitlines()
    except UnicodeDecodeError:
      continue
    for x, y in zip(a, b):
      if x != y:
        return f'{path}: first {x!r}, second {y!r}'
    return f'{path}: {len(a)} lines, then {len(b)}'
  return 'binary files only'
