"""The default sweep's 20 points done with plain tf_keras (set_weights + predict).

The baseline the sweep's wall time is compared with (README, "What pruning
buys in speed and size"):

  python experiments/keras_baseline.py
  python experiments/keras_baseline.py --methods=weight --levels=0,90
"""

import os
import pathlib

from tfprune import cli  # first: sets TensorFlow's log level  # pylint: disable=g-import-not-at-top

from absl import flags  # pylint: disable=g-import-not-at-top

from tfprune.data import datasets  # pylint: disable=g-import-not-at-top
from tfprune.data import provenance  # pylint: disable=g-import-not-at-top
from tfprune.drivers import keras_baseline  # pylint: disable=g-import-not-at-top
from tfprune.drivers import sweep  # pylint: disable=g-import-not-at-top

REPO = pathlib.Path(__file__).resolve().parents[1]

_WEIGHTS_DIR = flags.DEFINE_string(
    'weights_dir', os.path.relpath(REPO / 'weights' / 'mlp-mnist'),
    'Dense-chain weight folder (an MLP of the model registry).')
_DATASET = flags.DEFINE_enum('dataset', 'mnist', list(datasets.DATASETS),
                             'Dataset whose test split is scored.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Local data folder.')
_METHODS = flags.DEFINE_list('methods', list(sweep.DEFAULT_METHODS),
                             'Criteria, from: '
                             f'{",".join(keras_baseline.data_free_methods())}.')
_LEVELS = flags.DEFINE_list('levels', [f'{k:g}' for k in sweep.DEFAULT_LEVELS],
                            'Levels k in percent.')
_ALLOW_OTHER_DATA = flags.DEFINE_bool('allow_other_data', False,
                                      provenance.OVERRIDE_HELP)


def main(argv):
  del argv
  rows = keras_baseline.run(_WEIGHTS_DIR.value, _DATASET.value, _DATA_DIR.value,
                            _METHODS.value, sweep.parse_levels(_LEVELS.value),
                            allow_other_data=_ALLOW_OTHER_DATA.value)
  for method, k, accuracy in rows:
    print(f'{method:<8} {k:>6g} {100 * accuracy:>8.2f}%')


if __name__ == '__main__':
  cli.run(main)
