"""Gradual and iterative pruning of prebuilt weights at several targets.

For each procedure and target sparsity, `run` trains one model from the
starting weight folder (`gradual.train`), exports the result as an `.npy`
weight folder (the layout of `weights/`, so the sweep, metrics and benchmark
work on it) and as a sparse `.tflite` file, and writes, in `out_dir`:

  gradual_config.json        the config (resuming refuses a different one)
  runs/<procedure>-<granularity>-<k>/
      epochs.csv             per-epoch loss, accuracy, test accuracy, sparsity
      timing.json            per-epoch seconds (kept out of every result file)
      weights/               the pruned network as an .npy weight folder
      model.tflite           TFLite export with EXPERIMENTAL_SPARSITY
      result.json            the run's final numbers (written last: done)
      tensorboard/           TF-MOT PruningSummaries (weight level)
  results.csv                one row per run (`RESULT_COLUMNS`)
  timing.json                each run's training seconds
  oneshot.csv                one-shot sweep of the starting weights
  accuracy_vs_sparsity.png   gradual and iterative against one-shot

Target sparsities are percentages in [0, 100) of each pruned layer's weights
(or units), as in the one-shot sweep. Re-running the same command resumes:
finished runs are skipped and an interrupted one continues from its last
finished epoch, ending with the same weights and logs as an uninterrupted run
(`training.resumable`). No result file holds seconds, so results are the same
bytes on every run of the same command.

The MLP weight folders train as before (`gradual.train`, Dense layers), unless
`engine` is 'keras': then, as a Keras 3 model's, their graph trains under
`tfprune.keras.Pruning` (`tfprune.keras.study.train`). A CNN
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

import dataclasses
import functools
import json
import pathlib
import shutil
import tempfile
from typing import Callable

import tensorflow as tf

from tfprune import __version__
from tfprune import atomic
from tfprune.data import datasets
from tfprune.data import source as data_source
from tfprune.drivers import sweep
from tfprune.graph import network_graph
from tfprune.graph import weights
from tfprune.keras_compat import keras
from tfprune.keras_io import models
from tfprune.reports import plots
from tfprune.runtime import accuracy as accuracy_lib
from tfprune.runtime import metrics
from tfprune.training import distribute
from tfprune.training import gradual
from tfprune.training import resumable
from tfprune.training import tflite

from tfprune.drivers import gradual_graph
# The study's config, names and rows, used by callers as gradual_study.X.
from tfprune.drivers.gradual_config import (  # pylint: disable=unused-import
    COMPACT_KERAS_NAME, COMPACT_NAME, CONFIG_NAME, ENGINES, GRAPH_NAME, KERAS_NAME,
    ONESHOT_LEVELS, ONESHOT_NAME, PLOT_NAME, RESULT_COLUMNS, RESULTS_NAME,
    RESULT_NAME, TIMING_NAME, GradualConfig, RunResult, Study, check_resumable,
    config_record, read_result, results_csv, run_name, timing_json, write_result)
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
  if start is None or start.network.specs is not None or config.engine == 'keras':
    return gradual_graph.run_graph(config, strategy, start, command, verbose)
  model_fn = models.get(config.model)
  # Refuses weights of another architecture or class count, naming the layer.
  models.load_network(model_fn(spec.image_shape, spec.num_classes), start.network)
  train_split, test_split, given = gradual_graph.study_data(config)
  inputs = gradual_graph.check_inputs(config, given, start)
  train_split, test_split = (
      _as_model_input(split, start.network, spec, given.name, which)
      for split, which in ((train_split, 'train'), (test_split, 'test')))
  for pruning_run in config.runs():  # schedule errors before any output
    pruning_run.pruning_schedule(len(train_split))
  chief = distribute.is_chief(strategy)
  out_dir = pathlib.Path(config.out_dir) if chief else pathlib.Path(
      tempfile.mkdtemp(prefix='tfprune-worker-'))
  check_resumable(out_dir, config, inputs)
  atomic.ensure_dir(out_dir)
  atomic.write_text(out_dir / CONFIG_NAME, json.dumps(
      {'config': config_record(config), **inputs,
       'replicas': strategy.num_replicas_in_sync,
       'tfprune_version': __version__}, indent=2) + '\n')

  def build():
    return models.load_network(model_fn(spec.image_shape, spec.num_classes),
                               start.network)

  @functools.cache
  def dense_tflite() -> int:
    return len(tflite.convert(build(), sparse=False))
  context = _Context(config, build, train_split, test_split, strategy, out_dir,
                     dense_tflite, start, command, verbose,
                     given.provenance(spec.image_shape))
  results = [_run_one(context, r) for r in config.runs()]
  atomic.write_text(out_dir / RESULTS_NAME, results_csv(results))
  atomic.write_text(out_dir / TIMING_NAME, timing_json(config.runs(), out_dir))
  oneshot = oneshot_rows(config, start.network, test_split)
  atomic.write_text(out_dir / ONESHOT_NAME, sweep.to_csv(oneshot))
  plots.plot_gradual(out_dir / RESULTS_NAME, out_dir / ONESHOT_NAME,
                     out_dir / PLOT_NAME)
  if not chief:
    shutil.rmtree(out_dir, ignore_errors=True)
  return Study(results, oneshot)


def _as_model_input(split: datasets.Split, network, spec, source: str,
                   which: str) -> datasets.Split:
  """`split` checked against the dense chain (`data_source.fits_flat`) and
  shaped as the registry model's input (a user's `.npz` may store vectors)."""
  data_source.fits_flat(split, network.input_dim, network.output_dim, source,
                        which)
  return datasets.Split(split.images.reshape((-1,) + spec.image_shape),
                        split.labels)


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
  made_on: dict


def _run_one(context: _Context, pruning_run: gradual.PruningRun) -> RunResult:
  """Trains, exports and measures one run, or reads it back if it finished."""
  config, test_split, start = context.config, context.test_split, context.start
  run_dir = context.out_dir / 'runs' / run_name(pruning_run)
  # The chief's run folder: every worker of a multi-worker run reads from it
  # whether the run finished and where to resume (a shared file system).
  chief_dir = pathlib.Path(config.out_dir) / 'runs' / run_name(pruning_run)
  if (chief_dir / RESULT_NAME).exists():
    return read_result(chief_dir / RESULT_NAME)
  atomic.ensure_dir(run_dir)
  keras.utils.set_random_seed(config.seed)
  trained = gradual.train(pruning_run, context.build, context.train_split,
                          test_split, context.strategy, run_dir, context.verbose,
                          backup_dir=chief_dir / resumable.BACKUP_NAME)
  network = models.to_network(trained.model)
  accuracy = accuracy_lib.accuracy(network_graph.to_graph(network),
                                   test_split.images, test_split.labels)
  keras_accuracy = trained.keras_accuracy
  metadata = {
      'model': config.model, 'dataset': config.dataset,
      'pruning': dataclasses.asdict(pruning_run),
      'start_weights': config.weights_dir, 'start_sha256': start.sha256,
      'test_accuracy': round(float(accuracy), 6),
      'keras_test_accuracy': round(float(keras_accuracy), 6),
      'tfprune_version': __version__,
      'command': context.command,
      **gradual_graph.npz_provenance(config, context.made_on),
  }
  weights.save(run_dir / 'weights', network, metadata, overwrite=True)
  tflite_bytes = tflite_accuracy = None
  if config.export_tflite:
    tflite_bytes, tflite_accuracy = gradual_graph.tflite_result(trained.model, run_dir, test_split)
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
      epochs=pruning_run.total_epochs,
      layer_sparsity='/'.join(f'{100 * l.sparsity:.2f}' for l in layers))
  write_result(run_dir / RESULT_NAME, result)
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
