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
from typing import Sequence

import numpy as np
import tensorflow_model_optimization as tfmot

from tfprune import atomic
from tfprune import cnn_pruning
from tfprune import data
from tfprune import evaluate
from tfprune import finetune
from tfprune import gradual
from tfprune import inference
from tfprune import masking
from tfprune import metrics
from tfprune import models
from tfprune import pruning
from tfprune import schedules
from tfprune import structured
from tfprune import tfmot_masks
from tfprune import weights
from tfprune.errors import TfpruneError
from tfprune.keras_compat import keras

DEFAULT_LEVELS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
COLUMNS = ('method', 'k', 'accuracy', 'nonzero_params', 'params_ratio',
           'flops_ratio', 'compact_flops_ratio', 'npy_bytes_ratio',
           'compressed_bytes_ratio', 'compact_npy_bytes_ratio',
           'masked_time_ratio', 'compact_time_ratio')


@dataclasses.dataclass(frozen=True)
class StudyBConfig:
  """Study B settings; saved as study_b_config.json.

  Attributes:
    weights_dir: trained `lenet5` weight folder.
    out_dir: folder for the CSV, config and plot.
    data_dir: local data folder (None: `$TFPRUNE_DATA_DIR`, then tfds).
    methods: keys of `cnn_pruning.LAYER_PRUNERS`.
    levels: per-layer levels k in percent (structured_l1 and l1 need k < 100).
    cycles: K prune-finetune cycles.
    finetune_epochs: epochs per cycle (at least 1: TF-MOT's l1 mask update is
      a training step).
    finetune_lr: initial Adam learning rate of each cycle.
    train_limit: finetune on the first N training examples (None: all).
    timing_repeats: timed passes over the test set per network (the fastest
      counts).
    seed: seeds finetuning and random masks.
  """
  weights_dir: str
  out_dir: str
  data_dir: str | None = None
  methods: tuple[str, ...] = tuple(cnn_pruning.LAYER_PRUNERS)
  levels: tuple[float, ...] = DEFAULT_LEVELS
  cycles: int = 3
  finetune_epochs: int = 4
  finetune_lr: float = 1e-4
  train_limit: int | None = None
  timing_repeats: int = 5
  seed: int = 0

  def __post_init__(self):
    if not self.methods or not self.levels:
      raise TfpruneError('give at least one method and one level')
    for m in self.methods:
      cnn_pruning.get(m)
    for k in self.levels:
      pruning.check_level(k)
      if k == 100 and 'structured_l1' in self.methods:
        raise TfpruneError('structured_l1 at k=100 would remove every filter '
                           'of a layer: use levels below 100')
      if k == 100 and 'l1' in self.methods:
        raise TfpruneError('l1 at k=100: TF-MOT keeps at least one weight per '
                           'layer and takes sparsities below 1: use levels '
                           'below 100')
    if self.cycles < 1 or self.timing_repeats < 1:
      raise TfpruneError('cycles and timing_repeats must be at least 1')
    if self.finetune_epochs < 1:
      raise TfpruneError(
          f'finetune_epochs must be at least 1, got {self.finetune_epochs}: '
          'TF-MOT updates the l1 masks on the first training step of a cycle')
    finetune.FitConfig(self.finetune_epochs, learning_rate=self.finetune_lr)
    if self.train_limit is not None and self.train_limit < 1:
      raise TfpruneError(f'train_limit must be at least 1, got {self.train_limit}')


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
  test = data.load('mnist', 'test', config.data_dir)
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


def pruned_names(model: keras.Model, layers: Sequence[int]) -> list[str]:
  """Names of the prunable layers (`finetune.prunable`) at indices `layers`."""
  prunable = finetune.prunable(model)
  return [prunable[i].name for i in layers]


@dataclasses.dataclass(frozen=True)
class Cycle:
  """One TF-MOT prune-finetune cycle.

  Attributes:
    wrapped: the finetuned model with its pruning wrappers.
    model: the same layers with the wrappers stripped (`strip_pruning`).
    masks: kernel mask of each prunable layer after the cycle, read from the
      wrappers (None: layer not pruned).
    layers: measured sparsity of each pruned layer (checked by `check_cycle`).
  """
  wrapped: keras.Model
  model: keras.Model
  masks: list[np.ndarray | None]
  layers: list[gradual.LayerSparsity]


def _unit_masks(masks: Sequence[np.ndarray | None], layers: Sequence[int]
                ) -> dict[int, np.ndarray]:
  """Kept units of each pruned layer: any kept weight in the unit's slice."""
  return {i: masks[i].reshape(-1, masks[i].shape[-1]).any(axis=0) for i in layers}


def tfmot_cycle(model: keras.Model, method: str, level: float,
                layers: Sequence[int], masks: Sequence[np.ndarray | None] | None,
                train: data.Split, config: StudyBConfig) -> Cycle:
  """Wraps `layers` of `model`, prunes them to `level` percent, finetunes, strips.

  The stripped model shares its layers (and weights) with `model`.

  Args:
    model: a plain (unwrapped) Keras model; trained in place.
    method: a key of `cnn_pruning.LAYER_PRUNERS`.
    level: per-layer level of this cycle, in percent.
    layers: indices of the prunable layers to prune.
    masks: the masks after the previous cycle (None: first cycle).
    train: finetuning data.
    config: finetuning settings and seed.

  Raises:
    TfpruneError: a layer's sparsity is not what the criterion asked for (see
      `check_cycle`).
  """
  names = pruned_names(model, layers)
  callbacks = [tfmot.sparsity.keras.UpdatePruningStep()]
  injected = None
  if method == 'l1':
    wrapped = gradual.wrap(model, names, schedules.first_step(level / 100))
  else:
    injected = cnn_pruning.layer_masks(method, finetune.kernels(model), level,
                                       layers, masks, config.seed)
    wrapped = gradual.wrap(model, names, schedules.FixedMask())
    tfmot_masks.inject(wrapped, names, [injected[i] for i in layers])
    if method == 'structured_l1':
      prunable = finetune.prunable(model)
      callbacks.append(masking.KeepMasked(
          [(prunable[i].bias, keep)
           for i, keep in _unit_masks(injected, layers).items()]))
  finetune.fit(wrapped, train.images, train.labels,
               finetune.FitConfig(config.finetune_epochs,
                                  learning_rate=config.finetune_lr),
               callbacks)
  after = list(masks) if masks is not None else [None] * len(
      finetune.prunable(model))
  for i, mask in zip(layers, tfmot_masks.read(wrapped, names)):
    after[i] = mask
  stripped = gradual.strip(wrapped)
  measured = check_cycle(stripped, method, level, layers, masks, after, injected)
  return Cycle(wrapped, stripped, after, measured)


def check_cycle(model: keras.Model, method: str, level: float,
                layers: Sequence[int],
                before: Sequence[np.ndarray | None] | None,
                after: Sequence[np.ndarray | None],
                injected: Sequence[np.ndarray | None] | None
                ) -> list[gradual.LayerSparsity]:
  """Measures each pruned layer of a stripped model after a cycle.

  Required zeros: l1, `schedules.tfmot_pruned_count` at level/100; random and
  structured_l1, the zeros of the injected mask, which the wrapper must still
  hold unchanged.

  Returns:
    The measured sparsity of each pruned layer.

  Raises:
    TfpruneError: a kernel or wrapper mask has another number of zeros than
      required, a mask revives a weight pruned in an earlier cycle, or a
      pruned structured unit has a non-zero bias.
  """
  prunable = finetune.prunable(model)
  out = []
  for i in layers:
    layer, mask = prunable[i], after[i]
    kernel = layer.kernel.numpy()
    if injected is None:
      required = schedules.tfmot_pruned_count(kernel.size, level / 100)
    else:
      required = int(np.sum(~injected[i]))
      if not np.array_equal(mask, injected[i]):
        raise TfpruneError(
            f'layer {layer.name}: the wrapper changed the injected {method} '
            'mask during finetuning: its schedule must never update masks '
            '(schedules.FixedMask)')
    measured = gradual.LayerSparsity(layer.name, kernel.size,
                                     int(np.sum(kernel == 0)), required)
    mask_zeros = int(np.sum(~mask))
    if measured.zeros != required or mask_zeros != required:
      raise TfpruneError(
          f'layer {layer.name}: {method} at k={level:g}% asks for {required} '
          f'zero weights of {kernel.size}, the kernel has {measured.zeros} and '
          f'the TF-MOT mask {mask_zeros}: the mask update missed the first '
          'training step of the cycle or the mask was not applied')
    if before is not None and before[i] is not None and np.any(mask & ~before[i]):
      raise TfpruneError(
          f'layer {layer.name}: the {method} cycle at k={level:g}% revived '
          f'{int(np.sum(mask & ~before[i]))} weights pruned in an earlier '
          'cycle: masks must only shrink')
    if method == 'structured_l1':
      units = _unit_masks(after, [i])[i]
      if np.any(layer.bias.numpy()[~units] != 0):
        raise TfpruneError(
            f'layer {layer.name}: pruned units have non-zero biases after '
            'finetuning: their biases must be held at zero (masking.KeepMasked)')
    out.append(measured)
  return out


def prune_finetune(model: keras.Model, method: str, k: float,
                   layers: Sequence[int], train: data.Split,
                   config: StudyBConfig) -> keras.Model:
  """K TF-MOT prune-finetune cycles of `method` up to level k.

  Cycle c prunes to k·c/K (see `tfmot_cycle`). The weights of `model` are
  trained in place.

  Returns:
    The stripped model after the last cycle (it shares `model`'s layers).
  """
  masks = None
  for cycle in range(1, config.cycles + 1):
    result = tfmot_cycle(model, method, k * cycle / config.cycles, layers,
                         masks, train, config)
    model, masks = result.model, result.masks
  return model


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
  spec = data.get('mnist')
  model = models.get('lenet5')(spec.image_shape, spec.num_classes)
  models.load_network(model, folder.network)
  dense_weights = model.get_weights()
  network = folder.network
  test = data.load('mnist', 'test', config.data_dir)
  train = data.load('mnist', 'train', config.data_dir, config.train_limit)
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
          prune_finetune(model, method, k, layers, train, config))
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
