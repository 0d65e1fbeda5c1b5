"""The gradual study on any graph: a user's model or a registry CNN, fine-tuned through TF-MOT or Keras 3.

The engine is the config's, else chosen by the starting model's framework
(`engine`): 'tfmot' fine-tunes the graph's tf_keras twin, TF-MOT wrapping
its Dense and Conv2D layers and `graph_gradual` masking the depthwise
kernels and whole channel groups; 'keras' fine-tunes it as a Keras 3 model
with `tfprune.keras.Pruning` (`tfprune.keras.study`). Either way the result
is imported back, verified, measured per layer and handed back in the
user's framework.
"""

import dataclasses
import functools
import hashlib
import json
import pathlib
import shutil
import tempfile
from typing import Callable

import numpy as np
import tensorflow as tf

from tfprune import __version__
from tfprune import atomic
from tfprune import ziptags
from tfprune.criteria import graph_pruning
from tfprune.data import datasets
from tfprune.data import provenance
from tfprune.data import source as data_source
from tfprune.drivers import graph_sweep
from tfprune.drivers import model_checks
from tfprune.drivers import pruned_keras
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import io as graph_io
from tfprune.graph import weights
from tfprune.graph.ir import Graph
from tfprune.keras_compat import keras
from tfprune.keras import study as keras_study
from tfprune.keras_io import build
from tfprune.keras_io import importer
from tfprune.keras_io import models
from tfprune.reports import plots
from tfprune.training import distribute
from tfprune.training import gradual
from tfprune.training import graph_gradual
from tfprune.training import resumable
from tfprune.training import tflite

from tfprune.drivers.gradual_config import (
    COMPACT_KERAS_NAME, COMPACT_NAME, CONFIG_NAME, GRAPH_NAME, KERAS_NAME,
    ONESHOT_LEVELS, ONESHOT_NAME, PLOT_NAME, RESULT_NAME, RESULTS_NAME,
    TIMING_NAME, GradualConfig, RunResult, Study, check_resumable, config_record,
    read_result, results_csv, run_name, timing_json, write_result)


def tflite_result(model: keras.Model, run_dir: pathlib.Path,
            test_split: datasets.Split) -> tuple[int, float]:
  """Writes `model.tflite`; returns its bytes and its test accuracy."""
  size = tflite.save(model, run_dir / 'model.tflite')
  outputs = tflite.predict((run_dir / 'model.tflite').read_bytes(),
                           test_split.images)
  return size, float((outputs.argmax(1) == test_split.labels).mean())


def study_data(config: GradualConfig
               ) -> tuple[datasets.Split, datasets.Split, data_source.Given]:
  """The training and test splits of `config.data` or `config.dataset`, checked
  at load (`data.source`), and the data's description for provenance.

  Raises:
    TfpruneError: the data fails its checks or the user's file has no
      training split.
  """
  given = data_source.load(config.dataset, config.data_dir, config.data)
  if config.data is None:
    return given.train_split(config.train_limit), given.test, given
  test, train = given.test, given.train
  if train is None:
    raise TfpruneError(f'{config.data} has no x_train/y_train to fine-tune on: '
                       'add them (np.savez(path, x_train=..., y_train=..., '
                       'x_test=..., y_test=...))')
  if config.train_limit is not None:
    train = datasets.Split(train.images[:config.train_limit],
                           train.labels[:config.train_limit])
  return train, test, given


def check_inputs(config: GradualConfig, given: data_source.Given,
                 start: weights.WeightFolder | None) -> dict:
  """Checks the data against what the start network records; returns what
  `gradual_config.json` records of the inputs (compared on resume).

  Raises:
    TfpruneError: the network was made on other data (unless
      `allow_other_data`).
  """
  if start is not None:
    if config.data is None and not config.allow_other_data:
      weights.check_made_for(start, config.weights_dir, config.dataset)
    recorded, source = provenance.from_manifest(start.manifest), config.weights_dir
  else:
    recorded, source = ziptags.read(config.model_file), config.model_file
  other = given.check_made_on(recorded, source, config.allow_other_data)
  inputs = {'weights_sha256': start.sha256} if start else {}
  if start is None and pathlib.Path(config.model_file).is_file():
    inputs['model_sha256'] = hashlib.sha256(
        pathlib.Path(config.model_file).read_bytes()).hexdigest()
  if config.data is not None:
    inputs['data'] = given.provenance()
  if other:
    inputs['other_data_allowed'] = True
  return inputs


def start_graph(config: GradualConfig, start: weights.WeightFolder | None,
                test_split: datasets.Split) -> Graph:
  """The starting network as a verified graph: the user's model, or the
  registry model (dropout and all) with the folder's weights."""
  if start is None:
    return model_checks.import_model(config.model_file, test_split.images)[0]
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
  engine: str
  train_split: datasets.Split
  test_split: datasets.Split
  strategy: tf.distribute.Strategy
  out_dir: pathlib.Path
  dense_tflite: Callable[[], int]
  start: weights.WeightFolder | None
  command: str | None
  verbose: int
  made_on: dict


def run_graph(config: GradualConfig, strategy: tf.distribute.Strategy,
               start: weights.WeightFolder | None, command: str | None,
               verbose: int) -> Study:
  """`run` for a CNN weight folder or a user's model (see the module doc)."""
  train_split, test_split, given = study_data(config)
  inputs = check_inputs(config, given, start)
  graph = start_graph(config, start, test_split)
  outputs = int(np.prod(graph.output_shape))
  data_source.fits(test_split, graph.input_shape, outputs, given.name)
  data_source.fits(train_split, graph.input_shape, outputs, given.name, 'train')
  names = graph_pruning.prunable(graph, None, config.prune_output_layer)
  chosen = engine(config, graph)
  for pruning_run in config.runs():  # schedule errors before any output
    pruning_run.pruning_schedule(len(train_split))
  chief = distribute.is_chief(strategy)
  out_dir = pathlib.Path(config.out_dir) if chief else pathlib.Path(
      tempfile.mkdtemp(prefix='tfprune-worker-'))
  check_resumable(out_dir, config, inputs)
  atomic.ensure_dir(out_dir)
  atomic.write_text(out_dir / CONFIG_NAME, json.dumps(
      {'config': config_record(config), 'pruned_layers': names,
       **({'engine': chosen} if chosen == 'keras' else {}), **inputs,
       'replicas': strategy.num_replicas_in_sync,
       'tfprune_version': __version__}, indent=2) + '\n')

  @functools.cache
  def dense_tflite() -> int:
    return len(tflite.convert(build_keras(graph), sparse=False))
  context = _GraphContext(config, graph, names, chosen, train_split, test_split,
                          strategy, out_dir, dense_tflite, start, command,
                          verbose, given.provenance(graph.input_shape))
  results = [_run_one_graph(context, r) for r in config.runs()]
  atomic.write_text(out_dir / RESULTS_NAME, results_csv(results))
  atomic.write_text(out_dir / TIMING_NAME, timing_json(config.runs(), out_dir))
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


def npz_provenance(config: GradualConfig, made_on: dict) -> dict:
  """The provenance entry a weight folder's manifest gets when the data was a
  user's `.npz` (a registry dataset is its `dataset` entry already, so those
  manifests keep their bytes)."""
  return {provenance.KEY: made_on} if config.data is not None else {}


def engine(config: GradualConfig, graph: Graph) -> str:
  """The config's engine, else 'keras' for a Keras 3 model and 'tfmot' for the others."""
  if config.engine is not None:
    return config.engine
  return 'keras' if graph.metadata.get('framework') == 'keras3' else 'tfmot'


def build_keras(graph: Graph) -> keras.Model:
  """The graph's tf_keras twin (what TF-MOT wraps and TFLite converts)."""
  return build.to_keras(graph, 'tf_keras')


def _run_one_graph(context: _GraphContext,
                   pruning_run: gradual.PruningRun) -> RunResult:
  """`_run_one` for a graph: exports graph.npz and model.keras (and compact)."""
  config, test_split = context.config, context.test_split
  run_dir = context.out_dir / 'runs' / run_name(pruning_run)
  # The chief's run folder: every worker of a multi-worker run reads from it
  # whether the run finished and where to resume (a shared file system).
  chief_dir = pathlib.Path(config.out_dir) / 'runs' / run_name(pruning_run)
  if (chief_dir / RESULT_NAME).exists():
    return read_result(chief_dir / RESULT_NAME)
  atomic.ensure_dir(run_dir)
  keras.utils.set_random_seed(config.seed)
  if context.engine == 'keras':  # one replica only: its own folder
    trained = keras_study.train(
        pruning_run, context.graph, context.names, context.train_split,
        test_split, context.strategy, run_dir, context.verbose)
  else:
    trained = graph_gradual.train(
        pruning_run, context.graph, context.names, context.train_split,
        test_split, context.strategy, run_dir, context.verbose,
        backup_dir=chief_dir / resumable.BACKUP_NAME)
  accuracy = evaluator.Evaluator(trained.graph).accuracy(test_split.images,
                                                         test_split.labels)
  metadata = {
      'model': config.model_file or config.model,
      'dataset': config.data or config.dataset,
      'pruning': dataclasses.asdict(pruning_run),
      'test_accuracy': round(float(accuracy), 6),
      'keras_test_accuracy': round(float(trained.keras_accuracy), 6),
      'tfprune_version': __version__,
      'command': context.command,
  }
  graph = dataclasses.replace(trained.graph, metadata={
      **trained.graph.metadata, 'pruning': metadata})
  graph_io.save(graph, run_dir / GRAPH_NAME, context.made_on)
  pruned_keras.save(graph, run_dir / KERAS_NAME, context.made_on)
  if trained.compacted is not None:
    compacted = dataclasses.replace(trained.compacted, metadata=graph.metadata)
    graph_io.save(compacted, run_dir / COMPACT_NAME, context.made_on)
    pruned_keras.save(compacted, run_dir / COMPACT_KERAS_NAME, context.made_on)
  if context.start is not None:  # a weight folder, for the sweep and benchmark
    weights.save(run_dir / 'weights', models.to_network(trained.model),
                 {**metadata, 'model': config.model,
                  'start_weights': config.weights_dir,
                  'start_sha256': context.start.sha256,
                  **npz_provenance(config, context.made_on)}, overwrite=True)
  tflite_bytes = tflite_accuracy = None
  if config.export_tflite:
    tflite_bytes, tflite_accuracy = tflite_result(trained.model, run_dir, test_split)
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
      epochs=pruning_run.total_epochs,
      layer_sparsity='/'.join(f'{100 * l.sparsity:.2f}' for l in layers))
  write_result(run_dir / RESULT_NAME, result)
  return result
