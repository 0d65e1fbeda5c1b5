"""What one sweep point costs on a graph, against one Keras `predict` of the model.

A sweep point (`graph_sweep.sweep_graph`, what `sweep.py` runs for a CNN or a
user's model) prunes the network, evaluates it on every test example, and
counts its non-zeros, multiply-adds and file size. The bar: on a CNN a point
should cost no more than `model.predict(x_test)` of the same Keras model on
the same data.

`run` times a whole sweep of len(methods) x len(levels) points (one trace of
the evaluator per sweep, as in `sweep.py`) and one `model.predict` in
alternating blocks in one process, after one untimed call of each, so a
change of load on a shared machine hits both sides. It reports

    ratio = (median sweep seconds / points) / median predict seconds,

and each timed sweep's per-point seconds (the first point includes the
evaluator's trace). Everything measured is a timing, so `point_cost.json`
holds seconds, the machine and its load average; the sweep's accuracies are
the sweep's own (`sweep.py` writes them).
"""

import dataclasses
import json
import os
import pathlib
import statistics

import numpy as np

from tfprune import atomic
from tfprune.criteria import graph_pruning
from tfprune.data import provenance
from tfprune.drivers import benchmark
from tfprune.drivers import graph_sweep
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph.ir import Graph
from tfprune.keras_io import build
from tfprune.keras_io import load
from tfprune.runtime import timers

JSON_NAME = 'point_cost.json'
DEFAULT_LEVELS = (50, 70, 90)  # no k = 0: the sweep skips re-evaluating it


@dataclasses.dataclass(frozen=True)
class PointCostConfig:
  """How a point-cost measurement was run; saved in `point_cost.json`.

  Attributes:
    out_dir: folder for `point_cost.json`.
    weights_dir: a weight folder (or None with `model_file`).
    model_file: a user's Keras model file, predicted by the Keras that saved it.
    data: a user's `.npz` (x_test, y_test) instead of `dataset`.
    dataset: registry dataset whose test split is used.
    data_dir: local data folder.
    methods: criteria of `importances.REGISTRY` (no calibration) of the timed sweep.
    levels: levels k in percent of the timed sweep.
    rounds: timed sweeps and timed predicts, alternating.
    predict_batch_size: `model.predict`'s batch size (Keras's default: 32).
    allow_other_data: time on other data than the network's files record,
      on purpose (`data.provenance`).
  """
  out_dir: str
  weights_dir: str | None = None
  model_file: str | None = None
  data: str | None = None
  dataset: str = 'mnist'
  data_dir: str | None = None
  methods: tuple[str, ...] = ('weight', 'unit')
  levels: tuple[float, ...] = DEFAULT_LEVELS
  rounds: int = 3
  predict_batch_size: int = 32
  allow_other_data: bool = False

  def __post_init__(self):
    benchmark.check_network_and_methods(self.weights_dir, self.model_file,
                                              self.methods)
    object.__setattr__(self, 'methods', tuple(self.methods))
    object.__setattr__(self, 'levels', sweep.parse_levels(
        [str(k) for k in self.levels]))
    if self.rounds < 1 or self.predict_batch_size < 1:
      raise TfpruneError(f'rounds and predict_batch_size must be at least 1, '
                         f'got {self.rounds} and {self.predict_batch_size}')


def keras_model(config: PointCostConfig, graph: Graph):
  """The user's Keras model as saved, or a weight folder's as tf_keras."""
  if config.model_file is not None:
    return load.load_model(config.model_file)
  return build.to_keras(graph, 'tf_keras')


def run(config: PointCostConfig) -> dict:
  """Times the sweep against `predict`; writes and returns the record."""
  atomic.check_writable(config.out_dir)
  load_before = list(os.getloadavg())
  graph, test, _ = benchmark.load_checked(config)
  names = graph_pruning.prunable(graph)
  model = keras_model(config, graph)
  x, labels = test.images, test.labels
  per_point: list[list[float]] = []

  def sweep_once():
    seconds = []
    graph_sweep.sweep_graph(
        graph, config.methods, config.levels, names, x, labels, sweep.SweepRow,
        progress=lambda method, k, accuracy, s: seconds.append(s))
    per_point.append(seconds)

  def predict():
    return model.predict(x, batch_size=config.predict_batch_size, verbose=0)

  outputs = predict()  # untimed first calls: Keras traces, TensorFlow warms up
  sweep_once()
  per_point.clear()
  predict_times, sweep_times = timers.interleaved_timings(
      (predict, sweep_once), (1, 1), config.rounds)
  points = len(config.methods) * len(config.levels)
  predict_seconds = statistics.median(predict_times)
  sweep_seconds = statistics.median(sweep_times)
  record = {
      'config': provenance.config_record(config),
      'machine': {**benchmark.machine(), 'load_average_before': load_before},
      'examples': len(x), 'input_shape': list(graph.input_shape),
      'params': graph.num_params, 'points': points,
      'keras_accuracy': float(np.mean(
          np.argmax(outputs.reshape(len(x), -1), 1) == labels)),
      'evaluator_accuracy': evaluator.Evaluator(graph).accuracy(x, labels),
      'predict_seconds': predict_times, 'sweep_seconds': sweep_times,
      'point_seconds': per_point,
      'median_predict_seconds': predict_seconds,
      'median_point_seconds': sweep_seconds / points,
      'point_to_predict': sweep_seconds / points / predict_seconds,
  }
  with atomic.staging(config.out_dir) as out_dir:
    atomic.write_text(out_dir / JSON_NAME, json.dumps(record, indent=2) + '\n')
  return record


def format_record(record: dict) -> str:
  """One line per figure, for the terminal."""
  return '\n'.join([
      f'{record["points"]} points on {record["examples"]:,} examples '
      f'(input {tuple(record["input_shape"])}, {record["params"]:,} parameters)',
      f'keras predict {record["median_predict_seconds"]:.3f} s (median), '
      f'sweep point {record["median_point_seconds"]:.3f} s: '
      f'{record["point_to_predict"]:.2f}x one predict',
      f'load average before/after: {record["machine"]["load_average_before"]} / '
      f'{record["machine"]["load_average"]}'])


def out_path(config: PointCostConfig) -> pathlib.Path:
  """Where `run` writes its JSON."""
  return pathlib.Path(config.out_dir) / JSON_NAME
