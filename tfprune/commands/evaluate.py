"""tfprune evaluate: score a pruned network: accuracy, size, shape.

--export takes what `tfprune sweep --save_pruned` writes (a dense-chain
export, or a graph file for CNN folders and --model_file), a gradual run's
graph.npz, or a Keras model file (imported and verified). Graphs score
through the graph evaluator, exactly as the sweep scored them.

  tfprune sweep --methods=unit --levels=90 --save_pruned --out_dir=runs/u90
  tfprune evaluate --export=runs/u90/pruned/unit-k90.npz
  tfprune evaluate --export=runs/mine/pruned/weight-k90.npz --data=my.npz
"""


from absl import flags  # pylint: disable=g-import-not-at-top

from tfprune.data import datasets  # pylint: disable=g-import-not-at-top
from tfprune.drivers import scoring  # pylint: disable=g-import-not-at-top

_EXPORT = flags.DEFINE_string(
    'export', None, 'Pruned export or graph file (.npz), or Keras model file, '
    'to score.', required=True)
_DATA = flags.DEFINE_string(
    'data', None, 'Your data as an .npz with x_test, y_test, instead of '
    '--dataset (graph files and Keras models).')
_DATASET = flags.DEFINE_enum('dataset', 'mnist', list(datasets.DATASETS),
                             'Dataset whose test split is used.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, f'Local data folder (else ${datasets.DATA_DIR_ENV}, else tfds).')


def main(argv):
  del argv
  s = scoring.score(_EXPORT.value, _DATASET.value, _DATA_DIR.value, _DATA.value)
  print(f'{s.path}: accuracy {100 * s.accuracy:.2f}% on {s.dataset} test, '
        f'{s.nonzero_params:,} non-zero parameters, layers {s.units}, '
        f'{s.size_bytes:,} bytes; made by {s.metadata}')
