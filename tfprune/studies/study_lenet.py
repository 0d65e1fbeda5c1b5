"""Study B: what pruning LeNet-5 really buys, per method and per-layer level.

For each method of `cnn_pruning.LAYER_PRUNERS` (random, l1, structured_l1)
and each per-layer level k, the trained LeNet-5 runs K prune-finetune cycles
with TF-MOT: cycle c wraps the pruned layers (conv1, conv2, fc1, fc2; not the
output layer) with `tfmot.sparsity.keras.prune_low_magnitude`, finetunes
(Adam, `finetune.fit`, with `UpdatePruningStep`) and strips the wrappers
(`strip_pruning`); the plain model goes on to the next cycle, and after the
last one `models.to_network` makes it a `Network`. The level of cycle c is
k·c/K:

- l1: TF-MOT's own per-layer magnitude pruning, one mask update on the
  cycle's first training step (`schedules.first_step`, sparsity k·c/(100K)),
  so each layer loses exactly `schedules.tfmot_pruned_count` weights (TF-MOT
  keeps round(n·(1 - s)) of n, at least one). Weights pruned in earlier
  cycles are zero, hence the smallest, so masks only shrink.
- random, structured_l1: TF-MOT has no random or filter criterion, so
  `cnn_pruning.layer_masks` computes the masks (exact counts, only shrinking)
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

Per point it records accuracy, non-zero parameters, FLOPs
(multiply-adds skipping zeros, and of the compacted network), file sizes
(`.npy` folder, compressed, compacted) and measured inference time of the
masked network and of the compacted one, all as ratios to the dense model
measured in the same run. Writes study_b.csv, study_b_config.json, study_b.png.
"""

import csv
import dataclasses
import json
import pathlib

import numpy as np

from tfprune import atomic
from tfprune.data import datasets
from tfprune.graph import weights
from tfprune.keras_compat import keras
from tfprune.keras_io import models
from tfprune.runtime import evaluate
from tfprune.runtime import inference
from tfprune.runtime import metrics
from tfprune.studies import lenet_cycles
from tfprune.studies.lenet_config import StudyBConfig
from tfprune.transforms import structured

COLUMNS = ('method', 'k', 'accuracy', 'nonzero_params', 'params_ratio',
           'flops_ratio', 'compact_flops_ratio', 'npy_bytes_ratio',
           'compressed_bytes_ratio', 'compact_npy_bytes_ratio',
           'masked_time_ratio', 'compact_time_ratio')


def _seconds(network, images, repeats):
  # The fastest pass: the least disturbed by other processes on a shared CPU.
  return min(inference.timings(
      lambda: evaluate.logits(network, images), repeats))


def interleaved_seconds(networks: dict[str, object], images: np.ndarray,
                        repeats: int) -> dict[str, float]:
  """Fastest pass of each network over `images`, timed in turn (round-robin).

  Interleaving makes a change of load from other processes hit every network
  alike, so the ratios stay meaningful on a shared machine.
  """
  fns = [lambda n=network: evaluate.logits(n, images)
         for network in networks.values()]
  for fn in fns:
    fn()  # traces the tf.function once
  times = inference.interleaved_timings(fns, [1] * len(fns), repeats)
  return {name: min(t) for name, t in zip(networks, times)}


def timing_table(config: StudyBConfig) -> list[dict]:
  """Interleaved inference time of structured-compacted LeNet-5 vs dense.

  The compacted shapes depend only on k (floor(k·m/100) units go), not on
  finetuning, so the trained weights pruned without finetuning time exactly
  like the study's networks. Writes study_b_timing.csv.
  """
  atomic.check_writable(config.out_dir)  # made only to write the results
  network = weights.load(config.weights_dir).network
  test = datasets.load('mnist', 'test', config.data_dir)
  layers = list(range(network.num_layers - 1))
  rows = []
  for k in config.levels:
    masked = structured.prune_units(network, structured.unit_keep(network, k, layers))
    compact = structured.compact(masked)
    seconds = interleaved_seconds({'dense': network, 'masked': masked,
                                   'compact': compact}, test.images,
                                  config.timing_repeats)
    counts = metrics.total(metrics.layer_counts(compact))
    dense = metrics.total(metrics.layer_counts(network))
    rows.append({'k': k, 'dense_seconds': round(seconds['dense'], 4),
                 'masked_time_ratio': round(seconds['masked'] / seconds['dense'], 3),
                 'compact_time_ratio': round(seconds['compact'] / seconds['dense'], 3),
                 'compact_flops_ratio': round(counts.dense_macs / dense.dense_macs, 4)})
    print(rows[-1], flush=True)
  out = atomic.ensure_dir(config.out_dir)
  atomic.write_csv(out / 'study_b_timing.csv', list(rows[0]), rows)
  return rows


def _point(method, k, network, compact, dense, test, repeats):
  counts = metrics.total(metrics.layer_counts(network))
  compact_counts = metrics.total(metrics.layer_counts(compact))
  ratio = lambda a, b: round(a / b, 4)
  return {
      'method': method, 'k': k,
      'accuracy': round(evaluate.accuracy(network, test.images, test.labels), 6),
      'nonzero_params': counts.nonzero_params,
      'params_ratio': ratio(counts.nonzero_params, dense['params']),
      'flops_ratio': ratio(counts.effective_macs, dense['macs']),
      'compact_flops_ratio': ratio(compact_counts.dense_macs, dense['macs']),
      'npy_bytes_ratio': ratio(metrics.npy_folder_bytes(network), dense['npy']),
      'compressed_bytes_ratio': ratio(metrics.compressed_bytes(network),
                                      dense['compressed']),
      'compact_npy_bytes_ratio': ratio(metrics.npy_folder_bytes(compact),
                                       dense['npy']),
      'masked_time_ratio': ratio(_seconds(network, test.images, repeats),
                                 dense['seconds']),
      'compact_time_ratio': ratio(_seconds(compact, test.images, repeats),
                                  dense['seconds']),
  }


def run(config: StudyBConfig) -> list[dict]:
  """Runs Study B and writes its results; returns the CSV rows."""
  atomic.check_writable(config.out_dir)  # made only to write the results
  folder = weights.load(config.weights_dir)
  spec = datasets.get('mnist')
  model = models.get('lenet5')(spec.image_shape, spec.num_classes)
  models.load_network(model, folder.network)
  dense_weights = model.get_weights()
  network = folder.network
  test = datasets.load('mnist', 'test', config.data_dir)
  train = datasets.load('mnist', 'train', config.data_dir, config.train_limit)
  counts = metrics.total(metrics.layer_counts(network))
  dense = {'params': counts.nonzero_params, 'macs': counts.dense_macs,
           'npy': metrics.npy_folder_bytes(network),
           'compressed': metrics.compressed_bytes(network),
           'seconds': _seconds(network, test.images, config.timing_repeats)}
  layers = list(range(network.num_layers - 1))
  rows = [_point('dense', 0, network, network, dense, test,
                 config.timing_repeats)]
  for method in config.methods:
    for k in config.levels:
      keras.utils.set_random_seed(config.seed)
      model.set_weights(dense_weights)
      pruned = models.to_network(
          lenet_cycles.prune_finetune(model, method, k, layers, train, config))
      rows.append(_point(method, k, pruned, structured.compact(pruned), dense,
                         test, config.timing_repeats))
      r = rows[-1]
      print(f'{method} k={k:g}%: {100 * r["accuracy"]:.2f}%, params x'
            f'{r["params_ratio"]}, compact time x{r["compact_time_ratio"]}',
            flush=True)
  _write(atomic.ensure_dir(config.out_dir), config, rows)
  return rows


def _write(out: pathlib.Path, config: StudyBConfig, rows: list[dict]) -> None:
  atomic.write_csv(out / 'study_b.csv', COLUMNS, rows)
  atomic.write_text(out / 'study_b_config.json',
                    json.dumps(dataclasses.asdict(config), indent=2) + '\n')
  plot(out / 'study_b.csv', out / 'study_b.png')


def plot(csv_path: pathlib.Path, png_path: pathlib.Path) -> None:
  """Accuracy and compact-time ratio against k, one line per method."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  with open(csv_path, newline='') as f:
    rows = list(csv.DictReader(f))
  fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
  for method in dict.fromkeys(r['method'] for r in rows if r['method'] != 'dense'):
    pts = [r for r in rows if r['method'] == method]
    ks = [float(r['k']) for r in pts]
    left.plot(ks, [100 * float(r['accuracy']) for r in pts], marker='o',
              label=method)
    right.plot(ks, [float(r['compact_time_ratio']) for r in pts], marker='o',
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
