"""The pruning sweep: prune a network at many levels and measure each.

`run(config)` loads the network (a `.npy` weight folder or a user's Keras
model, either way a `Graph`) and the test split (and, for data-aware methods
and bias correction, a calibration sample of the training split), prunes
with every method at every level k, measures accuracy, the sparsity actually
reached and the costs of the model each point saves, and writes `sweep.csv`,
`sweep_config.json`, `timing.json` and the plots to `config.out_dir` (plus
the pruned graphs with `save_pruned`, Keras models with `save_keras`).

Each point is a trial of `graph_sweep` (one traced evaluator for every
pruned variant; identical pruned graphs are evaluated once per process): in
this process, or with `executor='ray'` as Ray tasks; the files are the same
bytes either way.
"""

import functools
import json
import pathlib
import time
from typing import Callable

import numpy as np

from tfprune import __version__
from tfprune import atomic
from tfprune.criteria import graph_pruning
from tfprune.criteria import reconstruction
from tfprune.data import datasets
from tfprune.data import provenance
from tfprune.data import source as data_source
from tfprune.drivers import allocated
from tfprune.drivers import folder_graph
from tfprune.drivers import graph_sweep
from tfprune.drivers import model_checks
from tfprune.drivers import stale_outputs
from tfprune.drivers import sweep_config
from tfprune.errors import TfpruneError
from tfprune.graph import io as graph_io
from tfprune.graph import network_graph
from tfprune.graph import weights
from tfprune.graph.ir import Graph
from tfprune.reports import plots
from tfprune.reports import sweep_table

CSV_NAME = 'sweep.csv'
CONFIG_NAME = 'sweep_config.json'
TIMING_NAME = 'timing.json'
PRUNED_DIR = 'pruned'
# progress(method, k, accuracy, seconds): one measured point.
Progress = Callable[[str, float, float, float], None]

# Re-exported: the sweep's config and rows are used as `sweep.SweepConfig`, ...
SweepConfig = sweep_config.SweepConfig
SweepRow = sweep_table.SweepRow
COLUMNS = sweep_table.COLUMNS
DEFAULT_LEVELS = sweep_config.DEFAULT_LEVELS
DEFAULT_METHODS = sweep_config.DEFAULT_METHODS
parse_levels = sweep_config.parse_levels
config_record = sweep_config.config_record
to_csv = sweep_table.to_csv
format_table = sweep_table.format_table



def calibration(config: SweepConfig,
                train: datasets.Split | None = None) -> np.ndarray | None:
  """The calibration inputs the sweep's methods need, drawn from the train split.

  Args:
    config: the sweep configuration.
    train: the training split of `config.data`, if it has one.

  Raises:
    TfpruneError: `calibration_size` exceeds the training split.
  """
  if not config.needs_calibration:
    return None
  if config.data is not None and train is None:
    raise TfpruneError(f'{config.calibration_user} needs calibration data but '
                       f'{config.data} has no x_train/y_train: add them')
  try:
    if train is None:
      train = datasets.load(config.dataset, 'train', config.data_dir)
  except TfpruneError as e:
    raise TfpruneError(f'{config.calibration_user} needs calibration data from the '
                       f'{config.dataset} training split, which failed to load: '
                       f'{e}') from None
  images = train.images
  if isinstance(images, dict):  # x_train_<input name> arrays
    if len(images) > 1:
      raise TfpruneError(
          f'{config.calibration_user} calibrates models with one input, and '
          f'{config.data} holds {", ".join(f"x_train_{n}" for n in images)}: '
          'use methods that need no data (weight, unit, ...) on this model')
    images = next(iter(images.values()))
  if config.calibration_size > len(train):
    raise TfpruneError(
        f'calibration_size {config.calibration_size} exceeds the {len(train)} '
        f'training examples of {config.dataset}: pass at most {len(train)}')
  return reconstruction.calibration_inputs(
      images, config.calibration_size, config.calibration_seed)


def sweep(config: SweepConfig, graph: Graph, split: datasets.Split,
          calibration_inputs: np.ndarray | None = None,
          on_pruned=None, progress: Progress | None = None,
          executor: str = 'serial', scored: str | None = None
          ) -> list[SweepRow]:
  """Measures every (method, level) of `config` on `graph`; writes nothing.

  Each point is one trial (`graph_sweep`: pruned and measured), run by
  `executor` (a key of `runtime.executors.EXECUTORS`); the rows are the same,
  in the same order, whichever runs them.

  Args:
    config: the sweep configuration.
    graph: the dense graph (a weight folder's: `folder_graph.to_graph`). A
      weight folder's network is converted here (`drivers/benchmark.py` and
      `gradual_study.py` still pass one).
    split: test data, shaped as the graph reads it (a dense chain's: flattened
      here).
    calibration_inputs: training inputs for data-aware methods and bias
      correction.
    on_pruned: called as on_pruned(method, k, saved graph) for each point.
    progress: called as progress(method, k, accuracy, seconds) as each point
      is measured (seconds: since the previous point arrived).
    executor: where the trials run.
    scored: the output whose accuracy is the `accuracy` column (several
      outputs; `model_checks.scored_output`), None for the only one.
  """
  if not isinstance(graph, Graph):
    graph = network_graph.to_graph(graph, config.use_biases)
  if (not isinstance(split.images, dict) and len(graph.input_shapes) == 1
      and len(graph.outputs) == 1):
    split = folder_graph.shaped(split, graph.input_shape)
    data_source.fits(split, graph.input_shape, int(np.prod(graph.output_shape)),
                     config.data or config.dataset)
  # (arrays by name, several inputs or outputs: the caller checked them)
  names = graph_pruning.prunable(graph, config.prune_layers,
                                 config.prune_output_layer)
  return graph_sweep.sweep_graph(
      graph, config.methods, config.levels, names, split.images, split.labels,
      SweepRow, on_pruned, points=allocated.sweep_points(config),
      per_layer=config.allocation != allocated.UNIFORM, progress=progress,
      allow_sparse=config.sparse_kernels, executor=executor, scored=scored,
      prune=allocated.graph_pruner(config, graph, names, calibration_inputs))


def run(config: SweepConfig, progress: Progress | None = None,
        executor: str = 'serial') -> list[SweepRow]:
  """Runs the sweep and writes CSV, config JSON and plots to `config.out_dir`.

  Everything (with `save_pruned`, the `pruned/` exports too) is written into a
  staging folder made before any work and moved into `config.out_dir` only
  when the sweep has finished (`atomic.staging`): a failed or interrupted run
  leaves the earlier results whole and creates no empty folder. The sweep's
  time goes to `timing.json`, so the CSV and the config JSON of identical
  runs are identical. `progress(method, k, accuracy, seconds)` hears of
  each point as it is measured. `executor` (a key of
  `runtime.executors.EXECUTORS`) runs the points; the files are the same
  bytes whichever does.
  """
  atomic.check_writable(config.out_dir)
  pruned_target = pathlib.Path(config.out_dir) / PRUNED_DIR
  if config.save_pruned and pruned_target.exists() and not pruned_target.is_dir():
    raise TfpruneError(f'{pruned_target} is not writable (Not a directory): '
                       'choose a writable folder with --out_dir')
  if config.model_file is not None:
    return _run_graph(config, progress=progress, executor=executor)
  folder = weights.load(config.weights_dir)
  if config.data is None and not config.allow_other_data:
    weights.check_made_for(folder, config.weights_dir, config.dataset)
  given = data_source.load(config.dataset, config.data_dir, config.data)
  other_data = given.check_made_on(provenance.from_manifest(folder.manifest),
                                   config.weights_dir, config.allow_other_data)
  # Every weight folder (a dense chain, a CNN, a ResNet) is a graph.
  return _run_graph(config, folder, progress, given, other_data, executor)


def _write_run(config: SweepConfig, measure_points, save, record: dict
               ) -> list[SweepRow]:
  """Measures the points into a staging folder, then moves every file in place.

  Args:
    config: the sweep configuration.
    measure_points: on_pruned -> rows; calls on_pruned(method, k, pruned).
    save: (pruned_dir, method, k, pruned) -> None, writing one point's files
      (called only with `save_pruned` or `save_keras`).
    record: what `sweep_config.json` records besides the config.
  """
  earlier = stale_outputs.earlier_sweep(config.out_dir, CSV_NAME, CONFIG_NAME,
                                       [TIMING_NAME], PRUNED_DIR)
  with atomic.staging(config.out_dir) as out_dir:
    on_pruned = None
    if config.save_pruned or config.save_keras:
      pruned_dir = out_dir / PRUNED_DIR
      pruned_dir.mkdir()
      on_pruned = functools.partial(save, pruned_dir)
    start = time.perf_counter()
    rows = measure_points(on_pruned)
    elapsed = time.perf_counter() - start
    csv_path = atomic.write_text(out_dir / CSV_NAME, to_csv(rows))
    record = {'config': config_record(config), **record,
              'tfprune_version': __version__}
    atomic.write_text(out_dir / CONFIG_NAME, json.dumps(record, indent=2) + '\n')
    write_timing(out_dir, elapsed, len(rows))
    plots.plot_sweep(csv_path, out_dir)
    written = {entry.name for entry in out_dir.iterdir()}
  # The earlier sweep's plots of other methods (and pruned/) would describe
  # another run: the folder holds exactly this run's outputs.
  stale_outputs.remove(config.out_dir, earlier - written)
  return rows


def _run_graph(config: SweepConfig,
               folder: weights.WeightFolder | None = None,
               progress: Progress | None = None,
               given: data_source.Given | None = None,
               other_data: bool = False,
               executor: str = 'serial') -> list[SweepRow]:
  """The sweep of a user's Keras model (`config.model_file`) or of a CNN folder."""
  if given is None:
    given = data_source.load(config.dataset, config.data_dir, config.data)
  test, train = given.test, given.train

  def fits(graph):
    for split, which in ((test, 'test'), (train, 'train')):
      data_source.fits_model(split, *model_checks.io_shapes(graph), given.name,
                             which)
  if folder is None:
    graph, recorded = model_checks.import_model(config.model_file, test.images,
                                                fits)
    other_data = given.check_made_on(recorded, config.model_file,
                                     config.allow_other_data)
  else:
    graph = folder_graph.to_graph(folder, config.use_biases)
    test, train = (folder_graph.shaped(split, graph.input_shape)
                   for split in (test, train))
    fits(graph)
  scored = model_checks.scored_output(graph, config.score_output)
  calibration_inputs = calibration(config, train)
  made_on = given.provenance()

  def save(pruned_dir, method, k, pruned):
    stem = pruned_dir / f'{method}-k{k:g}'
    # `pruned` is what the row describes: compacted where channels went.
    if config.save_pruned:
      graph_io.save(pruned, f'{stem}{graph_io.SUFFIX}', made_on)
    if config.save_keras:
      pruned_keras = _pruned_keras()
      pruned_keras.save(pruned, f'{stem}{pruned_keras.SUFFIX}', made_on)
  return _write_run(
      config, lambda on_pruned: sweep(config, graph, test, calibration_inputs,
                                      on_pruned, progress, executor, scored),
      save, {'pruned_layers': graph_pruning.prunable(
          graph, config.prune_layers, config.prune_output_layer),
             **({'weights_sha256': folder.sha256} if folder else {}),
             **({'accuracy_output': scored} if len(graph.outputs) > 1 else {}),
             **given.record(other_data)})


def _pruned_keras():
  """`drivers.pruned_keras`, imported on first use.

  It loads tf_keras (a third of a second of CPU, 8% of the default sweep's
  imports), which only `save_keras` and model files need; so does
  `keras_io.importer`.
  """
  from tfprune.drivers import pruned_keras  # pylint: disable=import-outside-toplevel
  return pruned_keras


def write_timing(out_dir, seconds: float, points: int) -> None:
  """The sweep's wall time, kept apart from its results (`timing.json`)."""
  atomic.write_text(out_dir / TIMING_NAME, json.dumps(
      {'sweep_seconds': round(seconds, 2), 'points': points}, indent=2) + '\n')
