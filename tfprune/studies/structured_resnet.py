"""Structured study: ResNet-18 with half of every channel group removed, fine-tuned, timed.

Issue 13's headline result, composed from the core:
  1. train ResNet-18 (`keras_io.models`, tf_keras) on a training subset, or
     load a trained `.keras` (`dense_model`); score it on the test split;
  2. import it (`keras_io.importer.from_keras`, verified on test images),
     remove k% of every dependency group's channels (`channel_pruning`, L2
     of the producing kernels), compact physically (`graph_compaction`) and
     build the smaller plain Keras model (`keras_io.build.to_keras`): its
     test accuracy is the one-shot accuracy;
  3. fine-tune that model (compile + fit: the channels are gone, so there is
     no mask to hold) and score it again;
  4. count parameters and multiply-adds on the graphs, save the dense, the
     one-shot and the fine-tuned model as plain uncompiled `.keras` files
     (`to_keras` of each graph: no optimizer state) and time the fine-tuned
     model against the dense one at each batch size in alternating blocks in
     one process (`benchmark.paired_model_times`).
Writes into `out_dir`, all at once (`atomic.staging`): results.csv
(accuracies, parameters, MACs, bytes: no seconds), timing.json (latencies,
speed-ups, training seconds, machine), config.json, and models/dense.keras,
models/oneshot.keras, models/finetuned.keras.
"""

import dataclasses
import json
import math
import os
import pathlib
import platform
import time

import numpy as np
import tensorflow as tf

from tfprune import __version__
from tfprune import atomic
from tfprune.criteria import pruning
from tfprune.data import datasets
from tfprune.drivers import benchmark
from tfprune.drivers import graph_sweep
from tfprune.errors import TfpruneError
from tfprune.graph.ir import Graph
from tfprune.keras_compat import keras
from tfprune.keras_io import build
from tfprune.keras_io import importer
from tfprune.keras_io import load
from tfprune.keras_io import models
from tfprune.training import classifier
from tfprune.transforms import channel_pruning
from tfprune.transforms import graph_compaction
from tfprune.transforms import groups as groups_lib

COLUMNS = ('model', 'accuracy', 'drop_points', 'params', 'macs', 'keras_bytes',
           'widths')
MODEL_FILES = {'dense': 'dense.keras', 'oneshot': 'oneshot.keras',
               'finetuned': 'finetuned.keras'}
VERIFY_EXAMPLES = 64


@dataclasses.dataclass(frozen=True)
class StructuredConfig:
  """Settings of the structured ResNet-18 study; saved as config.json.

  Attributes:
    out_dir: folder for results.csv, timing.json, config.json and models/.
    dataset: a key of `datasets.DATASETS` holding images.
    data_dir: local IDX data folder (None: `$TFPRUNE_DATA_DIR`, then tfds).
    width: ResNet-18 width multiplier.
    k: percentage of every channel group removed, in [0, 100].
    importance: channel score, a key of `channel_pruning.IMPORTANCE`.
    train_limit: first N training examples, for training and fine-tuning
      (None: all).
    test_limit: first N test examples (None: all).
    epochs: dense training epochs (Adam, cosine-decayed to 0).
    learning_rate: initial Adam rate of the dense training.
    finetune_epochs: fine-tuning epochs of the compacted model.
    finetune_learning_rate: initial Adam rate of fine-tuning (cosine).
    batch_size: examples per training step.
    seed: seeds initialisation and shuffling.
    dense_model: a trained `.keras` to start from instead of training (then
      `epochs` and `learning_rate` are unused).
    batch_sizes: batch sizes the two models are timed at.
    timing_runs: timed calls per model and batch size, at least.
    timing_rounds: alternating blocks per model and batch size.
    timing_min_seconds: each model runs at least this long per batch size.
  """
  out_dir: str
  dataset: str = 'fashion_mnist'
  data_dir: str | None = None
  width: float = 0.25
  k: float = 50.0
  importance: str = 'l2'
  train_limit: int | None = None
  test_limit: int | None = None
  epochs: int = 4
  learning_rate: float = 1e-3
  finetune_epochs: int = 2
  finetune_learning_rate: float = 2e-3
  batch_size: int = 128
  seed: int = 0
  dense_model: str | None = None
  batch_sizes: tuple[int, ...] = (1, 256)
  timing_runs: int = 200
  timing_rounds: int = 10
  timing_min_seconds: float = 1.0

  def __post_init__(self):
    models.check_fits('resnet18', datasets.get(self.dataset).image_shape,
                      self.dataset)
    pruning.check_level(self.k, hint=': pass e.g. --k=50')
    if self.importance not in channel_pruning.IMPORTANCE:
      raise TfpruneError(f'importance must be one of '
                         f'{", ".join(channel_pruning.IMPORTANCE)}, got '
                         f'{self.importance!r}')
    if not self.width > 0:
      raise TfpruneError(f'width must be positive, got {self.width}')
    for name in ('epochs', 'finetune_epochs'):
      if getattr(self, name) < 0:
        raise TfpruneError(f'{name} must be >= 0, got {getattr(self, name)}')
    for name in ('batch_size', 'timing_runs', 'timing_rounds'):
      if getattr(self, name) < 1:
        raise TfpruneError(f'{name} must be at least 1, got {getattr(self, name)}')
    if not (self.learning_rate > 0 and self.finetune_learning_rate > 0):
      raise TfpruneError('learning rates must be positive, got '
                         f'{self.learning_rate} and {self.finetune_learning_rate}')
    if not self.batch_sizes or min(self.batch_sizes) < 1:
      raise TfpruneError(f'batch_sizes must be positive, got {self.batch_sizes}')
    if self.timing_min_seconds < 0:
      raise TfpruneError(
          f'timing_min_seconds must be >= 0, got {self.timing_min_seconds}')


@dataclasses.dataclass(frozen=True)
class StructuredResult:
  """What `run` measured, and the graphs it made (for checks).

  Attributes:
    rows: the rows of results.csv.
    timing: the content of timing.json.
    dense: the imported dense graph.
    masked: the dense graph with the removed channels masked.
    compacted: the smaller graph, before fine-tuning.
    removed: group name -> removed channel indices.
  """
  rows: list[dict]
  timing: dict
  dense: Graph
  masked: Graph
  compacted: Graph
  removed: dict[str, np.ndarray]


def _fit(model, train: datasets.Split, config: StructuredConfig, epochs: int,
         learning_rate: float) -> None:
  """Adam with the rate cosine-decayed to 0 over `epochs`, shuffled batches."""
  if epochs == 0:
    return
  steps = epochs * math.ceil(len(train) / config.batch_size)
  model.compile(
      optimizer=keras.optimizers.Adam(
          keras.optimizers.schedules.CosineDecay(learning_rate, steps)),
      loss=classifier.loss_for(model), metrics=['accuracy'])
  model.fit(train.images, train.labels, batch_size=config.batch_size,
            epochs=epochs, shuffle=True, verbose=0)


def _accuracy(model, test: datasets.Split) -> float:
  predictions = model.predict(test.images, batch_size=500, verbose=0)
  return float(np.mean(predictions.argmax(axis=1) == test.labels))


def widths(graph: Graph) -> str:
  """Output channels of each conv/dense node, in order: '16-16-16-…-10'."""
  return '-'.join(str(n.params['kernel'].shape[-1]) for n in graph.weighted())


def _dense_model(config: StructuredConfig, train: datasets.Split):
  if config.dense_model is not None:
    return load.load_model(config.dense_model)
  spec = datasets.get(config.dataset)
  keras.utils.set_random_seed(config.seed)
  model = models.get('resnet18')(spec.image_shape, spec.num_classes,
                                 width=config.width)
  _fit(model, train, config, config.epochs, config.learning_rate)
  return model


def _save(model, path: pathlib.Path) -> int:
  path.parent.mkdir(parents=True, exist_ok=True)
  model.save(path)
  return path.stat().st_size


def run(config: StructuredConfig, verbose: bool = True) -> StructuredResult:
  """Trains, prunes, compacts, fine-tunes and times; writes and returns the results."""
  say = print if verbose else (lambda *a, **k: None)
  train = datasets.load(config.dataset, 'train', config.data_dir,
                        config.train_limit)
  test = datasets.load(config.dataset, 'test', config.data_dir,
                       config.test_limit)
  seconds = {}
  with atomic.staging(config.out_dir) as stage:
    start = time.perf_counter()
    model = _dense_model(config, train)
    seconds['dense_training'] = time.perf_counter() - start
    accuracy = {'dense': _accuracy(model, test)}
    say(f'dense: {100 * accuracy["dense"]:.2f}%', flush=True)

    start = time.perf_counter()
    dense = importer.from_keras(model, test.images[:VERIFY_EXAMPLES])
    analysis = groups_lib.analyse(dense)
    removed = channel_pruning.select(dense, analysis, config.importance,
                                     config.k)
    masked = channel_pruning.mask(dense, analysis, removed)
    compacted = graph_compaction.compact(dense, analysis, removed)
    seconds['prune_and_compact'] = time.perf_counter() - start
    small = build.to_keras(compacted, 'tf_keras')
    accuracy['oneshot'] = _accuracy(small, test)
    say(f'one-shot, {config.k:g}% of every group removed: '
        f'{100 * accuracy["oneshot"]:.2f}%', flush=True)

    keras.utils.set_random_seed(config.seed)
    start = time.perf_counter()
    _fit(small, train, config, config.finetune_epochs,
         config.finetune_learning_rate)
    seconds['finetuning'] = time.perf_counter() - start
    accuracy['finetuned'] = _accuracy(small, test)
    say(f'fine-tuned {config.finetune_epochs} epochs: '
        f'{100 * accuracy["finetuned"]:.2f}%', flush=True)
    finetuned = importer.from_keras(small, test.images[:VERIFY_EXAMPLES])

    graphs = {'dense': dense, 'oneshot': compacted, 'finetuned': finetuned}
    # What one ships: each graph as a plain, uncompiled Keras model (a trained
    # model's .keras would also hold its optimizer's state).
    shipped = {name: build.to_keras(g, 'tf_keras') for name, g in graphs.items()}
    sizes = {name: _save(m, stage / 'models' / MODEL_FILES[name])
             for name, m in shipped.items()}
    rows = [{'model': name, 'accuracy': round(accuracy[name], 6),
             'drop_points': round(100 * (accuracy['dense'] - accuracy[name]), 4),
             'params': g.num_params, 'macs': graph_sweep.macs(g, False),
             'keras_bytes': sizes[name], 'widths': widths(g)}
            for name, g in graphs.items()]
    timing = _time(shipped['dense'], shipped['finetuned'],
                   dense.input_shape, config, seconds)
    atomic.write_csv(stage / 'results.csv', COLUMNS, rows)
    atomic.write_text(stage / 'timing.json', json.dumps(timing, indent=2) + '\n')
    atomic.write_text(stage / 'config.json',
                      json.dumps(dataclasses.asdict(config), indent=2) + '\n')
  return StructuredResult(rows, timing, dense, masked, compacted, removed)


def _time(dense_model, small_model, input_shape, config: StructuredConfig,
          seconds: dict) -> dict:
  """Paired latencies of the two Keras models, speed-ups, and the run's seconds."""
  times = benchmark.paired_model_times(
      dense_model, small_model, input_shape, config.batch_sizes,
      config.timing_runs, config.timing_min_seconds, config.timing_rounds)
  latency = {str(b): {'dense_ms': 1e3 * d, 'compacted_ms': 1e3 * c,
                      'speedup': d / c}
             for b, (d, c) in times.items()}
  return {
      'latency_median': latency,
      'method': ('median seconds per forward pass of each tf_keras model, '
                 'called through tf.function on one random batch, in '
                 f'{config.timing_rounds} alternating blocks per model in one '
                 f'process, at least {config.timing_runs} calls each'),
      'seconds': {k: round(v, 1) for k, v in seconds.items()},
      'machine': {'platform': platform.platform(),
                  'processor': benchmark.cpu_name(),
                  'cpu_count': os.cpu_count(),
                  'load_average': list(os.getloadavg()),
                  'tensorflow': tf.__version__, 'tfprune': __version__},
  }


def kept(size: int, k: float) -> int:
  """Channels a group of `size` keeps at level k (at least one)."""
  return max(size - pruning.prune_count(k, size), 1)


def parse_batch_sizes(texts) -> list[int]:
  """Parses ['1', '256'] into batch sizes.

  Raises:
    TfpruneError: a text is not a whole number.
  """
  try:
    return [int(t) for t in texts]
  except ValueError:
    raise TfpruneError(f'batch sizes must be whole numbers, got {",".join(texts)}: '
                       'give --batch_sizes=1,256') from None
