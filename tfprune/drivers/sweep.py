"""The pruning sweep: prune a weight folder at many levels and measure each.

`run(config)` loads the weights and the test split (and, for data-aware
methods, a calibration sample of the training split), prunes with every method
at every level k, measures accuracy, the sparsity actually reached and the
costs of `metrics`, and writes `sweep.csv`, `sweep_config.json`, `timing.json`
and the plots to `config.out_dir` (plus the pruned exports with `save_pruned`).

Each pruned network is evaluated through `inference.plan`: compacted, with a
CSR kernel on the layers where it measured faster, so that a sweep costs far
less than one dense forward pass per point. Identical pruned networks (every
method at k = 0) are evaluated once per process. Each point is a trial
(`runtime.executors`): in this process, or with `executor='ray'` as Ray
tasks; the files are the same bytes either way.
"""

import dataclasses
import functools
import json
import pathlib
import time
from typing import Callable, Sequence

import numpy as np

from tfprune import __version__
from tfprune import atomic
from tfprune.criteria import graph_pruning
from tfprune.criteria import pruning
from tfprune.criteria import reconstruction
from tfprune.data import datasets
from tfprune.data import provenance
from tfprune.data import source as data_source
from tfprune.drivers import allocated
from tfprune.drivers import graph_sweep
from tfprune.drivers import stale_outputs
from tfprune.drivers import model_checks
from tfprune.drivers import sweep_config
from tfprune.errors import TfpruneError
from tfprune.graph import io as graph_io
from tfprune.graph import network_graph
from tfprune.graph import weights
from tfprune.graph.ir import Graph
from tfprune.graph.network import Network
from tfprune.reports import plots
from tfprune.reports import sweep_table
from tfprune.runtime import executors
from tfprune.runtime import export
from tfprune.runtime import inference
from tfprune.runtime import metrics
from tfprune.transforms import biases

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



def measure(dense_counts: metrics.Counts, pruned: Network,
            pruned_layers: Sequence[int], inputs: Sequence[object],
            labels: np.ndarray, config: 'SweepConfig', method: str, k: float,
            accuracy: float | None = None) -> SweepRow:
  """Measures `pruned` on the prepared test inputs.

  Args:
    dense_counts: total counts of the unpruned network (reference for ratios).
    pruned: the pruned network.
    pruned_layers: 0-based indices of the layers that were pruned.
    inputs: test images prepared by `inference.prepare`.
    labels: test labels.
    config: the sweep configuration (biases, kernels).
    method: method name, for the row.
    k: level, for the row.
    accuracy: a known accuracy of an identical network, to skip evaluation.
  """
  plan = inference.plan(pruned, config.use_biases, config.sparse_kernels)
  if accuracy is None:
    accuracy = inference.accuracy(plan, inputs, labels)
  kernels = [pruned.kernels[i] for i in pruned_layers]
  size = sum(kernel.size for kernel in kernels)
  zeros = sum(kernel.size - _count_nonzero(kernel) for kernel in kernels)
  # The counts and size are those of the compacted network that `save_pruned`
  # and `save_keras` write (units nothing needs are gone), not of the masked
  # one; its accuracy is the masked network's, which it equals.
  counts = metrics.total(metrics.layer_counts(plan.network, config.use_biases))
  return SweepRow(
      method=method, k=k, accuracy=accuracy,
      sparsity=zeros / size if size else 0.0,
      nonzero_params=counts.nonzero_params,
      flops=counts.effective_macs,
      flops_speedup=(dense_counts.dense_macs / counts.effective_macs
                     if counts.effective_macs else float('inf')),
      compression=(dense_counts.params / counts.nonzero_params
                   if counts.nonzero_params else float('inf')),
      size_bytes=export.size_bytes(plan.network, config.use_biases,
                                   export_metadata(config, method, k)),
      units=metrics.widths(plan.network),
      kernels='+'.join(plan.kinds))


def export_metadata(config: SweepConfig, method: str, k: float) -> dict:
  """What a pruned export records of how it was made."""
  return {'method': method, 'k': k, 'weights_dir': config.weights_dir}


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
  if config.calibration_size > len(train):
    raise TfpruneError(
        f'calibration_size {config.calibration_size} exceeds the {len(train)} '
        f'training examples of {config.dataset}: pass at most {len(train)}')
  return reconstruction.calibration_inputs(
      train.images, config.calibration_size, config.calibration_seed)


def sweep(config: SweepConfig, network: Network, split: datasets.Split,
          calibration_inputs: np.ndarray | None = None,
          on_pruned=None, progress: Progress | None = None,
          executor: str = 'serial') -> list[SweepRow]:
  """Measures every (method, level) of `config` on `network`; writes nothing.

  Each point is one trial (`_trial`: pruned and measured), run by `executor`
  (a key of `runtime.executors.EXECUTORS`); the rows are the same, in the
  same order, whichever runs them.

  Args:
    config: the sweep configuration.
    network: the dense network.
    split: test data.
    calibration_inputs: training inputs for data-aware methods.
    on_pruned: called as on_pruned(method, k, pruned_network) for each point.
    progress: called as progress(method, k, accuracy, seconds) as each point
      is measured (seconds: since the previous point arrived).
    executor: where the trials run.
  """
  data_name = config.data or config.dataset
  example_size = int(np.prod(split.images.shape[1:]))
  if network.input_dim != example_size:
    raise TfpruneError(
        f'the weights in {config.weights_dir} take {network.input_dim} inputs '
        f'but {data_name} examples have {example_size} values: use weights '
        'trained on this data')
  if config.data is None and network.output_dim != datasets.get(
      config.dataset).num_classes:
    raise TfpruneError(
        f'the weights in {config.weights_dir} have {network.output_dim} outputs '
        f'but {config.dataset} has {datasets.get(config.dataset).num_classes} '
        'classes: use weights trained on this dataset')
  data_source.fits_flat(split, network.input_dim, network.output_dim, data_name)
  layers = pruning.prunable_layers(network.num_layers, config.prune_output_layer)
  payload = _Payload(
      config, network, tuple(layers), inference.prepare(split.images,
                                                        network.input_dim),
      split.labels, allocated.network_pruner(config, network, layers,
                                             calibration_inputs),
      keep_pruned=on_pruned is not None)
  points = allocated.sweep_points(config)
  return graph_sweep.collect(points, executors.map_trials(
      executor, _prepare, _trial, payload, points), on_pruned, progress)


@dataclasses.dataclass(frozen=True)
class _Payload:
  """What every trial of a weight folder's sweep reads."""
  config: SweepConfig
  network: Network
  layers: tuple[int, ...]
  inputs: Sequence[object]
  labels: np.ndarray
  prune: allocated.NetworkPruner
  keep_pruned: bool


@dataclasses.dataclass(frozen=True)
class _Context:
  """A payload, the dense counts, and the accuracies measured in this process.

  `seen` maps non-zero counts to (network, accuracy) pairs: equal networks
  (every method at k = 0) are evaluated once per process.
  """
  payload: _Payload
  dense_counts: metrics.Counts
  seen: dict


def _prepare(payload: _Payload) -> _Context:
  return _Context(payload, metrics.total(metrics.layer_counts(
      payload.network, payload.config.use_biases)), {})


def _trial(context: _Context, point: allocated.Point
           ) -> tuple[SweepRow, float, Network | None]:
  """One point pruned and measured: its row, accuracy (and network if kept)."""
  payload, config = context.payload, context.payload.config
  pruned = payload.prune(payload.network, point)
  # Equal networks have equal non-zero counts: compare arrays only then.
  candidates = context.seen.setdefault(_nonzero_counts(pruned), [])
  known = next((accuracy for other, accuracy in candidates
                if _same_arrays(other, pruned)), None)
  row = measure(context.dense_counts, pruned, payload.layers, payload.inputs,
                payload.labels, config, point.row, point.k, accuracy=known)
  if config.allocation != allocated.UNIFORM:
    row = dataclasses.replace(row, layer_sparsity=allocated.layer_sparsity(
        {allocated.layer_name(i): pruned.kernels[i] for i in payload.layers}))
  if known is None:
    candidates.append((pruned, row.accuracy))
  return row, row.accuracy, pruned if payload.keep_pruned else None


def _nonzero_counts(network: Network) -> tuple[int, ...]:
  return tuple(_count_nonzero(a) for a in network.kernels + network.biases)


def _count_nonzero(array: np.ndarray) -> int:
  """`np.count_nonzero(array)`; on floats, comparing first is 3x quicker."""
  return int(np.count_nonzero(array != 0))


def _same_arrays(a: Network, b: Network) -> bool:
  return all(np.array_equal(x, y) for x, y in
             zip(a.kernels + a.biases, b.kernels + b.biases))


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
  if folder is None:
    graph, recorded = model_checks.import_model(config.model_file, test.images)
    other_data = given.check_made_on(recorded, config.model_file,
                                     config.allow_other_data)
  else:
    graph = folder_graph(folder, config.use_biases)
    test, train = (graph_input(split, graph.input_shape)
                   for split in (test, train))
  outputs = int(np.prod(graph.output_shape))
  data_source.fits(test, graph.input_shape, outputs, given.name)
  data_source.fits(train, graph.input_shape, outputs, given.name, 'train')
  names = graph_pruning.prunable(graph, config.prune_layers,
                                 config.prune_output_layer)
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
      config, lambda on_pruned: graph_sweep.sweep_graph(
          graph, config.methods, config.levels, names, test.images, test.labels,
          SweepRow, on_pruned, points=allocated.sweep_points(config),
          per_layer=config.allocation != allocated.UNIFORM, progress=progress,
          allow_sparse=config.sparse_kernels, executor=executor,
          prune=allocated.graph_pruner(config, graph, names, calibration_inputs)),
      save, {'pruned_layers': names,
             **({'weights_sha256': folder.sha256} if folder else {}),
             **given.record(other_data)})


def folder_graph(folder: weights.WeightFolder, use_biases: bool = True) -> Graph:
  """The graph of a weight folder's network; `use_biases=False` drops its biases."""
  graph = network_graph.to_graph(folder.network)
  return graph if use_biases else biases.drop_biases(graph)


def graph_input(split: datasets.Split | None,
                input_shape: Sequence[int]) -> datasets.Split | None:
  """`split` with each example flattened when the graph reads flat vectors of its size.

  A dense chain's folder reads (784,) vectors; MNIST's examples are
  (28, 28, 1) images of as many values.
  """
  if split is None or len(input_shape) != 1:
    return split
  shape = split.images.shape[1:]
  if tuple(shape) == tuple(input_shape) or int(np.prod(shape)) != input_shape[0]:
    return split
  return dataclasses.replace(
      split, images=split.images.reshape(len(split.images), input_shape[0]))


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
