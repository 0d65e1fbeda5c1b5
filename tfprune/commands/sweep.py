"""tfprune sweep: prune a network at many levels, print and save accuracy per method and k.

Writes sweep.csv, sweep_config.json and the plots to --out_dir. Examples:

  tfprune sweep --model_file=my.keras --data=my.npz --levels=0,50,90 --out_dir=runs/mine
  tfprune sweep --model_file=my.keras --data=my.npz --methods=unit --levels=50 --save_keras --out_dir=runs/mine-unit
  tfprune sweep --methods=weight,wanda,obs --bias_correction --out_dir=runs/oneshot
  tfprune sweep --methods=weight --levels=90,95 --allocation=global --out_dir=runs/global
  tfprune sweep --methods=weight --levels=0 --pattern=2:4 --out_dir=runs/nm

Without --model_file or --weights_dir, a clone's prebuilt MNIST MLP
(weights/mlp-mnist) is pruned and the results go to its img/.
"""

import pathlib
import sys
import time

_START = time.perf_counter()

from absl import flags  # pylint: disable=g-import-not-at-top

from tfprune import errors  # pylint: disable=g-import-not-at-top
from tfprune.allocation import allocators  # pylint: disable=g-import-not-at-top
from tfprune.commands import defaults  # pylint: disable=g-import-not-at-top
from tfprune.criteria import importances  # pylint: disable=g-import-not-at-top
from tfprune.criteria import reconstruction  # pylint: disable=g-import-not-at-top
from tfprune.data import datasets  # pylint: disable=g-import-not-at-top
from tfprune.data import provenance  # pylint: disable=g-import-not-at-top
from tfprune.drivers import sweep  # pylint: disable=g-import-not-at-top
from tfprune.runtime import executors  # pylint: disable=g-import-not-at-top
from tfprune.errors import check_not_empty  # pylint: disable=g-import-not-at-top

_WEIGHTS_DIR = flags.DEFINE_string(
    'weights_dir', defaults.in_clone('weights', 'mlp-mnist'),
    'Weight folder to prune (default: a clone\'s prebuilt MNIST MLP).')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, f'Local data folder (else ${datasets.DATA_DIR_ENV}, else a '
    'tensorflow-datasets download).')
_DATASET = flags.DEFINE_enum(
    'dataset', 'mnist', list(datasets.DATASETS),
    'Dataset whose test split is used (with --model_file, only when '
    'given; else pass --data).')
_METHODS = flags.DEFINE_list(
    'methods', list(sweep.DEFAULT_METHODS),
    'Pruning methods, comma-separated, from: ' + '; '.join(
        f'{name} ({m.summary})' for name, m in importances.REGISTRY.items()) + '.')
_LEVELS = flags.DEFINE_list(
    'levels', [f'{k:g}' for k in sweep.DEFAULT_LEVELS],
    'Pruning levels k in percent of each pruned layer, each in [0, 100].')
_USE_BIASES = flags.DEFINE_bool(
    'use_biases', True, 'Add biases in the forward pass; false reproduces the '
    'original project, which ignored them.')
_PRUNE_OUTPUT_LAYER = flags.DEFINE_bool(
    'prune_output_layer', False, 'Prune the output layer too (default: only '
    'the hidden layers).')
_CALIBRATION_SIZE = flags.DEFINE_integer(
    'calibration_size', reconstruction.DEFAULT_CALIBRATION_SIZE,
    'Training examples drawn (seeded) for wanda, obs and --bias_correction; '
    'never test data.')
_CALIBRATION_SEED = flags.DEFINE_integer('calibration_seed', 0,
                                         'Seed of the calibration draw.')
_BIAS_CORRECTION = flags.DEFINE_bool(
    'bias_correction', False, 'After pruning, shift each pruned layer\'s bias so '
    'its mean pre-activation, where the dense unit is active on the '
    'calibration set, matches the dense one.')
_SPARSE_KERNELS = flags.DEFINE_bool(
    'sparse_kernels', True, 'Evaluate with CSR kernels on layers where they '
    'measured faster than dense (results are the same either way).')
_SAVE_PRUNED = flags.DEFINE_bool(
    'save_pruned', False, 'Also write each pruned network, compacted and sparse, '
    'to <out_dir>/pruned/<method>-k<k>.npz.')
_SAVE_KERAS = flags.DEFINE_bool(
    'save_keras', False, 'Also write each pruned network as a plain Keras model '
    'to <out_dir>/pruned/<method>-k<k>.keras: channels removed (smaller '
    'layers) for unit, the masked network otherwise.')
_MODEL_FILE = flags.DEFINE_string(
    'model_file', None, 'Your Keras model (.keras, .h5 or SavedModel folder, '
    'tf_keras or Keras 3) to prune instead of --weights_dir.')
_DATA = flags.DEFINE_string(
    'data', None, 'Your data as an .npz with x_test, y_test (integer labels) '
    'and optionally x_train, y_train, shaped as the model takes them; '
    'replaces --dataset. A model with several inputs/outputs reads '
    'x_test_<input name> and y_test_<output name> arrays.')
_SCORE_OUTPUT = flags.DEFINE_string(
    'score_output', None, 'For a --model_file with several outputs: the '
    'output whose accuracy is the accuracy column (default: the first); the '
    'others get accuracy_<output> columns.')
_PRUNE_LAYERS = flags.DEFINE_list(
    'prune_layers', [], 'Keras layer names to prune (with --model_file; '
    'default: every layer with a kernel but the output layer).')
_ALLOCATION = flags.DEFINE_enum(
    'allocation', 'uniform', list(allocators.ALLOCATIONS),
    'How the level k is spread over the pruned layers: uniform (k% of each '
    'layer), global (one |w| threshold over all), erk (Erdos-Renyi-kernel '
    'densities), sensitivity (least predicted damage from --sensitivity_csv). '
    'Except uniform, k is the sparsity of all pruned layers together.')
_SENSITIVITY_CSV = flags.DEFINE_string(
    'sensitivity_csv', None, 'The sensitivity.csv of experiments/sensitivity.py '
    'for this network, read by --allocation=sensitivity.')
_PATTERN = flags.DEFINE_string(
    'pattern', None, 'N:M (e.g. 2:4): also prune each weight-level method '
    '(weight, random) keeping N of every M consecutive input weights per '
    'output; rows named <method>-N:M with k = 100(M-N)/M.')
_PROGRESS = flags.DEFINE_bool(
    'progress', True, 'Print one line per measured point (method, k, accuracy, '
    'seconds) to stderr as the sweep goes.')
_ALLOW_OTHER_DATA = flags.DEFINE_bool('allow_other_data', False,
                                        provenance.OVERRIDE_HELP)
_EXECUTOR = flags.DEFINE_enum(
    'executor', 'serial', list(executors.EXECUTORS),
    'Where the points run: serial (this process) or ray (Ray tasks on '
    '$RAY_ADDRESS, else a local Ray started for the run; pip install '
    'tfprune[ray]). The files are the same bytes either way.')
_OUT_DIR = flags.DEFINE_string('out_dir', defaults.in_clone('img'),
                               'Folder for sweep.csv, sweep_config.json, plots.')


def main(argv):
  del argv
  # Before the checks that read an empty path as given.
  check_not_empty(_MODEL_FILE.value, '--model_file', 'a Keras model file')
  if _MODEL_FILE.value is not None and _WEIGHTS_DIR.present:
    raise errors.TfpruneError('--weights_dir and --model_file both given: '
                              'pass one network to prune')
  defaults.check_data_given(_MODEL_FILE.value, _DATA.value, _DATASET.present)
  config = sweep.SweepConfig(
      weights_dir=None if _MODEL_FILE.value else defaults.network(
          _WEIGHTS_DIR.value),
      out_dir=defaults.required(_OUT_DIR.value, 'out_dir', 'folder'),
      model_file=_MODEL_FILE.value, data=_DATA.value,
      prune_layers=tuple(_PRUNE_LAYERS.value),
      dataset=_DATASET.value, data_dir=_DATA_DIR.value,
      methods=tuple(m.strip() for m in _METHODS.value),
      levels=sweep.parse_levels(_LEVELS.value), use_biases=_USE_BIASES.value,
      prune_output_layer=_PRUNE_OUTPUT_LAYER.value,
      calibration_size=_CALIBRATION_SIZE.value,
      calibration_seed=_CALIBRATION_SEED.value,
      bias_correction=_BIAS_CORRECTION.value,
      sparse_kernels=_SPARSE_KERNELS.value, save_pruned=_SAVE_PRUNED.value,
      allocation=_ALLOCATION.value, sensitivity_csv=_SENSITIVITY_CSV.value,
      pattern=_PATTERN.value,
      save_keras=_SAVE_KERAS.value,
      allow_other_data=_ALLOW_OTHER_DATA.value,
      score_output=_SCORE_OUTPUT.value)
  rows = sweep.run(config, progress=_print_progress if _PROGRESS.value else None,
                   executor=_EXECUTOR.value)
  print(sweep.format_table(rows))
  print(f'wrote {pathlib.Path(config.out_dir) / sweep.CSV_NAME} and plots; '
        f'wall time {time.perf_counter() - _START:.1f} s (TF import included)')


def _print_progress(method: str, k: float, accuracy: float,
                    seconds: float) -> None:
  print(f'{method} k={k:g}: {100 * accuracy:.2f}% ({seconds:.1f} s)',
        file=sys.stderr, flush=True)


def interrupted() -> str:
  """What a Ctrl-C leaves: outputs are moved in only at the end."""
  return f'interrupted: earlier results in {_OUT_DIR.value} are unchanged'
