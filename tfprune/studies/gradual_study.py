"""Gradual and iterative pruning of prebuilt weights at several targets.

For each procedure and target sparsity, `run` trains one model from the
starting weight folder (`gradual.train`), exports the result as an `.npy`
weight folder (the layout of `weights/`, so the sweep, metrics and benchmark
work on it) and as a sparse `.tflite` file, and writes, in `out_dir`:

  gradual_config.json        the config (resuming refuses a different one)
  runs/<procedure>-<granularity>-<k>/
      epochs.csv             per-epoch loss, accuracy, test accuracy, sparsity
      weights/               the pruned network as an .npy weight folder
      model.tflite           TFLite export with EXPERIMENTAL_SPARSITY
      result.json            the run's final numbers (written last: done)
      tensorboard/           TF-MOT PruningSummaries (weight level)
  results.csv                one row per run (`RESULT_COLUMNS`)
  oneshot.csv                one-shot sweep of the starting weights
  accuracy_vs_sparsity.png   gradual and iterative against one-shot

Target sparsities are percentages in [0, 100) of each pruned layer's weights
(or units), as in the one-shot sweep. Re-running the same command resumes:
finished runs are skipped and an interrupted one continues from its last
finished epoch.

The MLP weight folders train as before (`gradual.train`, Dense layers). A CNN
weight folder (LeNet-5, the Fashion CNN, ResNet-18) and a user's Keras model
(`model_file`, with `data` or a registry `dataset`) train as a graph
(`graph_gradual.train`): every Dense, Conv2D and DepthwiseConv2D kernel but
the output layer's is pruned, units remove coupled channels. Their run
folders hold, instead of (or besides) `weights/`:

      graph.npz              the pruned network as a tfprune graph file
      model.keras            it as a plain Keras model of the starting
                             model's framework (tf_keras or Keras 3)
      compact.npz, compact.keras   units only: the removed channels gone
"""

import csv
import dataclasses
import functools
import io
import json
import pathlib
import shutil
import tempfile
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from tfprune import __version__
from tfprune import atomic
from tfprune.criteria import graph_pruning
from tfprune.criteria import pruning
from tfprune.data import datasets
from tfprune.data import user_data
from tfprune.drivers import graph_sweep
from tfprune.drivers import pruned_keras
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import io as graph_io
from tfprune.graph import weights
from tfprune.graph.ir import Graph
from tfprune.keras_compat import keras
from tfprune.keras_io import build
from tfprune.keras_io import importer
from tfprune.keras_io import models
from tfprune.reports import plots
from tfprune.runtime import evaluate
from tfprune.runtime import metrics
from tfprune.training import distribute
from tfprune.training import epoch_log
from tfprune.training import gradual
from tfprune.training import graph_gradual
from tfprune.training import tflite

CONFIG_NAME = 'gradual_config.json'
RESULTS_NAME = 'results.csv'
ONESHOT_NAME = 'oneshot.csv'
PLOT_NAME = 'accuracy_vs_sparsity.png'
RESULT_COLUMNS = ('procedure', 'granularity', 'target', 'sparsity', 'accuracy',
                  'keras_accuracy', 'tflite_accuracy', 'nonzero_params',
                  'tflite_bytes', 'tflite_dense_bytes', 'epochs', 'seconds',
                  'layer_sparsity')
ONESHOT_LEVELS = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90)
_NOT_COMPARED = ('out_dir', 'data_dir')
# Left out of gradual_config.json at their defaults, so the MLP study's
# committed config is unchanged.
_GRAPH_FIELDS = ('model_file', 'data')
GRAPH_NAME = 'graph.npz'
KERAS_NAME = 'model.keras'
COMPACT_NAME = 'compact.npz'
COMPACT_KERAS_NAME = 'compact.keras'


@dataclasses.dataclass(frozen=True)
class GradualConfig:
  """How a gradual-pruning study was made; saved as `gradual_config.json`.

  Attributes:
    out_dir: the output folder (see the module docstring).
    weights_dir: the starting `.npy` weight folder (None with `model_file`).
    model: a key of `models.MODELS` matching the weights.
    dataset: a key of `datasets.DATASETS` (unused with `data`).
    data_dir: local data folder (None: `$TFPRUNE_DATA_DIR`, then tfds).
    procedures: some of `gradual.PROCEDURES`.
    granularity: 'weight' or 'unit'.
    schedule: gradual schedule, 'polynomial' or 'constant'.
    targets: target sparsities in percent, each in [0, 100).
    epochs: gradual: training epochs.
    begin_step: gradual: first pruning step.
    end_step: gradual: last pruning step (None: derived from the data size).
    frequency: gradual: steps between mask updates (None: derived).
    cycles: iterative: prune-finetune cycles K.
    cycle_epochs: iterative: fine-tuning epochs per cycle.
    batch_size: global batch size.
    learning_rate: initial Adam learning rate (cosine decay over each run).
    prune_output_layer: prune the output layer too.
    strategy: a key of `distribute.STRATEGIES`.
    seed: seeds Python, NumPy and TensorFlow before each run.
    train_limit: train on the first `train_limit` examples only (None: all).
    export_tflite: also write and measure the `.tflite` export.
    model_file: a user's Keras model (`.keras`, `.h5`, SavedModel) to start
      from instead of `weights_dir` (imported and verified by `from_keras`).
    data: a user's `.npz` with x_train, y_train, x_test, y_test instead of
      the registry `dataset`.
  """
  out_dir: str
  weights_dir: str | None
  model: str = 'mlp'
  dataset: str = 'mnist'
  data_dir: str | None = None
  procedures: tuple[str, ...] = gradual.PROCEDURES
  granularity: str = 'weight'
  schedule: str = 'polynomial'
  targets: tuple[float, ...] = (90.0, 95.0, 97.0, 99.0)
  epochs: int = 8
  begin_step: int = 0
  end_step: int | None = None
  frequency: int | None = None
  cycles: int = 3
  cycle_epochs: int = 3
  batch_size: int = 128
  learning_rate: float = 1e-4
  prune_output_layer: bool = False
  strategy: str = 'default'
  seed: int = 0
  train_limit: int | None = None
  export_tflite: bool = True
  model_file: str | None = None
  data: str | None = None

  def __post_init__(self):
    if (self.weights_dir is None) == (self.model_file is None):
      raise TfpruneError('give either --weights_dir or --model_file, not both')
    models.get(self.model)
    datasets.get(self.dataset)
    if self.model_file is None and self.data is None:
      models.check_fits(self.model, datasets.get(self.dataset).image_shape,
                        self.dataset)
    distribute.get(self.strategy)
    if not self.procedures:
      raise TfpruneError('no procedure given: pass --procedures with some of '
                         f'{",".join(gradual.PROCEDURES)}')
    if not self.targets:
      raise TfpruneError('no target sparsity given: pass --targets such as 90,95')
    object.__setattr__(self, 'procedures', tuple(self.procedures))
    object.__setattr__(self, 'targets',
                       tuple(pruning.check_level(
                           t, 'target sparsity', include_high=False,
                           hint=': pass e.g. --targets=90,95') for t in self.targets))
    if self.train_limit is not None and self.train_limit < 1:
      raise TfpruneError(f'train_limit must be at least 1, got {self.train_limit}')
    for run in self.runs():  # validates procedure, epochs, cycles, ...
      del run

  def runs(self) -> list[gradual.PruningRun]:
    """One `PruningRun` per procedure and target, in that order."""
    return [gradual.PruningRun(
        procedure=p, granularity=self.granularity, target=t / 100,
        schedule=self.schedule, epochs=self.epochs, begin_step=self.begin_step,
        end_step=self.end_step, frequency=self.frequency, cycles=self.cycles,
        cycle_epochs=self.cycle_epochs, batch_size=self.batch_size,
        learning_rate=self.learning_rate,
        prune_output_layer=self.prune_output_layer)
            for p in self.procedures for t in self.targets]


def run_name(run: gradual.PruningRun) -> str:
  """Folder name of a run, e.g. 'gradual-weight-95'."""
  return f'{run.procedure}-{run.granularity}-{100 * run.target:g}'


def config_record(config: GradualConfig) -> dict:
  """The config as saved in `gradual_config.json`."""
  record = dataclasses.asdict(config)
  for name in _GRAPH_FIELDS:
    if record[name] is None:
      record.pop(name)
  return record


def check_resumable(out_dir: pathlib.Path, config: GradualConfig) -> None:
  """Refuses to resume into `out_dir` if it was made by another config.

  Raises:
    TfpruneError: naming the first setting that differs.
  """
  path = out_dir / CONFIG_NAME
  if not path.exists():
    return
  try:
    saved = json.loads(path.read_text())['config']
  except (ValueError, KeyError, TypeError):
    raise TfpruneError(f'{path} is not a tfprune gradual config: choose another '
                       '--out_dir') from None
  current = json.loads(json.dumps(config_record(config)))
  for key in sorted(set(saved) | set(current)):
    if key in _NOT_COMPARED:
      continue
    if saved.get(key) != current.get(key):
      raise TfpruneError(
          f'{out_dir} was made with {key}={saved.get(key)!r} but this run has '
          f'{key}={current.get(key)!r}: pass the same flags to resume, or '
          'choose another --out_dir')


@dataclasses.dataclass(frozen=True)
class RunResult:
  """Final numbers of one run (a row of `results.csv`)."""
  procedure: str
  granularity: str
  target: float
  sparsity: float
  accuracy: float
  keras_accuracy: float
  tflite_accuracy: float | None
  nonzero_params: int
  tflite_bytes: int | None
  tflite_dense_bytes: int | None
  epochs: int
  seconds: float
  layer_sparsity: str


@dataclasses.dataclass(frozen=True)
class Study:
  """What `run` returns.

  Attributes:
    results: one per procedure and target, in `config.runs()` order.
    oneshot: the one-shot sweep of the starting weights.
  """
  results: list[RunResult]
  oneshot: list[sweep.SweepRow]


def run(config: GradualConfig, command: str | None = None,
        verbose: int = 2) -> Study:
  """Runs (or resumes) the study and writes its outputs; see the module doc.

  Args:
    config: the study.
    command: the command line, recorded in each exported weight folder.
    verbose: Keras progress output.

  Returns:
    The results and the one-shot comparison.

  Raises:
    TfpruneError: bad input (checked before anything is written), or a run
      missed its target sparsity.
  """
  # First: MultiWorkerMirroredStrategy must exist before any TensorFlow op.
  strategy = distribute.make(config.strategy)
  spec = datasets.get(config.dataset)
  start = None if config.model_file else weights.load(config.weights_dir)
  if start is None or start.network.specs is not None:
    return _run_graph(config, strategy, start, command, verbose)
  model_fn = models.get(config.model)
  # Refuses weights of another architecture or class count, naming the layer.
  models.load_network(model_fn(spec.image_shape, spec.num_classes), start.network)
  train_split = datasets.load(config.dataset, 'train', config.data_dir,
                              limit=config.train_limit)
  test_split = datasets.load(config.dataset, 'test', config.data_dir)
  for pruning_run in config.runs():  # schedule errors before any output
    pruning_run.pruning_schedule(len(train_split))
  chief = distribute.is_chief(strategy)
  out_dir = pathlib.Path(config.out_dir) if chief else pathlib.Path(
      tempfile.mkdtemp(prefix='tfprune-worker-'))
  check_resumable(out_dir, config)
  atomic.ensure_dir(out_dir)
  atomic.write_text(out_dir / CONFIG_NAME, json.dumps(
      {'config': config_record(config), 'weights_sha256': start.sha256,
       'replicas': strategy.num_replicas_in_sync,
       'tfprune_version': __version__}, indent=2) + '\n')

  def build():
    return models.load_network(model_fn(spec.image_shape, spec.num_classes),
                               start.network)

  @functools.cache
  def dense_tflite() -> int:
    return len(tflite.convert(build(), sparse=False))
  context = _Context(config, build, train_split, test_split, strategy, out_dir,
                     dense_tflite, start, command, verbose)
  results = [_run_one(context, r) for r in config.runs()]
  atomic.write_text(out_dir / RESULTS_NAME, results_csv(results))
  oneshot = oneshot_rows(config, start.network, test_split)
  atomic.write_text(out_dir / ONESHOT_NAME, sweep.to_csv(oneshot))
  plots.plot_gradual(out_dir / RESULTS_NAME, out_dir / ONESHOT_NAME,
                     out_dir / PLOT_NAME)
  if not chief:
    shutil.rmtree(out_dir, ignore_errors=True)
  return Study(results, oneshot)


@dataclasses.dataclass(frozen=True)
class _Context:
  """What every run of a study shares."""
  config: GradualConfig
  build: Callable[[], keras.Model]
  train_split: datasets.Split
  test_split: datasets.Split
  strategy: tf.distribute.Strategy
  out_dir: pathlib.Path
  dense_tflite: Callable[[], int]
  start: weights.WeightFolder
  command: str | None
  verbose: int


def _run_one(context: _Context, pruning_run: gradual.PruningRun) -> RunResult:
  """Trains, exports and measures one run, or reads it back if it finished."""
  config, test_split, start = context.config, context.test_split, context.start
  run_dir = context.out_dir / 'runs' / run_name(pruning_run)
  result_path = run_dir / 'result.json'
  if result_path.exists():
    return RunResult(**json.loads(result_path.read_text()))
  atomic.ensure_dir(run_dir)
  keras.utils.set_random_seed(config.seed)
  trained = gradual.train(pruning_run, context.build, context.train_split,
                          test_split, context.strategy, run_dir, context.verbose)
  network = models.to_network(trained.model)
  accuracy = evaluate.accuracy(network, test_split.images, test_split.labels)
  keras_accuracy = trained.keras_accuracy
  seconds = epoch_log.total_seconds(run_dir / 'epochs.csv')
  metadata = {
      'model': config.model, 'dataset': config.dataset,
      'pruning': dataclasses.asdict(pruning_run),
      'start_weights': config.weights_dir, 'start_sha256': start.sha256,
      'test_accuracy': round(float(accuracy), 6),
      'keras_test_accuracy': round(float(keras_accuracy), 6),
      'train_seconds': round(seconds, 1), 'tfprune_version': __version__,
      'command': context.command,
  }
  weights.save(run_dir / 'weights', network, metadata, overwrite=True)
  tflite_bytes = tflite_accuracy = None
  if config.export_tflite:
    tflite_bytes, tflite_accuracy = _tflite(trained.model, run_dir, test_split)
  counts = metrics.total(metrics.layer_counts(network, use_biases=True))
  layers = trained.layers
  result = RunResult(
      procedure=pruning_run.procedure, granularity=pruning_run.granularity,
      target=100 * pruning_run.target,
      sparsity=sum(l.zeros for l in layers) / sum(l.size for l in layers),
      accuracy=float(accuracy), keras_accuracy=float(keras_accuracy),
      tflite_accuracy=tflite_accuracy, nonzero_params=counts.nonzero_params,
      tflite_bytes=tflite_bytes,
      tflite_dense_bytes=context.dense_tflite() if config.export_tflite else None,
      epochs=pruning_run.total_epochs, seconds=round(seconds, 1),
      layer_sparsity='/'.join(f'{100 * l.sparsity:.2f}' for l in layers))
  atomic.write_text(result_path, json.dumps(dataclasses.asdict(result),
                                            indent=2) + '\n')
  return result


def _tflite(model: keras.Model, run_dir: pathlib.Path,
            test_split: datasets.Split) -> tuple[int, float]:
  """Writes `model.tflite`; returns its bytes and its test accuracy."""
  size = tflite.save(model, run_dir / 'model.tflite')
  outputs = tflite.predict((run_dir / 'model.tflite').read_bytes(),
                           test_split.images)
  return size, float((outputs.argmax(1) == test_split.labels).mean())


def graph_data(config: GradualConfig) -> tuple[datasets.Split, datasets.Split]:
  """The training and test splits of `config.data` or `config.dataset`.

  Raises:
    TfpruneError: the user's file has no training split.
  """
  if config.data is None:
    return (datasets.load(config.dataset, 'train', config.data_dir,
                          limit=config.train_limit),
            datasets.load(config.dataset, 'test', config.data_dir))
  test, train = user_data.load(config.data)
  if train is None:
    raise TfpruneError(f'{config.data} has no x_train/y_train to fine-tune on: '
                       'add them (np.savez(path, x_train=..., y_train=..., '
                       'x_test=..., y_test=...))')
  if config.train_limit is not None:
    train = datasets.Split(train.images[:config.train_limit],
                           train.labels[:config.train_limit])
  return train, test


def start_graph(config: GradualConfig, start: weights.WeightFolder | None,
                test_split: datasets.Split) -> Graph:
  """The starting network as a verified graph: the user's model, or the
  registry model (dropout and all) with the folder's weights."""
  if start is None:
    return importer.from_keras(config.model_file, data=test_split.images[:16])
  spec = datasets.get(config.dataset)
  model = models.load_network(
      models.get(config.model)(spec.image_shape, spec.num_classes), start.network)
  return importer.from_keras(model, data=test_split.images[:16])


@dataclasses.dataclass(frozen=True)
class _GraphContext:
  """What every run of a graph study shares."""
  config: GradualConfig
  graph: Graph
  names: list[str]
  train_split: datasets.Split
  test_split: datasets.Split
  strategy: tf.distribute.Strategy
  out_dir: pathlib.Path
  dense_tflite: Callable[[], int]
  start: weights.WeightFolder | None
  command: str | None
  verbose: int


def _run_graph(config: GradualConfig, strategy: tf.distribute.Strategy,
               start: weights.WeightFolder | None, command: str | None,
               verbose: int) -> Study:
  """`run` for a CNN weight folder or a user's model (see the module doc)."""
  train_split, test_split = graph_data(config)
  graph = start_graph(config, start, test_split)
  source = config.data or config.dataset
  outputs = int(np.prod(graph.output_shape))
  user_data.check_fits(test_split, graph.input_shape, outputs, source)
  user_data.check_fits(train_split, graph.input_shape, outputs, source)
  names = graph_pruning.prunable(graph, None, config.prune_output_layer)
  for pruning_run in config.runs():  # schedule errors before any output
    pruning_run.pruning_schedule(len(train_split))
  chief = distribute.is_chief(strategy)
  out_dir = pathlib.Path(config.out_dir) if chief else pathlib.Path(
      tempfile.mkdtemp(prefix='tfprune-worker-'))
  check_resumable(out_dir, config)
  atomic.ensure_dir(out_dir)
  atomic.write_text(out_dir / CONFIG_NAME, json.dumps(
      {'config': config_record(config), 'pruned_layers': names,
       **({'weights_sha256': start.sha256} if start else {}),
       'replicas': strategy.num_replicas_in_sync,
       'tfprune_version': __version__}, indent=2) + '\n')

  @functools.cache
  def dense_tflite() -> int:
    return len(tflite.convert(build_keras(graph), sparse=False))
  context = _GraphContext(config, graph, names, train_split, test_split,
                          strategy, out_dir, dense_tflite, start, command, verbose)
  results = [_run_one_graph(context, r) for r in config.runs()]
  atomic.write_text(out_dir / RESULTS_NAME, results_csv(results))
  levels = tuple(sorted(set(ONESHOT_LEVELS) | set(config.targets)))
  oneshot = graph_sweep.sweep_graph(graph, (config.granularity,), levels, names,
                                    test_split.images, test_split.labels,
                                    sweep.SweepRow)
  atomic.write_text(out_dir / ONESHOT_NAME, sweep.to_csv(oneshot))
  plots.plot_gradual(out_dir / RESULTS_NAME, out_dir / ONESHOT_NAME,
                     out_dir / PLOT_NAME)
  if not chief:
    shutil.rmtree(out_dir, ignore_errors=True)
  return Study(results, oneshot)


def build_keras(graph: Graph) -> keras.Model:
  """The graph's tf_keras twin (what TF-MOT wraps and TFLite converts)."""
  return build.to_keras(graph, 'tf_keras')


def _run_one_graph(context: _GraphContext,
                   pruning_run: gradual.PruningRun) -> RunResult:
  """`_run_one` for a graph: exports graph.npz and model.keras (and compact)."""
  config, test_split = context.config, context.test_split
  run_dir = context.out_dir / 'runs' / run_name(pruning_run)
  result_path = run_dir / 'result.json'
  if result_path.exists():
    return RunResult(**json.loads(result_path.read_text()))
  atomic.ensure_dir(run_dir)
  keras.utils.set_random_seed(config.seed)
  trained = graph_gradual.train(pruning_run, context.graph, context.names,
                                context.train_split, test_split,
                                context.strategy, run_dir, context.verbose)
  accuracy = evaluator.Evaluator(trained.graph).accuracy(test_split.images,
                                                         test_split.labels)
  seconds = epoch_log.total_seconds(run_dir / 'epochs.csv')
  metadata = {
      'model': config.model_file or config.model,
      'dataset': config.data or config.dataset,
      'pruning': dataclasses.asdict(pruning_run),
      'test_accuracy': round(float(accuracy), 6),
      'keras_test_accuracy': round(float(trained.keras_accuracy), 6),
      'train_seconds': round(seconds, 1), 'tfprune_version': __version__,
      'command': context.command,
  }
  graph = dataclasses.replace(trained.graph, metadata={
      **trained.graph.metadata, 'pruning': metadata})
  graph_io.save(graph, run_dir / GRAPH_NAME)
  pruned_keras.save(graph, run_dir / KERAS_NAME)
  if trained.compacted is not None:
    compacted = dataclasses.replace(trained.compacted, metadata=graph.metadata)
    graph_io.save(compacted, run_dir / COMPACT_NAME)
    pruned_keras.save(compacted, run_dir / COMPACT_KERAS_NAME)
  if context.start is not None:  # a weight folder, for the sweep and benchmark
    weights.save(run_dir / 'weights', models.to_network(trained.model),
                 {**metadata, 'model': config.model,
                  'start_weights': config.weights_dir,
                  'start_sha256': context.start.sha256}, overwrite=True)
  tflite_bytes = tflite_accuracy = None
  if config.export_tflite:
    tflite_bytes, tflite_accuracy = _tflite(trained.model, run_dir, test_split)
  layers = trained.layers
  result = RunResult(
      procedure=pruning_run.procedure, granularity=pruning_run.granularity,
      target=100 * pruning_run.target,
      sparsity=sum(l.zeros for l in layers) / sum(l.size for l in layers),
      accuracy=float(accuracy), keras_accuracy=float(trained.keras_accuracy),
      tflite_accuracy=tflite_accuracy,
      nonzero_params=graph_sweep.nonzero_params(graph),
      tflite_bytes=tflite_bytes,
      tflite_dense_bytes=context.dense_tflite() if config.export_tflite else None,
      epochs=pruning_run.total_epochs, seconds=round(seconds, 1),
      layer_sparsity='/'.join(f'{100 * l.sparsity:.2f}' for l in layers))
  atomic.write_text(result_path, json.dumps(dataclasses.asdict(result),
                                            indent=2) + '\n')
  return result


def oneshot_rows(config: GradualConfig, network, test_split: datasets.Split
                 ) -> list[sweep.SweepRow]:
  """One-shot pruning of the starting weights at the study's and more levels."""
  levels = tuple(sorted(set(ONESHOT_LEVELS) | set(config.targets)))
  sweep_config = sweep.SweepConfig(
      weights_dir=config.weights_dir, out_dir=config.out_dir,
      dataset=config.dataset, methods=(config.granularity,), levels=levels,
      prune_output_layer=config.prune_output_layer)
  return sweep.sweep(sweep_config, network, test_split)


def results_csv(results: Sequence[RunResult]) -> str:
  """The results as CSV text with a header of `RESULT_COLUMNS`."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  writer.writerow(RESULT_COLUMNS)
  for r in results:
    writer.writerow([
        r.procedure, r.granularity, f'{r.target:g}', f'{r.sparsity:.6f}',
        f'{r.accuracy:.4f}', f'{r.keras_accuracy:.4f}',
        '' if r.tflite_accuracy is None else f'{r.tflite_accuracy:.4f}',
        r.nonzero_params, '' if r.tflite_bytes is None else r.tflite_bytes,
        '' if r.tflite_dense_bytes is None else r.tflite_dense_bytes,
        r.epochs, f'{r.seconds:.1f}', r.layer_sparsity])
  return out.getvalue()


def format_table(study: Study) -> str:
  """Accuracy per target: one-shot next to each procedure, for the terminal."""
  results = study.results
  by_k = {row.k: row.accuracy for row in study.oneshot}
  procedures = list(dict.fromkeys(r.procedure for r in results))
  header = f'{"target":>7} {"one-shot":>9} ' + ' '.join(
      f'{p:>10}' for p in procedures) + '  tflite/dense'
  lines = [header]
  for target in dict.fromkeys(r.target for r in results):
    cells = {r.procedure: r for r in results if r.target == target}
    sizes = [f'{c.tflite_bytes / c.tflite_dense_bytes:.1%}'
             for c in cells.values() if c.tflite_bytes]
    lines.append(
        f'{target:>6g}% {100 * by_k.get(target, float("nan")):>8.2f}% ' +
        ' '.join(f'{100 * cells[p].accuracy:>9.2f}%' if p in cells else
                 f'{"":>10}' for p in procedures) + '  ' + ' '.join(sizes))
  return '\n'.join(lines)
