"""The benchmark: what pruning buys in speed and size, against the dense network in one run.

Every network is a graph: a weight folder (the MLP, LeNet-5, the Fashion CNN)
or a user's Keras model file (ResNet-18, a MobileNet). Each method and level
k is pruned and measured exactly as the sweep does it (`sweep.sweep`: the
same rows, the same saved graphs, data-aware methods calibrated on the same
training sample), then timed against the dense network in this process:

- a method that removes channels (`unit`, ...): the compacted Keras model
  (the channels physically gone, `graph_compaction`) against the dense Keras
  model, each called through one `tf.function`;
- a weight-level method: the masked graph against the dense graph through
  the graph evaluator, with the kernels its rule picks (the `kernels`
  column). Where the graph has a Dense layer that CSR can compute
  (`runtime.csr_gain`), the same masked graph with that layer on CSR is
  also timed against it all dense: whether CSR pays at that sparsity and
  batch size, measured rather than assumed.

Timings are medians of alternating blocks (`paired_timing.pair`) at each of
`batch_sizes`, so a change of load on a shared machine hits both sides of a
ratio; each side's fastest call is kept too. The dense network is also timed
against an identical copy of itself (an A-vs-A control per timed kind and
batch size): a speed-up within the factor that the control's rounds strayed
from 1x is marked as noise (`within_noise_<batch>`, `~` in the table).

Files (`reports.benchmark_table`): `graph_benchmark.csv` (accuracy, sparsity,
what was timed, the `.keras` and graph-file sizes, parameters and kernels:
byte-reproducible), `graph_timing.json` (the timings, the controls, the
machine and its load average before and after, and for a model file the
SHA-256 of its weights, to tell a rebuilt model from the one measured) and
`graph_benchmark.png`.
"""

import dataclasses
import json
import math
import os
import pathlib
import platform
import tempfile
from typing import Sequence

import numpy as np
import tensorflow as tf

from tfprune import __version__
from tfprune import atomic
from tfprune import registry
from tfprune import ziptags
from tfprune.criteria import importances
from tfprune.criteria import reconstruction
from tfprune.data import datasets
from tfprune.data import provenance
from tfprune.data import source as data_source
from tfprune.drivers import benchmark_timing
from tfprune.drivers import folder_graph
from tfprune.drivers import mobilenet_model
from tfprune.drivers import model_checks
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.errors import check_not_empty
from tfprune.graph import io as graph_io
from tfprune.graph import weights
from tfprune.graph.ir import Graph
from tfprune.keras_io import build
from tfprune.keras_io import load as keras_load
from tfprune.reports import benchmark_table
from tfprune.runtime import paired_timing

def check_network(weights_dir, model_file) -> None:
  """Exactly one of a weight folder and a model file, neither empty.

  Raises:
    TfpruneError: an empty path, or not exactly one of the two.
  """
  check_not_empty(model_file, '--model_file', 'a Keras model file')
  check_not_empty(weights_dir, '--weights_dir', 'a weight folder')
  if (weights_dir is None) == (model_file is None):
    raise TfpruneError('give either --weights_dir or --model_file, not both')


def check_network_and_methods(weights_dir, model_file, methods) -> None:
  """The checks of a timing run that draws no calibration data (`point_cost`).

  Raises:
    TfpruneError: not exactly one network source, no method, or an unknown
      method or one that needs calibration data.
  """
  check_network(weights_dir, model_file)
  if not methods:
    raise TfpruneError('no pruning method given: pass --methods such as '
                       'weight,unit')
  for method in methods:
    if importances.get(method).needs_calibration:
      raise TfpruneError(f'method {method!r} needs calibration data, which this '
                         'timing run does not draw: choose one of '
                         f'{",".join(importances.names(needs_calibration=False))}')


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
  """How a benchmark was run; saved in `graph_timing.json`.

  Attributes:
    out_dir: where the CSV, the timing JSON and the plot go.
    weights_dir: a weight folder (or None with `model_file`).
    model_file: a user's Keras model file.
    data: a user's `.npz` (x_test, y_test; x_train, y_train for data-aware
      methods) instead of `dataset`.
    dataset: registry dataset whose test split is used.
    data_dir: local data folder.
    methods: criteria of `importances.REGISTRY`.
    levels: levels k in percent.
    batch_sizes: the examples per timed call.
    min_seconds: each side of a pair runs at least this long per batch size.
    runs: timed calls per side, at least.
    calibration_size: training examples drawn for data-aware methods.
    allow_other_data: benchmark on other data than the network's files
      record, on purpose (`data.provenance`).
  """
  out_dir: str
  weights_dir: str | None = None
  model_file: str | None = None
  data: str | None = None
  dataset: str = 'mnist'
  data_dir: str | None = None
  methods: tuple[str, ...] = ('weight', 'unit')
  levels: tuple[float, ...] = (0, 50, 70, 90)
  batch_sizes: tuple[int, ...] = (1, 256)
  min_seconds: float = 1.0
  runs: int = 20
  calibration_size: int = reconstruction.DEFAULT_CALIBRATION_SIZE
  allow_other_data: bool = False

  def __post_init__(self):
    check_network(self.weights_dir, self.model_file)
    object.__setattr__(self, 'batch_sizes', registry.check_unique(
        (int(b) for b in self.batch_sizes), '--batch_sizes'))
    if not self.batch_sizes or min(self.batch_sizes) < 1:
      raise TfpruneError(f'batch_sizes must be at least 1 each, got '
                         f'{list(self.batch_sizes)}: pass e.g. --batch_sizes=1,256')
    if not math.isfinite(self.min_seconds) or self.min_seconds < 0:
      raise TfpruneError(f'min_seconds must be a number >= 0, got '
                         f'{self.min_seconds}: pass e.g. --min_seconds=1')
    if self.runs < 1:
      raise TfpruneError(f'runs must be at least 1, got {self.runs}: pass e.g. '
                         '--runs=20')
    checked = self.sweep_config()  # the methods and levels, as the sweep's
    object.__setattr__(self, 'methods', checked.methods)
    object.__setattr__(self, 'levels', checked.levels)

  def sweep_config(self) -> sweep.SweepConfig:
    """The sweep whose points are benchmarked (writes nothing)."""
    return sweep.SweepConfig(
        self.weights_dir, self.out_dir, self.dataset, self.data_dir,
        tuple(self.methods), tuple(self.levels),
        calibration_size=self.calibration_size, model_file=self.model_file,
        data=self.data, allow_other_data=self.allow_other_data)


def load_checked(config) -> tuple[Graph, datasets.Split, datasets.Split | None]:
  """The dense network as a graph, its test split and training split (if
  the data has one), shaped as the graph reads them and checked.

  `config` has the fields of `BenchmarkConfig` that name the network and
  the data (`point_cost.PointCostConfig` has them too); a model file's
  import is verified on the first test examples.

  Raises:
    TfpruneError: the network or the data fails its checks, or the data is
      not the one the network's files record.
  """
  allow = config.allow_other_data
  folder = None
  if config.weights_dir is not None:  # the folder first: it names its data
    folder = weights.load(config.weights_dir)
    if config.data is None and not allow:
      weights.check_made_for(folder, config.weights_dir, config.dataset)
  given = data_source.load(config.dataset, config.data_dir, config.data)
  if folder is None:
    graph, recorded = model_checks.import_model(config.model_file,
                                                given.test.images)
    given.check_made_on(recorded, config.model_file, allow)
  else:
    given.check_made_on(provenance.from_manifest(folder.manifest),
                        config.weights_dir, allow)
    graph = folder.graph
  test, train = (folder_graph.shaped(s, graph.input_shape)
                 for s in (given.test, given.train))
  data_source.fits(test, graph.input_shape, int(np.prod(graph.output_shape)),
                   given.name)
  return graph, test, train


def _keras_bytes(graph: Graph) -> int:
  with tempfile.TemporaryDirectory() as folder:
    return ziptags.save_keras(build.to_keras(graph),
                              pathlib.Path(folder) / 'm.keras').stat().st_size


def _rows(config: BenchmarkConfig, graph: Graph, test: datasets.Split,
          train: datasets.Split | None, executor: str
          ) -> tuple[list[dict], list[Graph]]:
  """The sweep's rows of every point (run by `executor`) and the graphs
  they describe, with what the benchmark times."""
  sweep_config = config.sweep_config()
  saved = []
  rows = sweep.sweep(sweep_config, graph, test,
                     sweep.calibration(sweep_config, train),
                     lambda method, k, g: saved.append(g), executor=executor)
  return [{'method': r.method, 'k': r.k, 'accuracy': r.accuracy,
           'sparsity': r.sparsity,
           'timed': ('compacted keras'
                     if importances.get(r.method).removes_channels
                     else 'masked graph'),
           'keras_bytes': _keras_bytes(g), 'graph_bytes': r.size_bytes,
           'params': g.num_params, 'nonzero_params': r.nonzero_params,
           'flops_speedup': r.flops_speedup, 'kernels': r.kernels}
          for r, g in zip(rows, saved)], saved


def run(config: BenchmarkConfig, executor: str = 'serial') -> dict:
  """Runs the benchmark; writes CSV, timing JSON and plot; returns the record.

  `executor` (a key of `runtime.executors.EXECUTORS`) measures the accuracy
  points; the CSV is the same bytes whichever does. The timings always run
  in this process, after them.
  """
  atomic.check_writable(config.out_dir)
  load_before = list(os.getloadavg())
  graph, test, train = load_checked(config)
  rows, saved = _rows(config, graph, test, train, executor)
  inputs = {b: np.resize(test.images, (b, *graph.input_shape)).astype(np.float32)
            for b in config.batch_sizes}
  timings, controls = benchmark_timing.time_rows(
      graph, [(r['method'], r['k'], r['timed'] == 'compacted keras', g)
              for r, g in zip(rows, saved)], inputs, config.runs,
      config.min_seconds)
  dense_bytes = {'keras_bytes': _keras_bytes(graph),
                 'graph_bytes': len(graph_io.to_bytes(graph)),
                 'params': graph.num_params}
  model_hash = {'model_weights_sha256': mobilenet_model.weights_sha256(
      keras_load.load_model(config.model_file))} if config.model_file else {}
  record = {
      'config': provenance.config_record(config), **model_hash,
      'machine': {**machine(), 'load_average_before': load_before},
      'dense': dense_bytes, 'timings': timings,
      'rounds': benchmark_timing.ROUNDS, 'controls': controls}
  with atomic.staging(config.out_dir) as out_dir:
    atomic.write_text(out_dir / benchmark_table.CSV_NAME,
                      benchmark_table.to_csv(rows))
    atomic.write_text(out_dir / benchmark_table.TIMING_NAME,
                      json.dumps(record, indent=2) + '\n')
    benchmark_table.plot(rows, timings, config.batch_sizes, dense_bytes,
                         out_dir / benchmark_table.PLOT_NAME)
  return {'rows': rows, **record}


def paired_model_times(baseline, candidate, input_shape: Sequence[int],
                       batch_sizes: Sequence[int], runs: int,
                       min_seconds: float = 1.0, rounds: int = 2,
                       seed: int = 0) -> dict[int, tuple[float, float]]:
  """Median seconds of a forward pass of two Keras models, per batch size.

  Each model is called through one `tf.function` (inference mode) on the same
  random batch, the two in alternating blocks (`paired_timing.pair`), so a
  change of load on a shared machine hits both sides of the ratio.

  Args:
    baseline: the reference Keras model (the dense one).
    candidate: the model compared with it (e.g. a compacted one).
    input_shape: shape of one example.
    batch_sizes: the batch sizes to time.
    runs: timed calls per model and batch size, at least.
    min_seconds: time each model runs for at least, per batch size.
    rounds: alternating blocks per model.
    seed: seeds the random inputs.

  Returns:
    batch size -> (baseline median seconds, candidate median seconds).
  """
  fns = [tf.function(m.__call__) for m in (baseline, candidate)]
  rng = np.random.default_rng(seed)
  out = {}
  for b in batch_sizes:
    x = tf.constant(rng.standard_normal((b, *input_shape)).astype(np.float32))
    timed = paired_timing.pair(lambda f=fns[0]: f(x), lambda f=fns[1]: f(x),
                               runs, min_seconds, rounds)
    out[b] = (timed.baseline_median, timed.candidate_median)
  return out


def machine() -> dict:
  """What a timing ran on: platform, CPU, cores, versions and the load average.

  The load average (1, 5, 15 minutes, as `uptime` prints it) tells how busy
  a shared machine was while the timings were taken.
  """
  return {'platform': platform.platform(), 'processor': cpu_name(),
          'cpu_count': os.cpu_count(), 'load_average': list(os.getloadavg()),
          'tensorflow': tf.__version__, 'tfprune': __version__}


def cpu_name() -> str:
  """The CPU model name (from /proc/cpuinfo), else `platform.processor()`."""
  try:
    for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
      if line.startswith('model name'):
        return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor()
