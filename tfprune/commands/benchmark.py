"""tfprune benchmark: benchmark pruned networks against the dense one, measured in the same run.

Any network, a weight folder (the MLP, LeNet-5, the Fashion CNN) or your
Keras model file, is pruned as the sweep prunes it and timed against the
dense one at each --batch_sizes, in alternating blocks: the compacted Keras
model for methods that remove channels (unit), the masked graph through the
graph evaluator otherwise (weight, obs, ...), and the same masked graph with
its large Dense layers on CSR against all dense. Writes graph_benchmark.csv
(accuracy, sizes: byte-reproducible), graph_timing.json (timings) and
graph_benchmark.png to --out_dir and prints the table. With --point_cost it
instead times a sweep of the graph (default levels 50,70,90) against the
Keras model's predict on the same test data, alternating, and writes
point_cost.json (seconds per sweep point / seconds per predict).

  tfprune benchmark --methods=weight,unit,obs --levels=0,50,80,90,95,99 --batch_sizes=1,10000 --out_dir=runs/bench-mlp
  tfprune benchmark --weights_dir=weights/lenet5-mnist --levels=0,50,70,90 --out_dir=runs/bench-lenet5
  tfprune benchmark --model_file=my.keras --data=my.npz --out_dir=runs/bench
  tfprune benchmark --model_file=my.keras --data=my.npz --point_cost --out_dir=runs/bench
"""

import dataclasses
import pathlib

from absl import flags  # pylint: disable=g-import-not-at-top

from tfprune.commands import defaults  # pylint: disable=g-import-not-at-top
from tfprune.criteria import importances  # pylint: disable=g-import-not-at-top
from tfprune.data import datasets  # pylint: disable=g-import-not-at-top
from tfprune.data import provenance  # pylint: disable=g-import-not-at-top
from tfprune.drivers import benchmark  # pylint: disable=g-import-not-at-top
from tfprune.drivers import point_cost  # pylint: disable=g-import-not-at-top
from tfprune.drivers import sweep  # pylint: disable=g-import-not-at-top
from tfprune.errors import TfpruneError  # pylint: disable=g-import-not-at-top
from tfprune.errors import check_not_empty  # pylint: disable=g-import-not-at-top
from tfprune.reports import benchmark_table  # pylint: disable=g-import-not-at-top
from tfprune.runtime import executors  # pylint: disable=g-import-not-at-top


_DEFAULTS = {f.name: f.default
             for f in dataclasses.fields(benchmark.BenchmarkConfig)}
_WEIGHTS_DIR = flags.DEFINE_string(
    'weights_dir', defaults.in_clone('weights', 'mlp-mnist'), 'Dense weight folder.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, f'Local data folder (else ${datasets.DATA_DIR_ENV}, else tfds).')
_METHODS = flags.DEFINE_list('methods', list(_DEFAULTS['methods']),
                             f'Methods, from: {",".join(importances.REGISTRY)}.')
_LEVELS = flags.DEFINE_list(
    'levels', [f'{k:g}' for k in _DEFAULTS['levels']], 'Levels k in percent '
    f'(with --point_cost: {",".join(f"{k:g}" for k in point_cost.DEFAULT_LEVELS)}).')
_BATCH_SIZES = flags.DEFINE_list(
    'batch_sizes', [str(b) for b in _DEFAULTS['batch_sizes']],
    'Examples per timed call; each pruned network is timed at every one.')
_RUNS = flags.DEFINE_integer('runs', _DEFAULTS['runs'],
                             'Timed calls per network and batch size, at least.')
_MIN_SECONDS = flags.DEFINE_float(
    'min_seconds', _DEFAULTS['min_seconds'], 'Each timed network runs at least '
    'this long per batch size, in blocks alternating with the dense network.')
_CALIBRATION_SIZE = flags.DEFINE_integer(
    'calibration_size', _DEFAULTS['calibration_size'],
    'Training examples drawn for data-aware methods (obs, wanda, ...).')
_MODEL_FILE = flags.DEFINE_string(
    'model_file', None, 'Your Keras model (.keras, .h5, SavedModel) to '
    'benchmark instead of --weights_dir.')
_DATA = flags.DEFINE_string(
    'data', None, 'Your data as an .npz with x_test, y_test (and x_train, '
    'y_train for data-aware methods); replaces --dataset.')
_DATASET = flags.DEFINE_enum(
    'dataset', 'mnist', list(datasets.DATASETS),
    'Dataset whose test split is used (with --model_file, only when '
    'given; else pass --data).')
_POINT_COST = flags.DEFINE_bool(
    'point_cost', False, 'Time a sweep point (prune, evaluate on the test '
    'data, count) against one Keras predict of the same model on the same '
    'data, in alternating rounds; writes point_cost.json.')
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'With --point_cost: timed sweeps '
                               'and timed predicts, alternating.')
_ALLOW_OTHER_DATA = flags.DEFINE_bool('allow_other_data', False,
                                        provenance.OVERRIDE_HELP)
_EXECUTOR = flags.DEFINE_enum(
    'executor', 'serial', list(executors.EXECUTORS),
    'Where the accuracy points run: serial (this process) or ray (Ray '
    'workers on $RAY_ADDRESS, else a local Ray started for the run; pip '
    'install tfprune[ray]). The CSV is the same bytes either way; the '
    'timings run in this process, after them.')
_OUT_DIR = flags.DEFINE_string(
    'out_dir', defaults.in_clone('img', 'benchmark'),
    'Folder for graph_benchmark.csv, graph_timing.json and graph_benchmark.png '
    '(with --point_cost: point_cost.json).')


def _batch_sizes() -> tuple[int, ...]:
  try:
    return tuple(int(b) for b in _BATCH_SIZES.value)
  except ValueError:
    raise TfpruneError(f'--batch_sizes={",".join(_BATCH_SIZES.value)} is not a '
                       'list of whole numbers: pass e.g. --batch_sizes=1,256'
                       ) from None


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
  if _POINT_COST.value:
    if _EXECUTOR.value != 'serial':
      raise TfpruneError('--point_cost times a sweep in this process: drop '
                         '--executor')
    _point_cost_main(weights_dir, out_dir)
    return
  config = benchmark.BenchmarkConfig(
      out_dir=out_dir, model_file=_MODEL_FILE.value, data=_DATA.value,
      weights_dir=weights_dir, dataset=_DATASET.value, data_dir=_DATA_DIR.value,
      methods=tuple(_METHODS.value), levels=sweep.parse_levels(_LEVELS.value),
      batch_sizes=_batch_sizes(), min_seconds=_MIN_SECONDS.value,
      runs=_RUNS.value, calibration_size=_CALIBRATION_SIZE.value,
      allow_other_data=_ALLOW_OTHER_DATA.value)
  record = benchmark.run(config, _EXECUTOR.value)
  print(benchmark_table.format_table(record))
  print(f'wrote {pathlib.Path(config.out_dir) / benchmark_table.CSV_NAME}, '
        f'{benchmark_table.TIMING_NAME} and {benchmark_table.PLOT_NAME}')


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
