"""The gradual study's `tfprune.keras` engine: a graph fine-tuned as a Keras model under `Pruning`.

`train` takes `graph_gradual.train`'s arguments and returns its
`TrainedGraph`, so `experiments/gradual.py --engine=keras` runs the rest of
the study (exports, TFLite, results) unchanged. The graph is built as a
model of the framework asked for (`tfprune.to_keras`): Keras 3, trained on
the backend Keras runs (`KERAS_BACKEND`), or tf_keras (TensorFlow), the
framework TF-MOT trains, so the two engines can run on the same tf_keras
model. It trains with the `Pruning` callback on the run's schedule (the
same steps as the TF-MOT engine's), then is stripped and imported back
(verified). Weight level prunes each chosen kernel by magnitude to
floor(k·n/100); unit level removes channel groups (`criterion='unit'`).

Resuming: after every epoch the weights, the optimizer and the pruning state
are saved (`save_weights`) with the count of finished epochs; a rerun loads
them and goes on. Each epoch's batches come from a permutation seeded by the
epoch, so a resumed run trains on the batches the uninterrupted one did. A
backup whose optimizer holds another number of variables than this run's
(one written by tfprune before the masks were optimizer variables) is
refused: Keras would load it without the optimizer's state.
"""

import dataclasses
import json
import pathlib
import shutil
from typing import Sequence

import h5py
import keras
import numpy as np

from tfprune import atomic
from tfprune import keras_compat
from tfprune.criteria import pruning
from tfprune.data import datasets
from tfprune.errors import TfpruneError
from tfprune.graph.ir import Graph
from tfprune.keras import callback as callback_lib
from tfprune.keras import finish
from tfprune.keras import frameworks
from tfprune.keras import schedules
from tfprune.keras_io import build
from tfprune.keras_io import importer
from tfprune.training import epoch_log
from tfprune.training import gradual
from tfprune.training import graph_gradual
from tfprune.training import schedules as tfmot_schedules

BACKUP_NAME = 'backup'
_WEIGHTS, _EPOCHS = 'model.weights.h5', 'epochs.json'
# Seeds each epoch's batch order together with the epoch index.
ORDER_SEED = 20231


def schedule_of(run: gradual.PruningRun, examples: int) -> schedules.PruningSchedule:
  """The run's schedule (`PruningRun.pruning_schedule`'s steps) for `tfprune.keras`."""
  per_epoch = run.steps_per_epoch(examples)
  if run.procedure == 'iterative':
    return schedules.CycleSparsity(
        tfmot_schedules.cycle_sparsities(run.target, run.cycles),
        run.cycle_epochs * per_epoch)
  steps = tfmot_schedules.plan_gradual(run.epochs * per_epoch, run.begin_step,
                                       run.end_step, run.frequency)
  if run.schedule == 'polynomial':
    return schedules.PolynomialDecay(0.0, run.target, steps.begin_step,
                                     steps.end_step, frequency=steps.frequency)
  return schedules.ConstantSparsity(run.target, steps.begin_step,
                                    steps.end_step, steps.frequency)


class _Checkpoint(callback_lib.TfKerasHooks, keras.callbacks.Callback):
  """Saves weights, optimizer and pruning state after each epoch, then the epoch count."""

  def __init__(self, folder: pathlib.Path):
    super().__init__()
    self.folder = folder

  def on_epoch_end(self, epoch, logs=None):
    atomic.ensure_dir(self.folder)
    partial = self.folder / f'partial.{_WEIGHTS}'
    self.model.save_weights(partial)
    partial.replace(self.folder / _WEIGHTS)
    atomic.write_text(self.folder / _EPOCHS, json.dumps({'epochs': epoch + 1}))


def _saved_optimizer_variables(path: pathlib.Path) -> int:
  """How many optimizer variables a `.weights.h5` file holds."""
  with h5py.File(path, 'r') as f:
    return len(f['optimizer/vars']) if 'optimizer/vars' in f else 0


def _restore(model, folder: pathlib.Path) -> int:
  """Loads the last checkpoint into `model`; the epochs it finished (0: none).

  Raises:
    TfpruneError: the checkpoint's optimizer has another number of variables
      than `model`'s (a backup of an older tfprune).
  """
  if not (folder / _EPOCHS).exists():
    return 0
  model.optimizer.build(model.trainable_variables)
  saved = _saved_optimizer_variables(folder / _WEIGHTS)
  if saved != len(model.optimizer.variables):
    raise TfpruneError(
        f'{folder} holds {saved} optimizer variables, this run has '
        f'{len(model.optimizer.variables)} (a backup of an older tfprune, '
        'before the masks were optimizer variables), so it cannot resume '
        f'exactly: delete the backup folder {folder} to start the run over')
  model.load_weights(folder / _WEIGHTS)
  return int(json.loads((folder / _EPOCHS).read_text())['epochs'])


def measure(graph: Graph, names: Sequence[str], run: gradual.PruningRun
            ) -> list[gradual.LayerSparsity]:
  """Per pruned layer: size, zeros, and the zeros the target asks for.

  Weights: floor(k·n/100) (tfprune's count); units: as the TF-MOT engine.
  """
  if run.granularity == 'unit':
    return graph_gradual.measure(graph, names, run)
  level = schedules.as_percent(run.target)
  return [gradual.LayerSparsity(
      name, kernel.size, int(np.sum(kernel == 0)),
      pruning.prune_count(level, kernel.size))
          for name, kernel in ((n, graph.node(n).params['kernel']) for n in names)]


def train(run: gradual.PruningRun, graph: Graph, names: Sequence[str],
          train_split: datasets.Split, test_split: datasets.Split,
          strategy, work_dir: str | pathlib.Path, verbose: int = 2,
          callbacks: Sequence = (), framework: str = 'keras3'
          ) -> graph_gradual.TrainedGraph:
  """Trains and prunes `graph` as a Keras model; resumes from `work_dir/backup`.

  Arguments and result as `graph_gradual.train`, and `framework`: the
  model is built and trained in 'keras3' or 'tf_keras'. The result's
  `model` is the trained graph's tf_keras twin (what the study exports to
  TFLite).

  Raises:
    TfpruneError: a strategy with several replicas (this engine trains on
      one device), or a pruned layer misses its target.
  """
  if strategy.num_replicas_in_sync != 1:
    raise TfpruneError('--engine=keras trains on one device: use '
                       '--strategy=default, or --engine=tfmot')
  work_dir = atomic.ensure_dir(pathlib.Path(work_dir))
  backup = work_dir / BACKUP_NAME
  examples = len(train_split)
  total_steps = run.total_epochs * run.steps_per_epoch(examples)
  K = keras_compat.keras_module(framework)
  model = build.to_keras(graph, framework)
  layers = [build.layer_of(model, n).name for n in names]
  pruner = callback_lib.Pruning(
      schedule_of(run, examples), 'weight' if run.granularity == 'weight'
      else 'unit', layers=layers, prune_output_layer=True)
  model.compile(optimizer=K.optimizers.Adam(
      K.optimizers.schedules.CosineDecay(run.learning_rate, total_steps)),
                loss=K.losses.SparseCategoricalCrossentropy(
                    from_logits=graph_gradual.from_logits(graph)),
                metrics=['accuracy'])
  pruner.set_model(model)  # the pruning state exists before a restore
  first = _restore(model, backup)
  kernels = [build.variables(model, graph.node(n))['kernel'] for n in names]
  to_numpy = frameworks.FRAMEWORKS[framework].to_numpy
  log = epoch_log.EpochLog(
      work_dir / epoch_log.LOG_NAME, work_dir / epoch_log.TIMING_NAME,
      lambda: sum(int(np.sum(to_numpy(k) == 0)) for k in kernels)
      / sum(int(np.prod(k.shape)) for k in kernels))
  for epoch in range(first, run.total_epochs):
    order = np.random.default_rng([ORDER_SEED, epoch]).permutation(examples)
    model.fit(train_split.images[order], train_split.labels[order],
              batch_size=run.batch_size, epochs=epoch + 1, initial_epoch=epoch,
              shuffle=False, verbose=verbose,
              validation_data=(test_split.images, test_split.labels),
              validation_batch_size=run.batch_size,
              callbacks=[pruner, log, _Checkpoint(backup), *callbacks])
  _, keras_accuracy = model.evaluate(test_split.images, test_split.labels,
                                     batch_size=1000, verbose=0)
  finish.strip_pruning(model)
  trained = importer.from_keras(model, data=test_split.images[:16])
  trained = dataclasses.replace(trained, metadata=graph.metadata)
  layer_sparsity = measure(trained, layers, run)
  gradual.check_reached(layer_sparsity, run.target)
  compacted = graph_gradual.compact(trained, layers, run.target) if (
      run.granularity == 'unit') else None
  shutil.rmtree(backup, ignore_errors=True)
  return graph_gradual.TrainedGraph(build.to_keras(trained, 'tf_keras'), trained,
                                    layer_sparsity, float(keras_accuracy),
                                    compacted)
