"""Study B: what pruning LeNet-5 really buys, per method and per-layer level.

For each arm of `lenet_config.ARMS` (random, l1, structured_l1)
and each per-layer level k, the trained LeNet-5 runs K prune-finetune cycles
with TF-MOT: cycle c wraps the pruned layers (conv1, conv2, fc1, fc2; not the
output layer) with `tfmot.sparsity.keras.prune_low_magnitude`, finetunes
(Adam, `finetune.fit`, with `UpdatePruningStep`) and strips the wrappers
(`strip_pruning`); the plain model goes on to the next cycle, and after the
last one it is imported as a graph. The level of cycle c is
k·c/K:

- l1: TF-MOT's own per-layer magnitude pruning, one mask update on the
  cycle's first training step (`schedules.first_step`, sparsity k·c/(100K)),
  so each layer loses exactly `schedules.tfmot_pruned_count` weights (TF-MOT
  keeps round(n·(1 - s)) of n, at least one). Weights pruned in earlier
  cycles are zero, hence the smallest, so masks only shrink.
- random, structured_l1: TF-MOT has no random or filter criterion, so
  `lenet_cycles.layer_masks` computes the masks with the registry's `random`
  and `filter_l1` on the model's graph (exact counts, only shrinking)
  and `tfmot_masks.inject` writes them into the wrappers under
  `schedules.FixedMask`, a schedule that never updates them: the wrapper
  applies weight·mask on every training step, as for its own masks.
  TF-MOT masks kernels only, never biases, but a pruned filter or unit must
  also have a zero bias to output exactly 0 (and be removed by compaction);
  for structured_l1 a `masking.KeepMasked` callback holds the pruned units'
  biases at zero (at the start and after every batch, so every forward pass
  sees them at zero), and touches nothing else. Having the wrapper mask the
  bias too would mean overriding `get_prunable_weights`, which TF-MOT's
  registry sets on the wrapped layer object itself, so the override would
  leak into the next cycle's wrappers.

After every cycle `check_cycle` measures each pruned layer and raises
TfpruneError unless its zero weights (in the stripped kernel and in the
wrapper's mask) are exactly what the criterion asked for, no weight pruned
before came back, and structured pruned units have zero biases.

Every network is measured as a graph (`from_keras` of the Keras model,
verified against it): accuracy (graph evaluator), non-zero parameters, FLOPs
(multiply-adds skipping zeros, and of the compacted graph;
`costs.layer_counts`), file sizes (`.npy` arrays, compressed,
compacted) as ratios to the dense model; compaction removes the silent
channels (`silent_channels.compact`: zero kernel and zero output, as a
structured_l1 unit with its bias held at 0). Writes study_b.csv (exact, so an
identical run writes identical bytes), timing.json (measured inference time
of the masked and compacted graphs as ratios to the dense one, and the
machine), study_b_config.json and study_b.png.
"""

import csv
import dataclasses
import json
import pathlib

import numpy as np

from tfprune import atomic
from tfprune.criteria import graph_pruning
from tfprune.data import datasets
from tfprune.graph import ops
from tfprune.graph import weights
from tfprune.graph.evaluator import Evaluator
from tfprune.graph.ir import Graph
from tfprune.keras_compat import keras
from tfprune.keras_io import models
from tfprune.keras_io.importer import from_keras
from tfprune.runtime import costs
from tfprune.runtime import timers
from experiments.studies import lenet_cycles
from experiments.studies import timing
from experiments.studies.lenet_config import StudyBConfig
from tfprune.transforms import silent_channels

COLUMNS = ('method', 'k', 'accuracy', 'nonzero_params', 'params_ratio',
           'flops_ratio', 'compact_flops_ratio', 'npy_bytes_ratio',
           'compressed_bytes_ratio', 'compact_npy_bytes_ratio')


def interleaved_seconds(graphs: dict[str, Graph], images: np.ndarray,
                        repeats: int) -> dict[str, float]:
  """Fastest pass of each graph's evaluator over `images`, timed in turn.

  Interleaving (round-robin) makes a change of load from other processes
  hit every graph alike, so the ratios stay meaningful on a shared machine.
  """
  fns = [lambda e=Evaluator(g): e.predict(images) for g in graphs.values()]
  for fn in fns:
    fn()  # traces the tf.function once
  times = timers.interleaved_timings(fns, [1] * len(fns), repeats)
  return {name: min(t) for name, t in zip(graphs, times)}


def lenet_graph(config: StudyBConfig) -> tuple[keras.Model, Graph]:
  """The trained LeNet-5 as a Keras model and as its verified graph."""
  folder = weights.load(config.weights_dir)
  spec = datasets.get('mnist')
  model = models.get('lenet5')(spec.image_shape, spec.num_classes)
  models.with_weights(model, folder.graph)
  return model, from_keras(model)


def structured_l1(graph: Graph, k: float, names) -> Graph:
  """`graph` with the structured_l1 arm applied once at level k on `names`.

  Each node loses the units the registry's `filter_l1` criterion prunes:
  their kernel slices and biases are set to 0, as the study's cycles leave
  them (LeNet-5 has no batch norm), so the units are silent.
  """
  changes = {}
  for name in names:
    node = graph.node(name)
    kernel = node.params['kernel']
    axis = ops.get(node.op).kernels['kernel']
    keep = graph_pruning.kernel_mask('filter_l1', kernel, k, axis)
    units = np.moveaxis(keep, axis, -1).reshape(-1, kernel.shape[axis]).any(axis=0)
    changes[name] = {'kernel': np.where(keep, kernel, np.float32(0)),
                     'bias': np.where(units, node.params['bias'], np.float32(0))}
  return graph.with_params(changes)


def timing_table(config: StudyBConfig) -> list[dict]:
  """Interleaved inference time of structured-compacted LeNet-5 vs dense.

  The compacted shapes depend only on k (floor(k·m/100) units go), not on
  finetuning, so the trained weights pruned without finetuning time exactly
  like the study's graphs. Writes study_b_timing.json (timings, with the
  compacted FLOPs ratio for reference, and the machine).
  """
  atomic.check_writable(config.out_dir)  # made only to write the results
  model, graph = lenet_graph(config)
  names = lenet_cycles.pruned_names(model, range(len(graph.weighted()) - 1))
  test = datasets.load('mnist', 'test', config.data_dir)
  dense = costs.total(costs.layer_counts(graph))
  rows = []
  for k in config.levels:
    masked = structured_l1(graph, k, names)
    compact = silent_channels.compact(masked)
    seconds = interleaved_seconds({'dense': graph, 'masked': masked,
                                   'compact': compact}, test.images,
                                  config.timing_repeats)
    counts = costs.total(costs.layer_counts(compact))
    rows.append({'k': k, 'dense_seconds': round(seconds['dense'], 4),
                 'masked_time_ratio': round(seconds['masked'] / seconds['dense'], 3),
                 'compact_time_ratio': round(seconds['compact'] / seconds['dense'], 3),
                 'compact_flops_ratio': round(counts.dense_macs / dense.dense_macs, 4)})
    print(rows[-1], flush=True)
  out = atomic.ensure_dir(config.out_dir)
  timing.write(out / 'study_b_timing.json', {
      'method': (f'fastest of {config.timing_repeats} passes of the graph '
                 'evaluator over the 10,000 test images, dense, masked and '
                 'compacted timed in turn'),
      'rows': rows})
  return rows


def _seconds(graph: Graph, images: np.ndarray, repeats: int) -> float:
  # The fastest pass: the least disturbed by other processes on a shared CPU.
  evaluator = Evaluator(graph)
  return min(timers.timings(lambda: evaluator.predict(images), repeats))


def _point(method, k, graph, compact, dense, test):
  """The exact columns of one row (no timings)."""
  counts = costs.total(costs.layer_counts(graph))
  compact_counts = costs.total(costs.layer_counts(compact))
  ratio = lambda a, b: round(a / b, 4)
  return {
      'method': method, 'k': k,
      'accuracy': round(Evaluator(graph).accuracy(test.images, test.labels), 6),
      'nonzero_params': counts.nonzero_params,
      'params_ratio': ratio(counts.nonzero_params, dense['params']),
      'flops_ratio': ratio(counts.effective_macs, dense['macs']),
      'compact_flops_ratio': ratio(compact_counts.dense_macs, dense['macs']),
      'npy_bytes_ratio': ratio(costs.npy_bytes(graph), dense['npy']),
      'compressed_bytes_ratio': ratio(costs.compressed_bytes(graph),
                                      dense['compressed']),
      'compact_npy_bytes_ratio': ratio(costs.npy_bytes(compact),
                                       dense['npy']),
  }


def _times(graph, compact, dense, test, repeats):
  ratio = lambda a, b: round(a / b, 4)
  return {'masked_time_ratio': ratio(_seconds(graph, test.images, repeats),
                                     dense['seconds']),
          'compact_time_ratio': ratio(_seconds(compact, test.images, repeats),
                                      dense['seconds'])}


def measure(graph: Graph) -> dict:
  """The dense reference of the ratios: params, MACs and bytes of `graph`."""
  counts = costs.total(costs.layer_counts(graph))
  return {'params': counts.nonzero_params, 'macs': counts.dense_macs,
          'npy': costs.npy_bytes(graph),
          'compressed': costs.compressed_bytes(graph)}


def run(config: StudyBConfig) -> list[dict]:
  """Runs Study B and writes its results; returns the CSV rows."""
  atomic.check_writable(config.out_dir)  # made only to write the results
  model, graph = lenet_graph(config)
  dense_weights = model.get_weights()
  test = datasets.load('mnist', 'test', config.data_dir)
  train = datasets.load('mnist', 'train', config.data_dir, config.train_limit)
  dense = {**measure(graph),
           'seconds': _seconds(graph, test.images, config.timing_repeats)}
  layers = list(range(len(graph.weighted()) - 1))
  rows = [_point('dense', 0, graph, graph, dense, test)]
  times = [{'method': 'dense', 'k': 0,
            **_times(graph, graph, dense, test, config.timing_repeats)}]
  for method in config.methods:
    for k in config.levels:
      keras.utils.set_random_seed(config.seed)
      model.set_weights(dense_weights)
      pruned = from_keras(
          lenet_cycles.prune_finetune(model, method, k, layers, train, config))
      compact = silent_channels.compact(pruned)
      rows.append(_point(method, k, pruned, compact, dense, test))
      times.append({'method': method, 'k': k, **_times(
          pruned, compact, dense, test, config.timing_repeats)})
      r, t = rows[-1], times[-1]
      print(f'{method} k={k:g}%: {100 * r["accuracy"]:.2f}%, params x'
            f'{r["params_ratio"]}, compact time x{t["compact_time_ratio"]}',
            flush=True)
  with atomic.staging(config.out_dir) as stage:
    timing.write(stage / 'timing.json', {
        'method': (f'fastest of {config.timing_repeats} passes of the graph '
                   'evaluator over the test images, as ratios to the dense '
                   'graph timed in the same run'),
        'dense_seconds': dense['seconds'], 'rows': times})
    _write(stage, config, rows)
  return rows


def _write(out: pathlib.Path, config: StudyBConfig, rows: list[dict]) -> None:
  atomic.write_csv(out / 'study_b.csv', COLUMNS, rows)
  atomic.write_text(out / 'study_b_config.json',
                    json.dumps(dataclasses.asdict(config), indent=2) + '\n')
  plot(out / 'study_b.csv', out / 'timing.json', out / 'study_b.png')


def plot(csv_path: pathlib.Path, timing_path: pathlib.Path,
         png_path: pathlib.Path) -> None:
  """Accuracy (from the CSV) and compact-time ratio (from timing.json) against k."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  with open(csv_path, newline='') as f:
    rows = list(csv.DictReader(f))
  times = {(t['method'], float(t['k'])): t['compact_time_ratio']
           for t in json.loads(pathlib.Path(timing_path).read_text())['rows']}
  fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
  for method in dict.fromkeys(r['method'] for r in rows if r['method'] != 'dense'):
    pts = [r for r in rows if r['method'] == method]
    ks = [float(r['k']) for r in pts]
    left.plot(ks, [100 * float(r['accuracy']) for r in pts], marker='o',
              label=method)
    right.plot(ks, [times[method, k] for k in ks], marker='o',
               label=f'{method} (compacted)')
  dense = next(r for r in rows if r['method'] == 'dense')
  left.axhline(100 * float(dense['accuracy']), color='gray', linestyle='--',
               label='dense')
  left.set(xlabel='per-layer level k (%)', ylabel='test accuracy (%)',
           title='LeNet-5 on MNIST, K prune-finetune cycles')
  right.axhline(1.0, color='gray', linestyle='--')
  right.set(xlabel='per-layer level k (%)', ylabel='inference time / dense',
            title='Measured inference time')
  for ax in (left, right):
    ax.grid(True, alpha=0.3)
    ax.legend()
  with atomic.replacing(png_path) as tmp:
    fig.savefig(tmp, format='png', dpi=110, bbox_inches='tight')
  plt.close(fig)
