"""Pruning while training any imported graph: every Dense, Conv2D and depthwise kernel.

`train(run, graph, ...)` fine-tunes the graph's tf_keras twin
(`keras_io.build.to_keras(graph, 'tf_keras')`, the framework TF-MOT wraps)
under one `PruningRun` and hands the result back as a verified graph:

- weight level: `prune_low_magnitude` wraps every chosen Dense and Conv2D
  layer (through `clone_model`; the 1x1 half of an imported SeparableConv2D
  is a plain Conv2D). TF-MOT never prunes a DepthwiseConv2D (its registry
  lists no weight of it), so `DepthwiseMagnitude` masks those kernels by
  magnitude on the same schedule steps, to TF-MOT's count of zeros;
- unit level: `ChannelPruning` removes whole channels of the dependency
  groups (`transforms.groups`) holding the chosen nodes, chosen by
  `channel_pruning.select` (L2 of the coupled producers) at the schedule's
  steps, and keeps them at zero (kernels, depthwise filters and, where the
  channel meets zero padding, biases and batch-norm scale and shift).

Training runs through `resumable.fit`, so an interrupted run resumes to the
same weights. After training the wrappers are stripped, the model is imported back with
`from_keras` (verified against Keras) and the sparsity of every pruned layer
is measured and checked (`check_reached` names a layer short of its target).
For units the compacted graph (channels physically removed) comes too.
"""

import dataclasses
import pathlib
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot

from tfprune.data import datasets
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph.ir import Graph
from tfprune.keras_compat import keras
from tfprune.keras_io import build
from tfprune.keras_io import importer
from tfprune.training import epoch_log
from tfprune.training import gradual
from tfprune.training import masking
from tfprune.training import resumable
from tfprune.training import schedules
from tfprune.transforms import channel_pruning
from tfprune.transforms import graph_compaction
from tfprune.graph import groups as groups_lib

# Graph ops TF-MOT wraps; the depthwise kernels are masked by tfprune.
TFMOT_OPS = ('dense', 'conv2d')
IMPORTANCE = 'unit'


def magnitude_mask(kernel: np.ndarray, target: float) -> np.ndarray:
  """Keeps all but TF-MOT's count of smallest-magnitude weights (ties: lower index)."""
  count = schedules.tfmot_pruned_count(kernel.size, target)
  order = np.argsort(np.abs(kernel).ravel(), kind='stable')
  keep = np.ones(kernel.size, bool)
  keep[order[:count]] = False
  return keep.reshape(kernel.shape)


class _Scheduled(masking.KeepMasked):
  """Replaces its masks at a TF-MOT schedule's pruning steps."""

  def __init__(self, schedule: tfmot.sparsity.keras.PruningSchedule):
    super().__init__()
    self.schedule = schedule

  def on_train_batch_begin(self, batch, logs=None):
    # The k-th batch is step k, as on TF-MOT's counter.
    step = int(self.model.optimizer.iterations.numpy()) + 1
    should_prune, target = self.schedule(step)
    if bool(should_prune):
      self.set_masks(self.masks_at(target))

  def masks_at(self, target):
    """The (variable, mask) pairs at the schedule's (float32) sparsity."""
    raise NotImplementedError


class DepthwiseMagnitude(_Scheduled):
  """Magnitude pruning of depthwise kernels on a schedule (TF-MOT has none)."""

  def __init__(self, kernels: Sequence[tf.Variable],
               schedule: tfmot.sparsity.keras.PruningSchedule):
    super().__init__(schedule)
    self.kernels = list(kernels)

  def on_train_begin(self, logs=None):
    # Zeros of a restored backup are the pruned weights: resuming is exact.
    self.set_masks([(v, masking.kept(v)) for v in self.kernels])

  def masks_at(self, target):
    return [(v, magnitude_mask(v.numpy(), target)) for v in self.kernels]


class ChannelPruning(_Scheduled):
  """Removes coupled channels of a graph's twin on a schedule, keeps them zero."""

  def __init__(self, graph: Graph, model: keras.Model, names: Sequence[str],
               schedule: tfmot.sparsity.keras.PruningSchedule):
    super().__init__(schedule)
    self.graph, self.names = graph, list(names)
    self.analysis = groups_lib.analyse(graph)
    self.variables = {n.name: build.variables(model, n) for n in graph.nodes}

  def current(self) -> Graph:
    """The graph with the model's current weights."""
    return self.graph.with_params({
        node: {p: v.numpy() for p, v in params.items()}
        for node, params in self.variables.items() if params})

  def removal(self, removed: Mapping[str, np.ndarray]):
    """(variable, mask) of every array the removal of `removed` zeroes."""
    return [(self.variables[node][param], keep)
            for (node, param), keep in removal_masks(
                self.graph, self.analysis, removed).items()]

  def on_train_begin(self, logs=None):
    # Channels with all-zero producers were removed before (a restored backup).
    self.set_masks(self.removal(dead_channels(self.current(), self.analysis,
                                            self.names)))

  def masks_at(self, target):
    return self.removal(channel_pruning.select(
        self.current(), self.analysis, IMPORTANCE, gradual.as_percent(target),
        self.names))


def removal_masks(graph: Graph, analysis: groups_lib.Analysis,
                  removed: Mapping[str, np.ndarray]) -> dict:
  """(node, param) -> boolean keep-mask of each array `channel_pruning.mask` changes."""
  ones = graph.with_params({n.name: {p: np.ones_like(v) for p, v in n.params.items()}
                            for n in graph.nodes if n.params})
  masked = channel_pruning.mask(ones, analysis, removed)
  out = {}
  for node in masked.nodes:
    for param, value in node.params.items():
      if not np.all(value):
        out[(node.name, param)] = value != 0
  return out


def dead_channels(graph: Graph, analysis: groups_lib.Analysis,
                  names: Sequence[str]) -> dict[str, np.ndarray]:
  """Per chosen group, the channels whose producing kernels are all zero."""
  out = {}
  for group in channel_pruning.chosen(analysis, names):
    alive = np.zeros(group.size, bool)
    for s in group.slices:
      if s.role == groups_lib.PRODUCER and s.param == 'kernel':
        rows = channel_pruning.channel_rows(graph, s)
        alive |= np.any(rows.reshape(group.size, -1) != 0, axis=1)
    out[group.name] = np.flatnonzero(~alive)
  return out


def measure(graph: Graph, names: Sequence[str], run: gradual.PruningRun
            ) -> list[gradual.LayerSparsity]:
  """Per pruned node of the trained graph: kernel size, zeros, zeros required.

  Weights: TF-MOT's count for the target. Units: the kernel entries of the
  channels `channel_pruning.select` removes at the target (a trained graph
  whose pruned channels are zero selects exactly them).
  """
  if run.granularity == 'weight':
    required = {n: schedules.tfmot_pruned_count(graph.node(n).params['kernel'].size,
                                                run.target) for n in names}
  else:
    analysis = groups_lib.analyse(graph)
    removed = channel_pruning.select(graph, analysis, IMPORTANCE,
                                     round(100 * run.target, 6), names)
    masks = removal_masks(graph, analysis, removed)
    required = {n: int(np.sum(~masks[(n, 'kernel')])) if (n, 'kernel') in masks
                else 0 for n in names}
  out = []
  for name in names:
    kernel = graph.node(name).params['kernel']
    out.append(gradual.LayerSparsity(
        name, kernel.size, int(np.sum(kernel == 0)), required[name],
        int(kernel.size - np.count_nonzero(np.isfinite(kernel)))))
  return out


def from_logits(graph: Graph) -> bool:
  """False if the graph ends in a softmax (it outputs probabilities)."""
  node = graph.node(graph.output)
  activation = node.attrs.get('activation')
  return not (activation is not None and activation['fn'] == 'softmax')


@dataclasses.dataclass(frozen=True)
class TrainedGraph:
  """What `train` returns.

  Attributes:
    model: the trained tf_keras model, pruning wrappers stripped.
    graph: `model` imported back (verified), with the start graph's metadata.
    layers: measured sparsity of each pruned node (checked against the target).
    keras_accuracy: test accuracy of `model` by `Model.evaluate`.
    compacted: units only: `graph` with its removed channels gone, else None.
  """
  model: keras.Model
  graph: Graph
  layers: list[gradual.LayerSparsity]
  keras_accuracy: float
  compacted: Graph | None


def train(run: gradual.PruningRun, graph: Graph, names: Sequence[str],
          train_split: datasets.Split, test_split: datasets.Split,
          strategy: tf.distribute.Strategy, work_dir: str | pathlib.Path,
          verbose: int = 2,
          callbacks: Sequence[keras.callbacks.Callback] = (),
          backup_dir: str | pathlib.Path | None = None) -> TrainedGraph:
  """Trains and prunes `graph`'s twin; resumes from `work_dir/backup` if present.

  Args:
    run: what to do.
    graph: the starting network.
    names: the nodes to prune (`graph_pruning.prunable`).
    train_split, test_split: the data (the test split is logged, not used).
    strategy: the `tf.distribute` strategy to train under.
    work_dir: holds `epochs.csv`, `timing.json`, `tensorboard/` and the
      per-epoch backup (see `resumable`).
    verbose: Keras progress output.
    callbacks: more Keras callbacks, run last, after the epoch's checkpoint.
    backup_dir: the checkpoint folder instead of `work_dir/backup`: every
      worker of a multi-worker run passes the chief's, so all resume from
      the chief's last epoch (`resumable.fit`).

  Raises:
    TfpruneError: a pruned layer misses its target, or the trained model
      does not import back exactly.
  """
  work_dir = pathlib.Path(work_dir)
  schedule = run.pruning_schedule(len(train_split))
  total_steps = run.total_epochs * run.steps_per_epoch(len(train_split))
  ops = {n: graph.node(n).op for n in names}
  with strategy.scope():
    with resumable.generator_rng():  # a resumed run replays its dropout
      model = build.to_keras(graph, 'tf_keras')
      if run.granularity == 'weight':
        model = gradual.wrap(model, [build.layer_of(model, n).name for n in names
                                     if ops[n] in TFMOT_OPS], schedule)
    if run.granularity == 'weight':
      pruners = [tfmot.sparsity.keras.UpdatePruningStep(),
                 tfmot.sparsity.keras.PruningSummaries(
                     log_dir=str(work_dir / 'tensorboard'))]
      depthwise = [build.variables(model, graph.node(n))['kernel']
                   for n in names if ops[n] not in TFMOT_OPS]
      if depthwise:
        pruners.append(DepthwiseMagnitude(depthwise, schedule))
    else:
      pruners = [ChannelPruning(graph, model, names, schedule)]
    learning_rate = keras.optimizers.schedules.CosineDecay(
        run.learning_rate, total_steps)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=from_logits(graph)),
                  metrics=['accuracy'])
  kernels = [build.variables(model, graph.node(n))['kernel'] for n in names]
  resumable.fit(model, train_split, test_split, batch_size=run.batch_size,
                epochs=run.total_epochs, work_dir=work_dir, callbacks=[
                    *pruners,
                    epoch_log.EpochLog(work_dir / epoch_log.LOG_NAME,
                                       work_dir / epoch_log.TIMING_NAME,
                                       lambda: gradual.sparsity(kernels))],
                more_callbacks=callbacks, verbose=verbose,
                backup_dir=backup_dir)
  _, keras_accuracy = model.evaluate(test_split.images, test_split.labels,
                                    batch_size=1000, verbose=0)
  stripped = gradual.strip(model)
  trained = importer.from_keras(stripped, data=test_split.images[:16])
  trained = dataclasses.replace(trained, metadata=graph.metadata)
  layers = measure(trained, names, run)
  gradual.check_reached(layers, run.target)
  compacted = compact(trained, names, run.target) if (
      run.granularity == 'unit') else None
  return TrainedGraph(stripped, trained, layers, float(keras_accuracy), compacted)


def compact(graph: Graph, names: Sequence[str], target: float) -> Graph:
  """The unit-pruned `graph` with its zeroed channels removed (same outputs).

  Raises:
    TfpruneError: the compacted graph's outputs differ from `graph`'s.
  """
  analysis = groups_lib.analyse(graph)
  removed = channel_pruning.select(graph, analysis, IMPORTANCE,
                                   round(100 * target, 6), names)
  small = graph_compaction.compact(graph, analysis, removed)
  x = np.random.default_rng(0).standard_normal(
      (4, *graph.input_shape)).astype(np.float32)
  want, got = evaluator.predict(graph, x), evaluator.predict(small, x)
  if not np.allclose(want, got, rtol=1e-4, atol=1e-5):
    raise TfpruneError('the compacted network computes other outputs than the '
                       f'pruned one (max difference {np.max(np.abs(want - got)):.3g})')
  return small

