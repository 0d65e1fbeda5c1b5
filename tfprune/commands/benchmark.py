"""tfprune benchmark: benchmark pruned networks against the dense one, measured in the same run.

Writes benchmark.json and benchmark.png to --out_dir and prints the table.
A CNN weight folder or --model_file is benchmarked as a graph: the compacted
Keras model (unit) or the masked graph (weight) against the dense one at
batch 1 and 256, in alternating blocks; graph_benchmark.csv (accuracy,
sizes), graph_timing.json (timings) and graph_benchmark.png. With
--point_cost it instead times a sweep of the graph (default levels 50,70,90)
against the Keras model's predict on the same test data, alternating, and
writes point_cost.json (seconds per sweep point / seconds per predict).

  tfprune benchmark --model_file=my.keras --data=my.npz --out_dir=runs/bench
  tfprune benchmark --model_file=my.keras --data=my.npz --point_cost --out_dir=runs/bench
  tfprune benchmark --weights_dir=weights/lenet5-mnist --levels=0,50,70,90 --out_dir=runs/bench-lenet5
  tfprune benchmark --methods=weight,unit,obs --out_dir=runs/bench-mlp
"""


import pathlib

from absl import flags  # pylint: disable=g-import-not-at-top

from tfprune.commands import defaults  # pylint: disable=g-import-not-at-top
from tfprune.criteria import importances  # pylint: disable=g-import-not-at-top
from tfprune.data import datasets  # pylint: disable=g-import-not-at-top
from tfprune.data import provenance  # pylint: disable=g-import-not-at-top
from tfprune.drivers import benchmark  # pylint: disable=g-import-not-at-top
from tfprune.drivers import graph_benchmark  # pylint: disable=g-import-not-at-top
from tfprune.drivers import point_cost  # pylint: disable=g-import-not-at-top
from tfprune.drivers import sweep  # pylint: disable=g-import-not-at-top
from tfprune.errors import TfpruneError  # pylint: disable=g-import-not-at-top
from tfprune.errors import check_not_empty  # pylint: disable=g-import-not-at-top
from tfprune.runtime import executors  # pylint: disable=g-import-not-at-top


_WEIGHTS_DIR = flags.DEFINE_string(
    'weights_dir', defaults.in_clone('weights', 'mlp-mnist'), 'Dense weight folder.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, f'Local data folder (else ${datasets.DATA_DIR_ENV}, else tfds).')
_METHODS = flags.DEFINE_list('methods', list(sweep.DEFAULT_METHODS),
                             f'Methods, from: {",".join(importances.REGISTRY)}.')
_LEVELS = flags.DEFINE_list('levels', [f'{k:g}' for k in sweep.DEFAULT_LEVELS],
                            'Levels k in percent.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed runs at batch 10,000, at least (best kept).')
_MIN_SECONDS = flags.DEFINE_float(
    'min_seconds', 1.0, 'Each timed network runs at least this long per '
    'measurement, in blocks alternating with the dense network.')
_MODEL_FILE = flags.DEFINE_string(
    'model_file', None, 'Your Keras model (.keras, .h5, SavedModel) to '
    'benchmark as a graph instead of --weights_dir.')
_DATA = flags.DEFINE_string(
    'data', None, 'Your data as an .npz with x_test, y_test; replaces --dataset.')
_DATASET = flags.DEFINE_enum(
    'dataset', 'mnist', list(datasets.DATASETS),
    'Dataset whose test split is used (with --model_file, only when '
    'given; else pass --data).')
_POINT_COST = flags.DEFINE_bool(
    'point_cost', False, 'Graphs only: time a sweep point (prune, evaluate on '
    'the test data, count) against one Keras predict of the same model on the '
    'same data, in alternating rounds; writes point_cost.json.')
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'With --point_cost: timed sweeps '
                               'and timed predicts, alternating.')
_ALLOW_OTHER_DATA = flags.DEFINE_bool('allow_other_data', False,
                                        provenance.OVERRIDE_HELP)
_EXECUTOR = flags.DEFINE_enum(
    'executor', 'serial', list(executors.EXECUTORS),
    'Graphs only: where the accuracy points run: serial (this process) or '
    'ray (Ray workers on $RAY_ADDRESS, else a local Ray started for the run; '
    'pip install tfprune[ray]). The CSV is the same bytes either way; the '
    'timings run in this process, after them.')
_OUT_DIR = flags.DEFINE_string('out_dir', defaults.in_clone('img', 'benchmark'),
                               'Folder for benchmark.json and benchmark.png.')


def main(argv):
  del argv
  # Before the checks that read an empty path as given.
  check_not_empty(_MODEL_FILE.value, '--model_file', 'a Keras model file')
  if _MODEL_FILE.value is not None and _WEIGHTS_DIR.present:
    raise TfpruneError('--weights_dir and --model_file both given: pass one '
                       'network to benchmark')
  defaults.check_data_given(_MODEL_FILE.value, _DATA.value, _DATASET.present)
  weights_dir = None if _MODEL_FILE.value else defaults.network(
      _WEIGHTS_DIR.value)
  out_dir = defaults.required(_OUT_DIR.value, 'out_dir', 'folder')
  if _MODEL_FILE.value or graph_benchmark.is_graph_folder(weights_dir):
    if _POINT_COST.value and _EXECUTOR.value != 'serial':
      raise TfpruneError('--point_cost times a sweep in this process: drop '
                         '--executor')
    if _POINT_COST.value:
      _point_cost_main(weights_dir, out_dir)
    else:
      _graph_main(weights_dir, out_dir)
    return
  if _POINT_COST.value:
    raise TfpruneError('--point_cost times graphs: pass a CNN --weights_dir or '
                       'a --model_file (the MLP benchmark times its default '
                       'sweep already)')
  if _EXECUTOR.value != 'serial':
    raise TfpruneError(f'--executor={_EXECUTOR.value} runs the accuracy points '
                       'of a graph benchmark: pass a CNN --weights_dir or a '
                       '--model_file, or drop --executor for the MLP')
  config = benchmark.BenchmarkConfig(
      weights_dir=weights_dir, out_dir=out_dir,
      dataset=_DATASET.value, data=_DATA.value,
      data_dir=_DATA_DIR.value, methods=tuple(_METHODS.value),
      levels=sweep.parse_levels(_LEVELS.value), repeats=_REPEATS.value,
      min_seconds=_MIN_SECONDS.value,
      allow_other_data=_ALLOW_OTHER_DATA.value)
  record = benchmark.run(config)
  print(benchmark.format_table(record))
  print(f'wrote {pathlib.Path(config.out_dir) / benchmark.JSON_NAME} and '
        f'{benchmark.PLOT_NAME}')


def _graph_main(weights_dir: str | None, out_dir: str):
  config = graph_benchmark.GraphBenchmarkConfig(
      out_dir=out_dir, model_file=_MODEL_FILE.value, data=_DATA.value,
      weights_dir=weights_dir,
      dataset=_DATASET.value, data_dir=_DATA_DIR.value,
      methods=tuple(_METHODS.value),
      **({'levels': sweep.parse_levels(_LEVELS.value)} if _LEVELS.present else {}),
      min_seconds=_MIN_SECONDS.value,
      allow_other_data=_ALLOW_OTHER_DATA.value)
  record = graph_benchmark.run(config, _EXECUTOR.value)
  print(graph_benchmark.format_table(record))
  print(f'wrote {pathlib.Path(config.out_dir) / graph_benchmark.CSV_NAME}, '
        f'{graph_benchmark.TIMING_NAME} and {graph_benchmark.PLOT_NAME}')


def _point_cost_main(weights_dir: str | None, out_dir: str):
  config = point_cost.PointCostConfig(
      out_dir=out_dir, model_file=_MODEL_FILE.value, data=_DATA.value,
      weights_dir=weights_dir,
      dataset=_DATASET.value, data_dir=_DATA_DIR.value,
      methods=tuple(_METHODS.value), rounds=_ROUNDS.value,
      **({'levels': sweep.parse_levels(_LEVELS.value)} if _LEVELS.present else {}),
      allow_other_data=_ALLOW_OTHER_DATA.value)
  record = point_cost.run(config)
  print(point_cost.format_record(record))
  print(f'wrote {point_cost.out_path(config)}')
