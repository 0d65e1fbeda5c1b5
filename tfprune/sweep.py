"""The pruning sweep: prune a weight folder at many levels and measure each.

`run(config)` loads the weights and the test split, prunes with every method
at every level k, measures accuracy and the sparsity actually reached, and
writes `sweep.csv`, `sweep_config.json` and the plots to `config.out_dir`.
"""

import csv
import dataclasses
import io
import json
import time
from typing import Sequence

import numpy as np

from tfprune import atomic
from tfprune import data
from tfprune import evaluate
from tfprune import plots
from tfprune import pruning
from tfprune import weights
from tfprune import __version__
from tfprune.errors import TfpruneError
from tfprune.network import Network

DEFAULT_LEVELS = (0, 25, 50, 60, 70, 80, 90, 95, 97, 99)
DEFAULT_METHODS = ('weight', 'unit')
CSV_NAME = 'sweep.csv'
CONFIG_NAME = 'sweep_config.json'
COLUMNS = ('method', 'k', 'accuracy', 'sparsity', 'nonzero_params')


@dataclasses.dataclass(frozen=True)
class SweepConfig:
  """How a sweep was made; saved as `sweep_config.json` beside its results.

  Attributes:
    weights_dir: the `.npy` weight folder to prune.
    out_dir: where the CSV, the config and the plots go.
    dataset: a key of `data.DATASETS`; its test split is used.
    data_dir: local data folder (None: `$TFPRUNE_DATA_DIR`, then tfds).
    methods: keys of `pruning.PRUNERS`.
    levels: pruning levels k in percent, each in [0, 100].
    use_biases: add biases in the forward pass (False: original project).
    prune_output_layer: prune the output layer too (default: hidden only).
    batch_size: test examples per forward pass.
  """
  weights_dir: str
  out_dir: str
  dataset: str = 'mnist'
  data_dir: str | None = None
  methods: tuple[str, ...] = DEFAULT_METHODS
  levels: tuple[float, ...] = DEFAULT_LEVELS
  use_biases: bool = True
  prune_output_layer: bool = False
  batch_size: int = evaluate.DEFAULT_BATCH_SIZE

  def __post_init__(self):
    if not self.methods:
      raise TfpruneError(
          f'no pruning method given: pass --methods with some of '
          f'{",".join(pruning.PRUNERS)}')
    for method in self.methods:
      pruning.get(method)
    if not self.levels:
      raise TfpruneError('no pruning level given: pass --levels such as 0,50,90')
    object.__setattr__(self, 'methods', tuple(self.methods))
    object.__setattr__(self, 'levels',
                       tuple(pruning.check_level(k) for k in self.levels))
    data.get(self.dataset)
    if self.batch_size < 1:
      raise TfpruneError(f'batch_size must be at least 1, got {self.batch_size}')


@dataclasses.dataclass(frozen=True)
class SweepRow:
  """One measured point.

  Attributes:
    method: pruning method name.
    k: pruning level in percent.
    accuracy: test accuracy of the pruned network.
    sparsity: measured fraction of zero weights in the pruned layers' kernels.
    nonzero_params: non-zero parameters of the whole network (kernels, plus
      biases when they are used).
  """
  method: str
  k: float
  accuracy: float
  sparsity: float
  nonzero_params: int


def parse_levels(texts: Sequence[str]) -> tuple[float, ...]:
  """Parses level strings such as ['0', '50', '97.5'] into checked floats.

  Raises:
    TfpruneError: a text is not a number or not in [0, 100].
  """
  levels = []
  for text in texts:
    try:
      value = float(text)
    except ValueError:
      raise TfpruneError(
          f'level {text!r} is not a number: give --levels as comma-separated '
          'percentages such as 0,50,90') from None
    levels.append(pruning.check_level(value))
  return tuple(levels)


def measure(network: Network, masks: Sequence[np.ndarray | None],
            split: data.Split, use_biases: bool, batch_size: int,
            method: str, k: float) -> SweepRow:
  """Applies `masks` to `network` and measures the result on `split`."""
  pruned = network.masked(masks)
  pruned_kernels = [kernel for kernel, m in zip(pruned.kernels, masks)
                    if m is not None]
  size = sum(kernel.size for kernel in pruned_kernels)
  zeros = sum(kernel.size - np.count_nonzero(kernel) for kernel in pruned_kernels)
  nonzero = sum(np.count_nonzero(kernel) for kernel in pruned.kernels)
  if use_biases:
    nonzero += sum(np.count_nonzero(b) for b in pruned.biases)
  acc = evaluate.accuracy(pruned, split.images, split.labels,
                          use_biases=use_biases, batch_size=batch_size)
  return SweepRow(method, k, acc, zeros / size if size else 0.0, int(nonzero))


def sweep(config: SweepConfig, network: Network,
          split: data.Split) -> list[SweepRow]:
  """Measures every (method, level) of `config` on `network`; writes nothing."""
  spec = data.get(config.dataset)
  if network.output_dim != spec.num_classes:
    raise TfpruneError(
        f'the weights in {config.weights_dir} have {network.output_dim} outputs '
        f'but {config.dataset} has {spec.num_classes} classes: use weights '
        'trained on this dataset')
  layers = pruning.prunable_layers(network.num_layers, config.prune_output_layer)
  rows = []
  for method in config.methods:
    for k in config.levels:
      masks = pruning.network_masks(network, method, k, layers)
      rows.append(measure(network, masks, split, config.use_biases,
                          config.batch_size, method, k))
  return rows


def to_csv(rows: Sequence[SweepRow]) -> str:
  """The rows as CSV text with a header of `COLUMNS`."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  writer.writerow(COLUMNS)
  for r in rows:
    writer.writerow([r.method, f'{r.k:g}', f'{r.accuracy:.4f}',
                     f'{r.sparsity:.6f}', r.nonzero_params])
  return out.getvalue()


def format_table(rows: Sequence[SweepRow]) -> str:
  """A fixed-width table of the rows for the terminal."""
  lines = [f'{"method":<8} {"k":>6} {"accuracy":>9} {"sparsity":>9} '
           f'{"nonzero":>10}']
  for r in rows:
    lines.append(f'{r.method:<8} {r.k:>6g} {100 * r.accuracy:>8.2f}% '
                 f'{100 * r.sparsity:>8.2f}% {r.nonzero_params:>10,}')
  return '\n'.join(lines)


def run(config: SweepConfig) -> list[SweepRow]:
  """Runs the sweep and writes CSV, config JSON and plots to `config.out_dir`.

  The output folder is checked before any work, and every file is written to
  a temporary name and renamed, so a failure leaves earlier results intact.
  """
  out_dir = atomic.ensure_dir(config.out_dir)
  folder = weights.load(config.weights_dir)
  split = data.load(config.dataset, 'test', config.data_dir)
  start = time.perf_counter()
  rows = sweep(config, folder.network, split)
  elapsed = time.perf_counter() - start
  csv_path = atomic.write_text(out_dir / CSV_NAME, to_csv(rows))
  record = {'config': dataclasses.asdict(config),
            'weights_sha256': folder.sha256,
            'tfprune_version': __version__,
            'sweep_seconds': round(elapsed, 2)}
  atomic.write_text(out_dir / CONFIG_NAME, json.dumps(record, indent=2) + '\n')
  plots.plot_sweep(csv_path, out_dir)
  return rows
