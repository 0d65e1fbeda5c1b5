"""Score a pruned export written by `sweep.py --save_pruned`: accuracy, size, shape.

  python experiments/sweep.py --methods=unit --levels=90 --save_pruned --out_dir=runs/u90
  python experiments/evaluate.py --export=runs/u90/pruned/unit-k90.npz
"""

from tfprune import cli  # first: sets TensorFlow's log level  # pylint: disable=g-import-not-at-top

from absl import flags  # pylint: disable=g-import-not-at-top

from tfprune.data import datasets  # pylint: disable=g-import-not-at-top
from tfprune.runtime import export  # pylint: disable=g-import-not-at-top

_EXPORT = flags.DEFINE_string('export', None, 'Pruned export (.npz) to score.',
                              required=True)
_DATASET = flags.DEFINE_enum('dataset', 'mnist', list(datasets.DATASETS),
                             'Dataset whose test split is used.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, f'Local data folder (else ${datasets.DATA_DIR_ENV}, else tfds).')


def main(argv):
  del argv
  s = export.score(_EXPORT.value, _DATASET.value, _DATA_DIR.value)
  print(f'{s.path}: accuracy {100 * s.accuracy:.2f}% on {s.dataset} test, '
        f'{s.nonzero_params:,} non-zero parameters, layers {s.units}, '
        f'{s.size_bytes:,} bytes; made by {s.metadata}')


if __name__ == '__main__':
  cli.run(main)
