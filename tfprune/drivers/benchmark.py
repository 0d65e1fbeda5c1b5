"""Benchmark: what pruning buys in speed and size, as ratios to the dense network.

For each method and level: accuracy, non-zero parameters, bytes of the compact
export, and measured throughput of the pruned network (compacted, CSR where it
pays) at a batch of 10,000 and at a batch of 1, each divided by the dense
network's figure measured in the same run. The dense baseline is the faster
of the graph evaluator (`graph.evaluator`) and a dense inference plan, and every pruned
network is timed in alternating blocks with it (`paired_times`), so a change
of load on a shared machine hits both sides of each ratio. Also times the
default sweep in-process against 20 dense forward passes, the same way.
"""

import dataclasses
import json
import math
import os
import pathlib
import platform
import statistics
from typing import Sequence

import numpy as np
import tensorflow as tf

from tfprune import __version__
from tfprune import atomic
from tfprune.criteria import methods
from tfprune.criteria import pruning
from tfprune.data import provenance
from tfprune.data import source as data_source
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import network_graph
from tfprune.graph import weights
from tfprune.runtime import accuracy
from tfprune.runtime import export
from tfprune.runtime import inference
from tfprune.runtime import timers
from tfprune.runtime import metrics
from tfprune.runtime import paired_timing

JSON_NAME = 'benchmark.json'
PLOT_NAME = 'benchmark.png'
LARGE_BATCH = 10_000
PAIRED_ROUNDS = 2


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
  """How a benchmark was run; saved in `benchmark.json`.

  Attributes:
    weights_dir: the dense weight folder.
    out_dir: where `benchmark.json` and `benchmark.png` go.
    dataset: test split used for accuracy and as inputs.
    data_dir: local data folder (None: `$TFPRUNE_DATA_DIR`, then tfds).
    methods: methods to benchmark.
    levels: levels k in percent.
    repeats: timed runs per measurement at the large batch, at least (best is
      kept; fast networks get more runs, see `_best`).
    single_repeats: timed single-example runs (median is kept).
    calibration_size: training examples for data-aware methods.
    min_seconds: each timed function runs for at least this long per
      measurement (more runs for fast networks; see `paired_times`).
    data: a user's `.npz` (`user_data`) instead of the registry `dataset`.
    allow_other_data: benchmark on other data than the folder records, on
      purpose (`data.provenance`).
  """
  weights_dir: str
  out_dir: str
  dataset: str = 'mnist'
  data_dir: str | None = None
  methods: tuple[str, ...] = sweep.DEFAULT_METHODS
  levels: tuple[float, ...] = sweep.DEFAULT_LEVELS
  repeats: int = 3
  single_repeats: int = 200
  calibration_size: int = sweep.reconstruction.DEFAULT_CALIBRATION_SIZE
  min_seconds: float = 1.0
  data: str | None = None
  allow_other_data: bool = False

  def __post_init__(self):
    self.sweep_config()  # validates the shared fields
    if self.repeats < 1 or self.single_repeats < 1:
      raise TfpruneError('repeats and single_repeats must be at least 1')
    if not math.isfinite(self.min_seconds) or self.min_seconds < 0:
      raise TfpruneError(f'min_seconds must be a number >= 0, got '
                         f'{self.min_seconds}: pass e.g. --min_seconds=1')

  def sweep_config(self) -> sweep.SweepConfig:
    """The sweep configuration of the benchmarked methods and levels."""
    return sweep.SweepConfig(self.weights_dir, self.out_dir, self.dataset,
                             self.data_dir, self.methods, self.levels,
                             calibration_size=self.calibration_size,
                             data=self.data,
                             allow_other_data=self.allow_other_data)


def _best(fn, repeats: int, min_seconds: float) -> float:
  """Fastest of at least `repeats` runs, and of enough to fill `min_seconds`.

  A 20 ms pass timed 3 times is at the mercy of one scheduler hiccup; fast
  networks therefore get proportionally more runs than slow ones.
  """
  first = min(timers.timings(fn, 1))
  more = max(repeats - 1, math.ceil(min_seconds / max(first, 1e-6)) - 1)
  return min([first] + timers.timings(fn, more))


def _median(fn, repeats: int) -> float:
  return statistics.median(timers.timings(fn, repeats))


def _plan_times(plan: inference.Plan, large, single,
                config: 'BenchmarkConfig') -> tuple[float, float]:
  return (_best(lambda: inference.run(plan, large), config.repeats,
                config.min_seconds),
          _median(lambda: inference.run(plan, single), config.single_repeats))


def paired_times(baseline, candidate, runs: int, min_seconds: float,
                 summary=min, rounds: int = PAIRED_ROUNDS) -> tuple[float, float]:
  """Times two functions in alternating blocks; returns each one's summary.

  A baseline timed minutes earlier can be twice as fast as one timed now on
  a shared machine; `timers.interleaved_timings` keeps the ratio honest.

  Args:
    baseline: the reference function (the dense network).
    candidate: the function compared with it (a pruned network).
    runs: timed calls per function in all, split evenly over the rounds; each
      function gets more when one call is short.
    min_seconds: time each function is run for at least, in all.
    summary: reduces a function's run times to one number (min or median).
    rounds: blocks per function.
  """
  fns = (baseline, candidate)
  per_block = paired_timing.calls_per_block(fns, runs, min_seconds, rounds)
  times = timers.interleaved_timings(fns, per_block, rounds)
  return summary(times[0]), summary(times[1])


def paired_model_times(baseline, candidate, input_shape: Sequence[int],
                       batch_sizes: Sequence[int], runs: int,
                       min_seconds: float = 1.0, rounds: int = PAIRED_ROUNDS,
                       seed: int = 0) -> dict[int, tuple[float, float]]:
  """Median seconds of a forward pass of two Keras models, per batch size.

  Each model is called through one `tf.function` (inference mode) on the same
  random batch, the two in alternating blocks (`paired_times`), so a change of
  load on a shared machine hits both sides of the ratio.

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
    out[b] = paired_times(lambda f=fns[0]: f(x), lambda f=fns[1]: f(x), runs,
                          min_seconds, statistics.median, rounds)
  return out


def run(config: BenchmarkConfig) -> dict:
  """Runs the benchmark, writes JSON and plot to `config.out_dir`, returns the record."""
  atomic.check_writable(config.out_dir)  # made only to write the results
  folder = weights.load(config.weights_dir)
  dense = folder.network
  if config.data is None and not config.allow_other_data:
    weights.check_made_for(folder, config.weights_dir, config.dataset)
  given = data_source.load(config.dataset, config.data_dir, config.data)
  given.check_made_on(provenance.from_manifest(folder.manifest),
                      config.weights_dir, config.allow_other_data)
  split = given.test
  data_source.fits_flat(split, dense.input_dim, dense.output_dim, given.name)
  data_source.fits_flat(given.train, dense.input_dim, dense.output_dim,
                        given.name, 'train')
  images = split.images[:LARGE_BATCH]
  large = inference.prepare(images, dense.input_dim)
  single = inference.prepare(images[:1], dense.input_dim)

  # Dense baseline: the faster of the graph evaluator and a dense plan.
  dense_graph = network_graph.to_graph(dense)
  graph_eval = evaluator.Evaluator(dense_graph)
  graph_large = accuracy.as_input(dense_graph, images)
  graph_single = graph_large[:1]
  evaluator_large = _best(lambda: graph_eval.predict(graph_large), config.repeats,
                          config.min_seconds)
  evaluator_single = _median(lambda: graph_eval.predict(graph_single),
                             config.single_repeats)
  dense_plan = inference.plan(dense, allow_sparse=False)
  plan_large, plan_single = _plan_times(dense_plan, large, single, config)
  # Each row is timed against the faster dense forward, in alternating blocks.
  dense_large_fn = (
      (lambda: graph_eval.predict(graph_large)) if evaluator_large < plan_large
      else (lambda: inference.run(dense_plan, large)))
  dense_single_fn = (
      (lambda: graph_eval.predict(graph_single)) if evaluator_single < plan_single
      else (lambda: inference.run(dense_plan, single)))
  dense_bytes = metrics.npy_folder_bytes(dense)
  dense_counts = metrics.total(metrics.layer_counts(dense))

  calibration = sweep.calibration(config.sweep_config(), given.train)
  layers = pruning.prunable_layers(dense.num_layers)
  # A-vs-A controls: the dense forward against itself, alternated the same
  # way; how far their rounds stray from 1x is the noise of identical runs.
  noise = {LARGE_BATCH: paired_timing.pair(
               dense_large_fn, dense_large_fn, config.repeats,
               config.min_seconds, PAIRED_ROUNDS).noise(),
           1: paired_timing.pair(
               dense_single_fn, dense_single_fn, config.single_repeats,
               config.min_seconds, PAIRED_ROUNDS).noise()}
  rows = []
  for method in config.methods:
    for k in config.levels:
      pruned = methods.prune(method, dense, k, layers, calibration)
      plan = inference.plan(pruned)
      large_pair = paired_timing.pair(
          dense_large_fn, lambda p=plan: inference.run(p, large),
          config.repeats, config.min_seconds, PAIRED_ROUNDS)
      single_pair = paired_timing.pair(
          dense_single_fn, lambda p=plan: inference.run(p, single),
          config.single_repeats, config.min_seconds, PAIRED_ROUNDS)
      # Batch 10,000: the fastest calls (as before); batch 1: the medians.
      d_large, t_large = large_pair.baseline_min, large_pair.candidate_min
      d_single, t_single = single_pair.baseline_median, single_pair.candidate_median
      counts = metrics.total(metrics.layer_counts(pruned))
      rows.append({
          'method': method, 'k': k,
          'accuracy': inference.accuracy(plan, large, split.labels[:LARGE_BATCH]),
          'kernels': '+'.join(plan.kinds),
          'nonzero_ratio': counts.nonzero_params / dense_counts.params,
          'export_size_ratio': len(export.to_bytes(plan.network)) / dense_bytes,
          'compressed_size_ratio': metrics.compressed_bytes(pruned) / dense_bytes,
          'dense_seconds_10000': d_large,
          'seconds_10000': t_large,
          'throughput_ratio_10000': d_large / t_large,
          'dense_seconds_1': d_single,
          'seconds_1': t_single,
          'throughput_ratio_1': d_single / t_single,
          # The spread: the other summary of the same alternated calls.
          'median_throughput_ratio_10000': large_pair.speedup,
          'min_throughput_ratio_1': single_pair.speedup_of_min,
          'within_noise_10000': paired_timing.within_noise(
              d_large / t_large, noise[LARGE_BATCH]),
          'within_noise_1': paired_timing.within_noise(d_single / t_single,
                                                       noise[1]),
          'theoretical_speedup': dense_counts.dense_macs / max(1, metrics.total(
              metrics.layer_counts(plan.network)).effective_macs),
      })

  default_sweep = sweep.SweepConfig(config.weights_dir, config.out_dir,
                                    config.dataset, config.data_dir,
                                    data=config.data)
  # Also timed in alternating blocks with the dense forward pass; the first
  # (untimed) sweep measures any crossover the rows above did not need.
  dense_seconds, sweep_seconds = paired_times(
      dense_large_fn, lambda: sweep.sweep(default_sweep, dense, split), 2,
      config.min_seconds)
  record = {
      'config': provenance.config_record(config),
      'machine': machine(),
      'dense': {'accuracy': accuracy.accuracy(dense_graph, images,
                                              split.labels[:LARGE_BATCH]),
                'seconds_10000_evaluator': evaluator_large,
                'seconds_10000_plan': plan_large,
                'seconds_1_evaluator': evaluator_single,
                'seconds_1_plan': plan_single,
                'npy_folder_bytes': dense_bytes},
      'default_sweep': {'points': len(default_sweep.methods) * len(default_sweep.levels),
                        'seconds': sweep_seconds,
                        'dense_forward_seconds': dense_seconds,
                        'ratio_to_20_dense_forwards': sweep_seconds / (20 * dense_seconds)},
      'rows': rows,
      'noise': {'rounds': PAIRED_ROUNDS, 'batch_10000': noise[LARGE_BATCH],
                'batch_1': noise[1]},
  }
  out_dir = atomic.ensure_dir(config.out_dir)
  atomic.write_text(out_dir / JSON_NAME, json.dumps(record, indent=2) + '\n')
  plot(record, out_dir / PLOT_NAME)
  return record


def format_table(record: dict) -> str:
  """The benchmark rows as a fixed-width table for the terminal."""
  lines = [f'{"method":<7} {"k":>4} {"acc":>7} {"nonzero":>8} {"export":>7} '
           f'{"thr@10k":>8} {"thr@1":>6}  kernels']
  for r in record['rows']:
    lines.append(
        f'{r["method"]:<7} {r["k"]:>4g} {100 * r["accuracy"]:>6.2f}% '
        f'{r["nonzero_ratio"]:>8.3f} {r["export_size_ratio"]:>7.3f} '
        f'{r["throughput_ratio_10000"]:>7.2f}x'
        f'{"~" if r["within_noise_10000"] else " "}'
        f'{r["throughput_ratio_1"]:>5.2f}x{"~" if r["within_noise_1"] else " "} '
        f'{r["kernels"]}')
  n = record['noise']
  lines.append(f'~ within the noise of identical runs (dense vs dense, '
               f'{n["rounds"]} alternated rounds): {1 / n["batch_10000"]:.2f}x-'
               f'{n["batch_10000"]:.2f}x at batch 10,000, {1 / n["batch_1"]:.2f}x-'
               f'{n["batch_1"]:.2f}x at batch 1')
  s = record['default_sweep']
  lines.append(f'default sweep ({s["points"]} points): {s["seconds"]:.2f} s = '
               f'{s["ratio_to_20_dense_forwards"]:.2f} x the time of 20 dense '
               'forward passes')
  return '\n'.join(lines)


def plot(record: dict, path: pathlib.Path) -> pathlib.Path:
  """Throughput ratios (batch 10,000 and 1) and size ratio against k."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
  keys = [('throughput_ratio_10000', 'throughput vs dense, batch 10,000 (x)'),
          ('throughput_ratio_1', 'throughput vs dense, batch 1 (x)'),
          ('export_size_ratio', 'export size / dense .npy size')]
  for ax, (key, title) in zip(axes, keys):
    for method in dict.fromkeys(r['method'] for r in record['rows']):
      points = [r for r in record['rows'] if r['method'] == method]
      ax.plot([p['k'] for p in points], [p[key] for p in points], marker='o',
              label=method)
    ax.set_title(title)
    ax.set_xlabel('k (%)')
    ax.grid(True, alpha=0.3)
    if key != 'export_size_ratio':
      ax.set_yscale('log')
      ax.axhline(1.0, color='grey', lw=0.8)
  axes[0].legend()
  fig.tight_layout()
  with atomic.replacing(path) as tmp:
    fig.savefig(tmp, format='png', dpi=100)
  plt.close(fig)
  return path


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
