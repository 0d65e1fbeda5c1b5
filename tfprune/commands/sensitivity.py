"""tfprune sensitivity: scan each layer's sensitivity to pruning, for --allocation=sensitivity.

Prunes one layer at a time at each level and measures accuracy and loss on a
seeded slice of the training data (never the test set); writes
sensitivity.csv, sensitivity_config.json and sensitivity.png to --out_dir.

  tfprune sensitivity --model_file=my.keras --data=my.npz --out_dir=runs/mine
  tfprune sensitivity --weights_dir=weights/mlp-mnist --out_dir=runs/mlp-mnist
  tfprune sensitivity --weights_dir=weights/lenet5-mnist --criterion=unit --out_dir=runs/lenet-unit
"""


import pathlib

from absl import flags  # pylint: disable=g-import-not-at-top

from tfprune.commands import defaults  # pylint: disable=g-import-not-at-top
from tfprune.criteria import graph_pruning  # pylint: disable=g-import-not-at-top
from tfprune.data import datasets  # pylint: disable=g-import-not-at-top
from tfprune.data import provenance  # pylint: disable=g-import-not-at-top
from tfprune.drivers import sensitivity  # pylint: disable=g-import-not-at-top
from tfprune.drivers import sweep  # pylint: disable=g-import-not-at-top
from tfprune.runtime import executors  # pylint: disable=g-import-not-at-top
from tfprune.errors import check_not_empty  # pylint: disable=g-import-not-at-top


_WEIGHTS_DIR = flags.DEFINE_string(
    'weights_dir', None, 'Weight folder to scan (or --model_file).')
_MODEL_FILE = flags.DEFINE_string(
    'model_file', None, 'Your Keras model (.keras, .h5, SavedModel) to scan.')
_DATA = flags.DEFINE_string(
    'data', None, 'With --model_file: an .npz whose x_train, y_train are '
    'measured on (a seeded slice; x_test is never read).')
_DATASET = flags.DEFINE_enum(
    'dataset', 'mnist', list(datasets.DATASETS),
    'Dataset of --weights_dir; its training split is used (with '
    '--model_file, only when given; else pass --data).')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, f'Local data folder (else ${datasets.DATA_DIR_ENV}, else '
    'a tensorflow-datasets download).')
_CRITERION = flags.DEFINE_enum('criterion', 'weight', list(graph_pruning.kernel_criteria()),
                               'How each layer is pruned.')
_LEVELS = flags.DEFINE_list(
    'levels', [f'{k:g}' for k in sensitivity.DEFAULT_LEVELS],
    'Levels k in percent of the layer; 0 is always measured.')
_HOLDOUT_SIZE = flags.DEFINE_integer(
    'holdout_size', sensitivity.DEFAULT_HOLDOUT_SIZE,
    'Training examples drawn (seeded) to measure on.')
_HOLDOUT_SEED = flags.DEFINE_integer('holdout_seed', 0, 'Seed of that draw.')
_PRUNE_LAYERS = flags.DEFINE_list(
    'prune_layers', [], 'Layer names to scan (default: every layer with a '
    'kernel but the output layer).')
_PRUNE_OUTPUT_LAYER = flags.DEFINE_bool('prune_output_layer', False,
                                        'Scan the output layer too.')
_USE_BIASES = flags.DEFINE_bool('use_biases', True,
                                'Add biases in the forward pass (weight folders).')
_ALLOW_OTHER_DATA = flags.DEFINE_bool('allow_other_data', False,
                                        provenance.OVERRIDE_HELP)
_EXECUTOR = flags.DEFINE_enum(
    'executor', 'serial', list(executors.EXECUTORS),
    'Where the (layer, level) trials run: serial (this process) or ray (Ray '
    'tasks on $RAY_ADDRESS, else a local Ray started for the run; pip install '
    'tfprune[ray]). The files are the same bytes either way.')
_OUT_DIR = flags.DEFINE_string(
    'out_dir', defaults.in_clone('runs', 'sensitivity'),
    'Folder for sensitivity.csv, sensitivity_config.json and the plot.')


def main(argv):
  del argv
  # Before the checks that read an empty path as given.
  check_not_empty(_MODEL_FILE.value, '--model_file', 'a Keras model file')
  defaults.check_data_given(_MODEL_FILE.value, _DATA.value, _DATASET.present)
  config = sensitivity.ScanConfig(
      out_dir=defaults.required(_OUT_DIR.value, 'out_dir', 'folder'),
      weights_dir=_WEIGHTS_DIR.value,
      model_file=_MODEL_FILE.value, data=_DATA.value, dataset=_DATASET.value,
      data_dir=_DATA_DIR.value, criterion=_CRITERION.value,
      levels=sweep.parse_levels(_LEVELS.value),
      holdout_size=_HOLDOUT_SIZE.value, holdout_seed=_HOLDOUT_SEED.value,
      prune_layers=tuple(_PRUNE_LAYERS.value),
      prune_output_layer=_PRUNE_OUTPUT_LAYER.value,
      use_biases=_USE_BIASES.value,
      allow_other_data=_ALLOW_OTHER_DATA.value)
  result = sensitivity.run(config, _EXECUTOR.value)
  for name, curve in result.curves.items():
    print(f'{name:>16} ({curve.size:>9,} weights): ' + ' '.join(
        f'{k:g}:{100 * a:.1f}' for k, a in zip(curve.levels, curve.accuracy)))
  print(f'wrote {pathlib.Path(config.out_dir) / sensitivity.CSV_NAME} and the plot')
