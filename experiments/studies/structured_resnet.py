"""Structured study: ResNet-18 with half of every channel group removed, fine-tuned, timed.

Issue 13's headline result, composed from the core:
  1. hold out the last `validation_size` training images (never trained or
     fine-tuned on by the study); train ResNet-18 (`keras_io.models`,
     tf_keras) on the rest, or load a trained `.keras` (`dense_model`);
     score it on the validation and test splits;
  2. import it (`keras_io.importer.from_keras`, verified on test images),
     remove k% of every dependency group's channels (`channel_pruning`, L2
     of the producing kernels), compact physically (`graph_compaction`) and
     build the smaller plain Keras model (`keras_io.build.to_keras`): its
     accuracy is the one-shot accuracy;
  3. fine-tune that model once per candidate learning rate (compile + fit,
     the same seed each time: the channels are gone, so there is no mask to
     hold) and keep the candidate of best validation accuracy; its test
     accuracy is the study's result (every candidate's is reported);
  4. count parameters and multiply-adds on the graphs, save every model as a
     plain uncompiled `.keras` file (`to_keras` of each graph: no optimizer
     state) and time the chosen model against the dense one at each batch
     size in alternating blocks in one process (`benchmark.paired_model_times`).
Writes into `out_dir`, all at once (`atomic.staging`): results.csv
(accuracies, parameters, MACs, bytes: no seconds), timing.json (latencies,
speed-ups, training seconds, machine), config.json, and models/dense.keras,
models/oneshot.keras, models/finetuned-lr<rate>.keras.
"""

import dataclasses
import json
import math
import pathlib
import time

import numpy as np

from tfprune import atomic
from tfprune import ziptags
from tfprune.criteria import pruning
from tfprune.data import datasets
from tfprune.data import provenance
from tfprune.drivers import benchmark
from tfprune.drivers import graph_sweep
from tfprune.drivers import model_checks
from tfprune.graph.ir import Graph
from tfprune.keras_compat import keras
from tfprune.keras_io import build
from tfprune.keras_io import importer
from tfprune.keras_io import load
from tfprune.keras_io import models
from experiments.studies import structured_config
from tfprune.training import classifier
from tfprune.transforms import channel_pruning
from tfprune.transforms import graph_compaction
from tfprune.graph import groups as groups_lib

COLUMNS = ('model', 'learning_rate', 'chosen', 'validation_accuracy',
           'accuracy', 'drop_points', 'params', 'macs', 'keras_bytes', 'widths')
MODELS_DIR = 'models'
VERIFY_EXAMPLES = 64


StructuredConfig = structured_config.StructuredConfig


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
    chosen: the results row (and model file stem) of the chosen candidate.
  """
  rows: list[dict]
  timing: dict
  dense: Graph
  masked: Graph
  compacted: Graph
  removed: dict[str, np.ndarray]
  chosen: str


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


def _accuracy(model, split: datasets.Split) -> float:
  predictions = model.predict(split.images, batch_size=500, verbose=0)
  return float(np.mean(predictions.argmax(axis=1) == split.labels))


def _scores(model, validation: datasets.Split,
            test: datasets.Split) -> tuple[float, float]:
  return _accuracy(model, validation), _accuracy(model, test)


def widths(graph: Graph) -> str:
  """Output channels of each conv/dense node, in order: '16-16-16-…-10'."""
  return '-'.join(str(n.params['kernel'].shape[-1]) for n in graph.weighted())


def made_on(config: StructuredConfig) -> dict:
  """The provenance entry of the study's models (`data.provenance`)."""
  return provenance.record(config.dataset, None, None,
                           datasets.get(config.dataset).image_shape)


def _dense_model(config: StructuredConfig, train: datasets.Split):
  if config.dense_model is not None:
    # A model saved by this study records its dataset (`_save`): refuse
    # another unless allowed; a user's own model records nothing.
    provenance.check(ziptags.read(config.dense_model), made_on(config),
                     config.dense_model, config.allow_other_data)
    return load.load_model(config.dense_model)
  spec = datasets.get(config.dataset)
  keras.backend.clear_session()  # fresh layer names: the same file every run
  keras.utils.set_random_seed(config.seed)
  model = models.get('resnet18')(spec.image_shape, spec.num_classes,
                                 width=config.width)
  _fit(model, train, config, config.epochs, config.learning_rate)
  return model


def _save(model, path: pathlib.Path, entry: dict) -> int:
  """Saves `model` (same bytes for the same model, tagged with `entry`) and
  returns its bytes but the tag (`ziptags`)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  model.save(path)
  ziptags.reproducible_keras(path, entry)
  return path.stat().st_size - len(ziptags.comment(entry))


def model_path(out_dir, name: str) -> pathlib.Path:
  """Where the model of results row `name` is saved."""
  return pathlib.Path(out_dir) / MODELS_DIR / f'{name}.keras'


def run(config: StructuredConfig, verbose: bool = True) -> StructuredResult:
  """Trains, prunes, compacts, fine-tunes and times; writes and returns the results."""
  say = print if verbose else (lambda *a, **k: None)
  train, validation = structured_config.split_validation(
      datasets.load(config.dataset, 'train', config.data_dir,
                    config.train_limit), config.validation_size)
  test = datasets.load(config.dataset, 'test', config.data_dir,
                       config.test_limit)
  seconds = {}
  with atomic.staging(config.out_dir) as stage:
    start = time.perf_counter()
    model = _dense_model(config, train)
    seconds['dense_training'] = time.perf_counter() - start
    # (validation accuracy, test accuracy) of each results row.
    scores = {'dense': _scores(model, validation, test)}
    say(f'dense: {100 * scores["dense"][1]:.2f}%', flush=True)

    start = time.perf_counter()
    dense = model_checks.finite(
        importer.from_keras(model, test.images[:VERIFY_EXAMPLES]),
        config.dense_model or 'the dense model')
    analysis = groups_lib.analyse(dense)
    removed = channel_pruning.select(dense, analysis, config.importance,
                                     config.k)
    masked = channel_pruning.mask(dense, analysis, removed)
    compacted = graph_compaction.compact(dense, analysis, removed)
    seconds['prune_and_compact'] = time.perf_counter() - start
    scores['oneshot'] = _scores(build.to_keras(compacted, 'tf_keras'),
                                validation, test)
    say(f'one-shot, {config.k:g}% of every group removed: '
        f'{100 * scores["oneshot"][1]:.2f}%', flush=True)

    graphs = {'dense': dense, 'oneshot': compacted}
    candidates = {}
    for rate in config.finetune_learning_rates:
      name = structured_config.candidate_name(rate)
      candidates[name] = rate
      tuned = build.to_keras(compacted, 'tf_keras')  # each from the same start
      keras.utils.set_random_seed(config.seed)
      start = time.perf_counter()
      _fit(tuned, train, config, config.finetune_epochs, rate)
      seconds[f'finetuning_lr{rate:g}'] = time.perf_counter() - start
      scores[name] = _scores(tuned, validation, test)
      say(f'fine-tuned {config.finetune_epochs} epochs from rate {rate:g}: '
          f'validation {100 * scores[name][0]:.2f}%, test '
          f'{100 * scores[name][1]:.2f}%', flush=True)
      graphs[name] = importer.from_keras(tuned, test.images[:VERIFY_EXAMPLES])
    names = list(candidates)
    chosen = names[structured_config.choose([scores[n][0] for n in names])]
    say(f'chosen on validation: rate {candidates[chosen]:g}, test '
        f'{100 * scores[chosen][1]:.2f}%', flush=True)

    # What one ships: each graph as a plain, uncompiled Keras model (a trained
    # model's .keras would also hold its optimizer's state).
    shipped = {name: build.to_keras(g, 'tf_keras') for name, g in graphs.items()}
    sizes = {name: _save(m, model_path(stage, name), made_on(config))
             for name, m in shipped.items()}
    dense_accuracy = scores['dense'][1]
    rows = [{'model': name, 'learning_rate': candidates.get(name, ''),
             'chosen': int(name == chosen) if name in candidates else '',
             'validation_accuracy': round(scores[name][0], 6),
             'accuracy': round(scores[name][1], 6),
             'drop_points': round(100 * (dense_accuracy - scores[name][1]), 4),
             'params': g.num_params, 'macs': graph_sweep.macs(g, False),
             'keras_bytes': sizes[name], 'widths': widths(g)}
            for name, g in graphs.items()]
    timing = _time(shipped['dense'], shipped[chosen],
                   dense.input_shape, config, seconds)
    timing['compacted_model'] = chosen
    atomic.write_csv(stage / 'results.csv', COLUMNS, rows)
    atomic.write_text(stage / 'timing.json', json.dumps(timing, indent=2) + '\n')
    atomic.write_text(stage / 'config.json',
                      json.dumps(provenance.config_record(config), indent=2)
                      + '\n')
  return StructuredResult(rows, timing, dense, masked, compacted, removed,
                          chosen)


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
      'machine': benchmark.machine(),
  }


def kept(size: int, k: float) -> int:
  """Channels a group of `size` keeps at level k (at least one)."""
  return max(size - pruning.prune_count(k, size), 1)
