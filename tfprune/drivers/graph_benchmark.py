"""Benchmark of any graph (a CNN folder or a user's Keras model): accuracy, size, speed.

For each method and level k the network is pruned as the sweep prunes it and
measured against the dense network in the same run:

- `unit`: the compacted Keras model (coupled channels physically removed,
  `graph_compaction`) against the dense Keras model, both called through one
  `tf.function` each;
- `weight` (and other masks): the masked graph against the dense graph,
  both through the graph evaluator. A masked kernel is as large as a dense
  one, so no speed-up is expected: the row shows the timing noise.

Timings are medians of alternating A/B blocks (`paired_timing.pair`), at
batch 1 and at batch 256, so a change of load on a shared machine hits both
sides of each ratio; each side's fastest call is kept too (the spread). The
dense network is also timed against an identical copy of itself in the same
way (an A-vs-A control, per timed kind and batch size): a speed-up within
the factor of 1x that the control's rounds strayed is marked as noise
(`within_noise_<batch>`, `~` in the table). Sizes: the `.keras` file (`pruned_keras`: compacted for
units, masked otherwise) and the graph `.npz` (sparse arrays where smaller).
`graph_benchmark.csv` holds accuracies, sizes and the evaluator's kernel
per weighted node (`kernels`, as in the sweep; the masked graph's, which the
weight rows time) (byte-reproducible);
`graph_timing.json` the timings, the machine and its load average before and
after, and for a model file the SHA-256 of its weights (as the manifest of
`make_mobilenet.py` records it, to tell a rebuilt model from the one
measured); `graph_benchmark.png` accuracy against measured speed-up and
against file size, one curve per method.
"""

import csv
import dataclasses
import io
import json
import math
import os
import pathlib
import tempfile

import numpy as np
import tensorflow as tf

from tfprune import atomic
from tfprune import registry
from tfprune.criteria import graph_pruning
from tfprune.criteria import importances
from tfprune.data import datasets
from tfprune.data import provenance
from tfprune.data import source as data_source
from tfprune.drivers import benchmark
from tfprune.drivers import graph_sweep
from tfprune.drivers import mobilenet_model
from tfprune.drivers import model_checks
from tfprune.drivers import pruned_keras
from tfprune.drivers import sweep
from tfprune.errors import TfpruneError
from tfprune.errors import check_not_empty
from tfprune.graph import evaluator
from tfprune.graph import io as graph_io
from tfprune.graph import weights
from tfprune.graph.ir import Graph
from tfprune.keras_io import build
from tfprune.keras_io import load as keras_load
from tfprune.runtime import executors
from tfprune.runtime import paired_timing
from tfprune.transforms import channel_pruning

CSV_NAME = 'graph_benchmark.csv'
TIMING_NAME = 'graph_timing.json'
PLOT_NAME = 'graph_benchmark.png'
BATCHES = (1, 256)
# Alternating blocks per side: more than the MLP benchmark's, as one graph
# call is short and the shared machine's load changes within seconds.
ROUNDS = 6
COLUMNS = ('method', 'k', 'accuracy', 'sparsity', 'timed', 'keras_bytes',
           'graph_bytes', 'params', 'kernels')


def check_network_and_methods(weights_dir, model_file, methods) -> None:
  """The checks shared by the graph timing runs (this one and `point_cost`).

  Raises:
    TfpruneError: not exactly one of the two network sources, no method, or
      an unknown method or one that needs calibration data.
  """
  check_not_empty(model_file, '--model_file', 'a Keras model file')
  check_not_empty(weights_dir, '--weights_dir', 'a weight folder')
  if (weights_dir is None) == (model_file is None):
    raise TfpruneError('give either --weights_dir or --model_file, not both')
  if not methods:
    raise TfpruneError('no pruning method given: pass --methods such as '
                       'weight,unit')
  for method in methods:
    if importances.get(method).needs_calibration:
      raise TfpruneError(f'method {method!r} needs calibration data, which this '
                         'timing run does not draw: choose one of '
                         f'{",".join(importances.names(needs_calibration=False))}')


@dataclasses.dataclass(frozen=True)
class GraphBenchmarkConfig:
  """How a graph benchmark was run; saved in `graph_timing.json`.

  Attributes:
    out_dir: where the CSV, the timing JSON and the plot go.
    weights_dir: a CNN weight folder (or None with `model_file`).
    model_file: a user's Keras model file.
    data: a user's `.npz` (x_test, y_test) instead of `dataset`.
    dataset: registry dataset whose test split is used.
    data_dir: local data folder.
    methods: criteria of `importances.REGISTRY` that need no calibration.
    levels: levels k in percent.
    min_seconds: each side of a pair runs at least this long per batch size.
    runs: timed calls per side, at least.
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
  min_seconds: float = 1.0
  runs: int = 20
  allow_other_data: bool = False

  def __post_init__(self):
    check_network_and_methods(self.weights_dir, self.model_file, self.methods)
    object.__setattr__(self, 'methods', registry.check_unique(self.methods,
                                                              '--methods'))
    object.__setattr__(self, 'levels', registry.check_unique(sweep.parse_levels(
        [str(k) for k in self.levels]), '--levels'))
    if not math.isfinite(self.min_seconds) or self.min_seconds < 0 or self.runs < 1:
      raise TfpruneError(f'min_seconds must be >= 0 and runs >= 1, got '
                         f'{self.min_seconds} and {self.runs}')


def load_checked(config) -> tuple[Graph, datasets.Split]:
  """The dense network (a weight folder or a Keras model file) as a graph and
  its test split, both checked (`data.source`, `model_checks`).

  `config` has the fields of `GraphBenchmarkConfig` that name the network
  and the data (`point_cost.PointCostConfig` has them too); the model file's import
  is verified on the first test examples.

  Raises:
    TfpruneError: the network or the data fails its checks, or the data is
      not the one the network's files record.
  """
  allow = config.allow_other_data
  if config.weights_dir is not None and config.data is None and not allow:
    folder = weights.load(config.weights_dir)
    weights.check_made_for(folder, config.weights_dir, config.dataset)
  given = data_source.load(config.dataset, config.data_dir, config.data)
  if config.model_file is not None:
    graph, recorded = model_checks.import_model(config.model_file,
                                                given.test.images)
    given.check_made_on(recorded, config.model_file, allow)
  else:
    folder = weights.load(config.weights_dir)
    given.check_made_on(provenance.from_manifest(folder.manifest),
                        config.weights_dir, allow)
    graph = folder.graph
  data_source.fits(given.test, graph.input_shape,
                   int(np.prod(graph.output_shape)), given.name)
  return graph, given.test


def _keras_fn(graph: Graph, x: np.ndarray):
  model = build.to_keras(graph, 'tf_keras')
  call = tf.function(lambda t: model(t, training=False))
  tensor = tf.constant(x)
  return lambda: call(tensor).numpy()


def _graph_fn(graph: Graph, x: np.ndarray):
  run = evaluator.Evaluator(graph)
  return lambda: run.predict(x)


@dataclasses.dataclass(frozen=True)
class _Payload:
  """What every accuracy point of a benchmark reads."""
  graph: Graph
  names: tuple[str, ...]
  test: datasets.Split


def _prepare(payload: _Payload) -> tuple[_Payload, evaluator.Evaluator]:
  return payload, evaluator.Evaluator(payload.graph)


def _trial(context: tuple[_Payload, evaluator.Evaluator],
           point: tuple[str, float]) -> tuple[dict, Graph]:
  """One (method, k) pruned and measured: its CSV row and the graph it times."""
  payload, dense_eval = context
  method, k = point
  masked = channel_pruning.prune_graph(payload.graph, method, k, payload.names)
  structured = importances.get(method).removes_channels
  saved = graph_sweep.saved_graph(masked, method)
  kernels = [masked.node(n).params['kernel'] for n in payload.names]
  test = payload.test
  return {
      'method': method, 'k': k,
      'accuracy': dense_eval.accuracy(test.images, test.labels, masked),
      'sparsity': sum(int(np.sum(w == 0)) for w in kernels) / sum(
          w.size for w in kernels),
      'timed': 'compacted keras' if structured else 'masked graph',
      'keras_bytes': _keras_bytes(saved),
      'graph_bytes': len(graph_io.to_bytes(saved)),
      'params': saved.num_params,
      'kernels': '+'.join(dense_eval.kinds(masked))}, saved


def _keras_bytes(graph: Graph) -> int:
  with tempfile.TemporaryDirectory() as folder:
    return pruned_keras.save(graph, pathlib.Path(folder) / 'm.keras').stat().st_size


def run(config: GraphBenchmarkConfig, executor: str = 'serial') -> dict:
  """Runs the benchmark; writes CSV, timing JSON and plot; returns the record.

  `executor` (a key of `runtime.executors.EXECUTORS`) measures the accuracy
  points (`_trial`); the CSV is the same bytes whichever does. The timings
  always run in this process, after them.
  """
  atomic.check_writable(config.out_dir)
  load_before = list(os.getloadavg())
  graph, test = load_checked(config)
  names = graph_pruning.prunable(graph)
  inputs = {b: np.resize(test.images, (b, *graph.input_shape)).astype(np.float32)
            for b in BATCHES}
  dense = {'keras': {b: _keras_fn(graph, x) for b, x in inputs.items()},
           'graph': {b: _graph_fn(graph, x) for b, x in inputs.items()}}
  rows, timings, controls = [], [], {}

  def control(timed: str, b: int) -> paired_timing.Pair:
    """The dense network against an identical copy (A vs A), timed once."""
    if (timed, b) not in controls:
      make = _keras_fn if timed == 'keras' else _graph_fn
      controls[timed, b] = paired_timing.pair(
          dense[timed][b], make(graph, inputs[b]), config.runs,
          config.min_seconds, ROUNDS)
    return controls[timed, b]

  points = [(method, k) for method in config.methods for k in config.levels]
  # The accuracy points first, as trials (`executor`), then the timings here,
  # alone on the machine.
  measured = list(executors.map_trials(
      executor, _prepare, _trial, _Payload(graph, tuple(names), test), points))
  for (method, k), (row, saved) in zip(points, measured):
    structured = importances.get(method).removes_channels
    timed = 'keras' if structured else 'graph'
    rows.append(row)
    make = _keras_fn if structured else _graph_fn
    entry = {'method': method, 'k': k, 'timed': timed}
    for b, x in inputs.items():
      noise = control(timed, b).noise()
      timed_pair = paired_timing.pair(dense[timed][b], make(saved, x),
                                      config.runs, config.min_seconds, ROUNDS)
      entry.update({
          f'dense_seconds_{b}': timed_pair.baseline_median,
          f'seconds_{b}': timed_pair.candidate_median,
          f'speedup_{b}': timed_pair.speedup,
          f'dense_min_seconds_{b}': timed_pair.baseline_min,
          f'min_seconds_{b}': timed_pair.candidate_min,
          f'speedup_of_min_{b}': timed_pair.speedup_of_min,
          f'noise_{b}': noise,
          f'within_noise_{b}': paired_timing.within_noise(
              timed_pair.speedup, noise)})
    timings.append(entry)
  dense_bytes = {'keras_bytes': _keras_bytes(graph),
                 'graph_bytes': len(graph_io.to_bytes(graph))}
  model_hash = {'model_weights_sha256': mobilenet_model.weights_sha256(
      keras_load.load_model(config.model_file))} if config.model_file else {}
  record = {
      'config': provenance.config_record(config), **model_hash,
      'machine': {**benchmark.machine(), 'load_average_before': load_before},
      'dense': dense_bytes, 'timings': timings,
      'controls': [{'timed': timed, 'batch': b, 'speedup': c.speedup,
                    'round_ratios': list(c.round_ratios), 'noise': c.noise()}
                   for (timed, b), c in controls.items()]}
  with atomic.staging(config.out_dir) as out_dir:
    atomic.write_text(out_dir / CSV_NAME, to_csv(rows))
    atomic.write_text(out_dir / TIMING_NAME, json.dumps(record, indent=2) + '\n')
    plot(rows, timings, dense_bytes, out_dir / PLOT_NAME)
  return {'rows': rows, **record}


def to_csv(rows) -> str:
  """The rows (no timings) as CSV text."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  writer.writerow(COLUMNS)
  for r in rows:
    writer.writerow([r['method'], f'{r["k"]:g}', f'{r["accuracy"]:.4f}',
                     f'{r["sparsity"]:.6f}', r['timed'], r['keras_bytes'],
                     r['graph_bytes'], r['params'], r['kernels']])
  return out.getvalue()


def format_table(record: dict) -> str:
  """Accuracy, sizes and median speed-ups per row, for the terminal.

  A speed-up within the noise of identical runs (the A-vs-A control) is
  marked `~`; the last lines give each control's range.
  """
  lines = [f'{"method":<7} {"k":>4} {"acc":>7} {".keras":>10} {"graph":>10} '
           + ' '.join(f'{"x@" + str(b):>8}' for b in BATCHES) + '  timed']
  for r, t in zip(record['rows'], record['timings']):
    lines.append(f'{r["method"]:<7} {r["k"]:>4g} {100 * r["accuracy"]:>6.2f}% '
                 f'{r["keras_bytes"]:>10,} {r["graph_bytes"]:>10,} ' + ' '.join(
                     f'{t[f"speedup_{b}"]:>6.2f}x'
                     + ('~' if t[f'within_noise_{b}'] else ' ')
                     for b in BATCHES) + f'  {r["timed"]}')
  lines.append(f'speed-ups: median over {ROUNDS} alternated rounds; ~ marks '
               'one within the noise of identical runs (dense vs dense):')
  for c in record['controls']:
    lines.append(f'  {c["timed"]} batch {c["batch"]}: identical runs gave '
                 f'{1 / c["noise"]:.2f}x-{c["noise"]:.2f}x in their rounds')
  return '\n'.join(lines)


def plot(rows, timings, dense_bytes, path: pathlib.Path) -> pathlib.Path:
  """Accuracy against measured speed-up (batch 1, 256) and against file size."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
  for method in dict.fromkeys(r['method'] for r in rows):
    picked = [(r, t) for r, t in zip(rows, timings) if r['method'] == method]
    accuracy = [100 * r['accuracy'] for r, _ in picked]
    for ax, b in zip(axes, BATCHES):
      ax.plot([t[f'speedup_{b}'] for _, t in picked], accuracy, marker='o',
              label=method)
    axes[2].plot([r['keras_bytes'] / 1e3 for r, _ in picked], accuracy,
                 marker='o', label=method)
  for ax, b in zip(axes, BATCHES):
    ax.set_xlabel(f'measured speed-up over dense, batch {b} (median, x)')
    ax.axvline(1.0, color='grey', lw=0.8)
  axes[2].set_xlabel('.keras file size (kB)')
  axes[2].axvline(dense_bytes['keras_bytes'] / 1e3, color='grey', lw=0.8)
  for ax in axes:
    ax.set_ylabel('test accuracy (%)')
    ax.grid(True, alpha=0.3)
  axes[0].legend()
  fig.tight_layout()
  with atomic.replacing(path) as tmp:
    fig.savefig(tmp, format='png', dpi=100)
  plt.close(fig)
  return path


def is_graph_folder(weights_dir: str) -> bool:
  """True if the weight folder holds a CNN (benchmarked as a graph)."""
  return weights.load(weights_dir).network.specs is not None
