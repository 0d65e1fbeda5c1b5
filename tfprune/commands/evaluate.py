"""tfprune evaluate: score a pruned network: accuracy, size, shape.

--export takes what `tfprune sweep --save_pruned` writes (a dense-chain
export, or a graph file for CNN folders and --model_file), a gradual run's
graph.npz, or a Keras model file (imported and verified). Graphs score
through the graph evaluator, exactly as the sweep scored them. A model with
several inputs or outputs reads --data of x_test_<input> / y_test_<output>
arrays; every output is scored, the first (or --score_output) first, as the
sweep's accuracy column.

  tfprune sweep --methods=unit --levels=90 --save_pruned --out_dir=runs/u90
  tfprune evaluate --export=runs/u90/pruned/unit-k90.npz
  tfprune evaluate --export=runs/mine/pruned/weight-k90.npz --data=my.npz
  tfprune evaluate --export=two_heads.keras --data=my.npz --score_output=kind
"""


from absl import flags  # pylint: disable=g-import-not-at-top

from tfprune.data import datasets  # pylint: disable=g-import-not-at-top
from tfprune.data import provenance  # pylint: disable=g-import-not-at-top
from tfprune.drivers import scoring  # pylint: disable=g-import-not-at-top

_EXPORT = flags.DEFINE_string(
    'export', None, 'Pruned export or graph file (.npz), or Keras model file, '
    'to score.', required=True)
_DATA = flags.DEFINE_string(
    'data', None, 'Your data as an .npz with x_test, y_test, instead of '
    '--dataset (graph files and Keras models). A model with several '
    'inputs/outputs reads x_test_<input name>, y_test_<output name>.')
_SCORE_OUTPUT = flags.DEFINE_string(
    'score_output', None, 'For a model with several outputs: the output whose '
    'accuracy is printed first, as the sweep\'s accuracy column (default: the '
    'first output); the others follow.')
_DATASET = flags.DEFINE_enum('dataset', 'mnist', list(datasets.DATASETS),
                             'Dataset whose test split is used.')
_ALLOW_OTHER_DATA = flags.DEFINE_bool('allow_other_data', False,
                                        provenance.OVERRIDE_HELP)
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, f'Local data folder (else ${datasets.DATA_DIR_ENV}, else tfds).')


def main(argv):
  del argv
  s = scoring.score(_EXPORT.value, _DATASET.value, _DATA_DIR.value, _DATA.value,
                    _ALLOW_OTHER_DATA.value, _SCORE_OUTPUT.value)
  others = ', '.join(f'{name} {100 * accuracy:.2f}%'
                     for name, accuracy in s.output_accuracies)
  scored = f' (output {s.output}; other outputs: {others})' if others else ''
  print(f'{s.path}: accuracy {100 * s.accuracy:.2f}%{scored} on {s.dataset} test, '
        f'{s.nonzero_params:,} non-zero parameters, {s.flops:,} multiply-adds, '
        f'layers {s.units}, '
        f'{s.size_bytes:,} bytes; made by {s.metadata}')
