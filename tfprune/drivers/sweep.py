"""The pruning sweep: prune a weight folder at many levels and measure each.

`run(config)` loads the weights and the test split (and, for data-aware
methods, a calibration sample of the training split), prunes with every method
at every level k, measures accuracy, the sparsity actually reached and the
costs of `metrics`, and writes `sweep.csv`, `sweep_config.json`, `timing.json`
and the plots to `config.out_dir` (plus the pruned exports with `save_pruned`).

Each pruned network is evaluated through `inference.plan`: compacted, with a
CSR kernel on the layers where it measured faster, so that a sweep costs far
less than one dense forward pass per point. Identical pruned networks (every
method at k = 0) are evaluated once.
"""

import csv
import dataclasses
import io
import json
import pathlib
import time
from typing import Callable, Sequence

import numpy as np

from tfprune import __version__
from tfprune import atomic
from tfprune.criteria import graph_pruning
from tfprune.criteria import graph_reconstruction
from tfprune.criteria import methods
from tfprune.criteria import pruning
from tfprune.criteria import reconstruction
from tfprune.data import datasets
from tfprune.data import user_data
from tfprune.drivers import allocated
from tfprune.drivers import graph_sweep
from tfprune.drivers import pruned_keras
from tfprune.errors import TfpruneError
from tfprune.graph import io as graph_io
from tfprune.graph import network_graph
from tfprune.graph import weights
from tfprune.graph.network import Network
from tfprune.keras_io import importer
from tfprune.reports import plots
from tfprune.runtime import export
from tfprune.runtime import inference
from tfprune.runtime import metrics

DEFAULT_LEVELS = (0, 25, 50, 60, 70, 80, 90, 95, 97, 99)
DEFAULT_METHODS = ('weight', 'unit')
CSV_NAME = 'sweep.csv'
CONFIG_NAME = 'sweep_config.json'
TIMING_NAME = 'timing.json'
PRUNED_DIR = 'pruned'
# progress(method, k, accuracy, seconds): one measured point.
Progress = Callable[[str, float, float, float], None]
COLUMNS = ('method', 'k', 'accuracy', 'sparsity', 'nonzero_params', 'flops',
           'flops_speedup', 'compression', 'size_bytes', 'units', 'kernels')


@dataclasses.dataclass(frozen=True)
class SweepConfig:
  """How a sweep was made; saved as `sweep_config.json` beside its results.

  Attributes:
    weights_dir: the `.npy` weight folder to prune.
    out_dir: where the CSV, the config and the plots go.
    dataset: a key of `datasets.DATASETS`; its test split is used.
    data_dir: local data folder (None: `$TFPRUNE_DATA_DIR`, then tfds).
    methods: keys of `methods.METHODS`.
    levels: pruning levels k in percent, each in [0, 100].
    use_biases: add biases in the forward pass (False: original project).
    prune_output_layer: prune the output layer too (default: hidden only).
    calibration_size: training examples drawn for data-aware methods and bias
      correction (unused otherwise).
    calibration_seed: seed of that draw.
    bias_correction: after pruning, shift each pruned layer's bias so its mean
      pre-activation where the dense unit is active matches the dense network's.
    sparse_kernels: let the evaluator use CSR kernels where they measured faster.
    save_pruned: also write each pruned network's compact export to
      `out_dir/pruned/<method>-k<k>.npz`.
    model_file: a user's Keras model (`.keras`, `.h5`, SavedModel) to prune
      instead of `weights_dir`; imported and verified by `keras_io`.
    data: a user's `.npz` (`user_data`) instead of the registry `dataset`.
    prune_layers: Keras layer names to prune (model files only; default:
      every layer with a kernel but the output layer).
    allocation: a key of `allocators.ALLOCATIONS` (`tfprune.allocation`):
      how the overall level k is spread over the pruned layers (`uniform`:
      k% of each; otherwise k% of all their weights together).
    sensitivity_csv: the scan (`experiments/sensitivity.py`) that
      `allocation='sensitivity'` reads.
    pattern: 'N:M' to add rows of every weight-level method under that N:M
      pattern (named e.g. `weight-2:4`), or None.
    save_keras: also write each pruned network as a plain Keras model to
      `out_dir/pruned/<method>-k<k>.keras`, compacted where structured
      removal allows (`pruned_keras`).
  """
  weights_dir: str | None
  out_dir: str
  dataset: str = 'mnist'
  data_dir: str | None = None
  methods: tuple[str, ...] = DEFAULT_METHODS
  levels: tuple[float, ...] = DEFAULT_LEVELS
  use_biases: bool = True
  prune_output_layer: bool = False
  calibration_size: int = reconstruction.DEFAULT_CALIBRATION_SIZE
  calibration_seed: int = 0
  bias_correction: bool = False
  sparse_kernels: bool = True
  save_pruned: bool = False
  model_file: str | None = None
  data: str | None = None
  prune_layers: tuple[str, ...] = ()
  allocation: str = allocated.UNIFORM
  sensitivity_csv: str | None = None
  pattern: str | None = None
  save_keras: bool = False

  def __post_init__(self):
    if (self.weights_dir is None) == (self.model_file is None):
      raise TfpruneError('give either --weights_dir or --model_file, not both')
    if self.model_file is not None:
      check_graph_methods(self)
    object.__setattr__(self, 'prune_layers', tuple(self.prune_layers))
    if not self.methods:
      raise TfpruneError(
          f'no pruning method given: pass --methods with some of '
          f'{",".join(methods.METHODS)}')
    for method in self.methods:
      methods.get(method)
    if self.bias_correction and not self.use_biases:
      raise TfpruneError(
          'bias correction changes biases but use_biases is false: drop '
          '--bias_correction or set --use_biases=true')
    if self.calibration_size < 0:
      raise TfpruneError(
          f'calibration_size must be >= 0, got {self.calibration_size}')
    if self.needs_calibration and self.calibration_size == 0:
      raise TfpruneError(
          f'{self.calibration_user} needs calibration data but calibration_size '
          'is 0: set --calibration_size to a positive number such as '
          f'{reconstruction.DEFAULT_CALIBRATION_SIZE}')
    if not self.levels:
      raise TfpruneError('no pruning level given: pass --levels such as 0,50,90')
    object.__setattr__(self, 'methods', tuple(self.methods))
    object.__setattr__(self, 'levels',
                       tuple(pruning.check_level(k) for k in self.levels))
    if self.data is None:
      datasets.get(self.dataset)
    allocated.check(self.allocation, self.sensitivity_csv, self.pattern,
                    self.methods)

  @property
  def needs_calibration(self) -> bool:
    return methods.needs_calibration(self.methods, self.bias_correction)

  @property
  def calibration_user(self) -> str:
    """What needs calibration data, for error messages."""
    needy = [m for m in self.methods if methods.get(m).needs_calibration]
    return f'method {needy[0]!r}' if needy else 'bias correction'


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
    flops: multiply-adds per example left after compaction, skipping zero
      weights (the effective MACs of `metrics`).
    flops_speedup: dense multiply-adds of the unpruned network / `flops`.
    compression: parameters of the unpruned network / `nonzero_params`.
    size_bytes: bytes of the compact sparse export (`export`), exactly the
      file `save_pruned` writes.
    units: layer widths after compaction, e.g. 784-100-100-50-20-10.
    kernels: kernel the evaluator chose per layer, e.g. csr+csr+dense.
    layer_sparsity: measured sparsity per pruned layer, e.g.
      'layer_1=0.9120;layer_2=0.8500' (written only when the allocation is
      not uniform).
  """
  method: str
  k: float
  accuracy: float
  sparsity: float
  nonzero_params: int
  flops: int = 0
  flops_speedup: float = 1.0
  compression: float = 1.0
  size_bytes: int = 0
  units: str = ''
  kernels: str = ''
  layer_sparsity: str = ''


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


def measure(dense_counts: metrics.Counts, pruned: Network,
            pruned_layers: Sequence[int], inputs: Sequence[object],
            labels: np.ndarray, config: 'SweepConfig', method: str, k: float,
            accuracy: float | None = None) -> SweepRow:
  """Measures `pruned` on the prepared test inputs.

  Args:
    dense_counts: total counts of the unpruned network (reference for ratios).
    pruned: the pruned network.
    pruned_layers: 0-based indices of the layers that were pruned.
    inputs: test images prepared by `inference.prepare`.
    labels: test labels.
    config: the sweep configuration (biases, kernels).
    method: method name, for the row.
    k: level, for the row.
    accuracy: a known accuracy of an identical network, to skip evaluation.
  """
  plan = inference.plan(pruned, config.use_biases, config.sparse_kernels)
  if accuracy is None:
    accuracy = inference.accuracy(plan, inputs, labels)
  kernels = [pruned.kernels[i] for i in pruned_layers]
  size = sum(kernel.size for kernel in kernels)
  zeros = sum(kernel.size - np.count_nonzero(kernel) for kernel in kernels)
  counts = metrics.total(metrics.layer_counts(pruned, config.use_biases))
  effective = metrics.total(metrics.layer_counts(plan.network, config.use_biases))
  return SweepRow(
      method=method, k=k, accuracy=accuracy,
      sparsity=zeros / size if size else 0.0,
      nonzero_params=counts.nonzero_params,
      flops=effective.effective_macs,
      flops_speedup=(dense_counts.dense_macs / effective.effective_macs
                     if effective.effective_macs else float('inf')),
      compression=(dense_counts.params / counts.nonzero_params
                   if counts.nonzero_params else float('inf')),
      size_bytes=len(export.to_bytes(plan.network, config.use_biases,
                                     export_metadata(config, method, k))),
      units=metrics.widths(plan.network),
      kernels='+'.join(plan.kinds))


def export_metadata(config: SweepConfig, method: str, k: float) -> dict:
  """What a pruned export records of how it was made."""
  return {'method': method, 'k': k, 'weights_dir': config.weights_dir}


def calibration(config: SweepConfig,
                train: datasets.Split | None = None) -> np.ndarray | None:
  """The calibration inputs the sweep's methods need, drawn from the train split.

  Args:
    config: the sweep configuration.
    train: the training split of `config.data`, if it has one.

  Raises:
    TfpruneError: `calibration_size` exceeds the training split.
  """
  if not config.needs_calibration:
    return None
  if config.data is not None and train is None:
    raise TfpruneError(f'{config.calibration_user} needs calibration data but '
                       f'{config.data} has no x_train/y_train: add them')
  try:
    if train is None:
      train = datasets.load(config.dataset, 'train', config.data_dir)
  except TfpruneError as e:
    raise TfpruneError(f'{config.calibration_user} needs calibration data from the '
                       f'{config.dataset} training split, which failed to load: '
                       f'{e}') from None
  if config.calibration_size > len(train):
    raise TfpruneError(
        f'calibration_size {config.calibration_size} exceeds the {len(train)} '
        f'training examples of {config.dataset}: pass at most {len(train)}')
  return reconstruction.calibration_inputs(
      train.images, config.calibration_size, config.calibration_seed)


def sweep(config: SweepConfig, network: Network, split: datasets.Split,
          calibration_inputs: np.ndarray | None = None,
          on_pruned=None, progress: Progress | None = None) -> list[SweepRow]:
  """Measures every (method, level) of `config` on `network`; writes nothing.

  Args:
    config: the sweep configuration.
    network: the dense network.
    split: test data.
    calibration_inputs: training inputs for data-aware methods.
    on_pruned: called as on_pruned(method, k, pruned_network) for each point.
    progress: called as progress(method, k, accuracy, seconds) as each point
      is measured (seconds: its pruning and measuring).
  """
  spec = datasets.get(config.dataset)
  if network.input_dim != int(np.prod(spec.image_shape)):
    raise TfpruneError(
        f'the weights in {config.weights_dir} take {network.input_dim} inputs '
        f'but {config.dataset} examples have {int(np.prod(spec.image_shape))} '
        'values: use weights trained on this dataset')
  if network.output_dim != spec.num_classes:
    raise TfpruneError(
        f'the weights in {config.weights_dir} have {network.output_dim} outputs '
        f'but {config.dataset} has {spec.num_classes} classes: use weights '
        'trained on this dataset')
  layers = pruning.prunable_layers(network.num_layers, config.prune_output_layer)
  inputs = inference.prepare(split.images, network.input_dim)
  dense_counts = metrics.total(metrics.layer_counts(network, config.use_biases))
  rows = []
  seen: dict[tuple[int, ...], list[tuple[Network, float]]] = {}
  clock = time.perf_counter()
  for method, k, pruned in allocated.network_points(config, network, layers,
                                                    calibration_inputs):
    # Equal networks have equal non-zero counts: compare arrays only then.
    candidates = seen.setdefault(_nonzero_counts(pruned), [])
    known = next((accuracy for other, accuracy in candidates
                  if _same_arrays(other, pruned)), None)
    row = measure(dense_counts, pruned, layers, inputs, split.labels, config,
                  method, k, accuracy=known)
    if config.allocation != allocated.UNIFORM:
      row = dataclasses.replace(row, layer_sparsity=allocated.layer_sparsity(
          {allocated.layer_name(i): pruned.kernels[i] for i in layers}))
    if known is None:
      candidates.append((pruned, row.accuracy))
    rows.append(row)
    if on_pruned is not None:
      on_pruned(method, k, pruned)
    if progress is not None:
      now = time.perf_counter()
      progress(method, k, row.accuracy, now - clock)
      clock = now
  return rows


def _nonzero_counts(network: Network) -> tuple[int, ...]:
  return tuple(int(np.count_nonzero(a)) for a in network.kernels + network.biases)


def _same_arrays(a: Network, b: Network) -> bool:
  return all(np.array_equal(x, y) for x, y in
             zip(a.kernels + a.biases, b.kernels + b.biases))


def to_csv(rows: Sequence[SweepRow]) -> str:
  """The rows as CSV text with a header of `COLUMNS`."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  per_layer = any(r.layer_sparsity for r in rows)
  writer.writerow(COLUMNS + (('layer_sparsity',) if per_layer else ()))
  for r in rows:
    writer.writerow([r.method, f'{r.k:g}', f'{r.accuracy:.4f}',
                     f'{r.sparsity:.6f}', r.nonzero_params, r.flops,
                     f'{r.flops_speedup:.3f}', f'{r.compression:.3f}',
                     r.size_bytes, r.units, r.kernels]
                    + ([r.layer_sparsity] if per_layer else []))
  return out.getvalue()


def format_table(rows: Sequence[SweepRow]) -> str:
  """A fixed-width table of the rows for the terminal."""
  lines = [f'{"method":<8} {"k":>6} {"accuracy":>9} {"sparsity":>9} '
           f'{"nonzero":>10} {"MACs":>10} {"export":>10}  kernels']
  for r in rows:
    lines.append(f'{r.method:<8} {r.k:>6g} {100 * r.accuracy:>8.2f}% '
                 f'{100 * r.sparsity:>8.2f}% {r.nonzero_params:>10,} '
                 f'{r.flops:>10,} {r.size_bytes / 1e6:>8.2f}MB  {r.kernels}')
  return '\n'.join(lines)


def run(config: SweepConfig,
        progress: Progress | None = None) -> list[SweepRow]:
  """Runs the sweep and writes CSV, config JSON and plots to `config.out_dir`.

  Everything (with `save_pruned`, the `pruned/` exports too) is written into a
  staging folder made before any work and moved into `config.out_dir` only
  when the sweep has finished (`atomic.staging`): a failed or interrupted run
  leaves the earlier results whole and creates no empty folder. The sweep's
  time goes to `timing.json`, so the CSV and the config JSON of identical
  runs are identical. `progress(method, k, accuracy, seconds)` hears of
  each point as it is measured.
  """
  atomic.check_writable(config.out_dir)
  pruned_target = pathlib.Path(config.out_dir) / PRUNED_DIR
  if config.save_pruned and pruned_target.exists() and not pruned_target.is_dir():
    raise TfpruneError(f'{pruned_target} is not writable (Not a directory): '
                       'choose a writable folder with --out_dir')
  if config.model_file is not None:
    return _run_graph(config, progress=progress)
  folder = weights.load(config.weights_dir)
  if config.data is None:
    weights.check_made_for(folder, config.weights_dir, config.dataset)
  if folder.network.specs is not None:
    # CNNs and ResNets run through the graph, like a user's model.
    return _run_graph(config, folder, progress)
  split, train = _load_user_data(config)
  calibration_inputs = calibration(config, train)
  with atomic.staging(config.out_dir) as out_dir:
    on_pruned = None
    if config.save_pruned or config.save_keras:
      pruned_dir = out_dir / PRUNED_DIR
      pruned_dir.mkdir()

      def on_pruned(method, k, pruned):
        if config.save_pruned:
          export.save(pruned_dir / f'{method}-k{k:g}{export.SUFFIX}', pruned,
                      config.use_biases, export_metadata(config, method, k))
        if config.save_keras:
          pruned_keras.save(
              pruned_keras.network_to_save(pruned, config.use_biases),
              pruned_dir / f'{method}-k{k:g}{pruned_keras.SUFFIX}')
    start = time.perf_counter()
    rows = sweep(config, folder.network, split, calibration_inputs, on_pruned,
                 progress)
    elapsed = time.perf_counter() - start
    csv_path = atomic.write_text(out_dir / CSV_NAME, to_csv(rows))
    record = {'config': config_record(config),
              'weights_sha256': folder.sha256,
              'tfprune_version': __version__}
    atomic.write_text(out_dir / CONFIG_NAME, json.dumps(record, indent=2) + '\n')
    write_timing(out_dir, elapsed, len(rows))
    plots.plot_sweep(csv_path, out_dir)
  return rows


# Fields for user models; left out of a weight-folder sweep's record at their
# defaults, so its sweep_config.json is unchanged.
_MODEL_FIELDS = ('model_file', 'data', 'prune_layers')
# Allocation fields, left out at their defaults for the same reason.
_ALLOCATION_FIELDS = ('allocation', 'sensitivity_csv', 'pattern')


def config_record(config: SweepConfig) -> dict:
  """The config as saved in `sweep_config.json`."""
  record = dataclasses.asdict(config)
  if config.model_file is None:
    for name in _MODEL_FIELDS:
      record.pop(name)
  defaults = {f.name: f.default for f in dataclasses.fields(SweepConfig)}
  for name in _ALLOCATION_FIELDS + ('save_keras',):
    if record[name] == defaults[name]:
      record.pop(name)
  return record


def check_graph_methods(config: SweepConfig) -> None:
  """Refuses methods that do not run on graphs (CNN folders, model files) yet."""
  runnable = (*graph_pruning.CRITERIA, *graph_reconstruction.METHODS)
  for method in config.methods:
    if method not in runnable:
      raise TfpruneError(
          f'method {method!r} does not run on a graph network (a CNN weight '
          f'folder or --model_file) yet: choose from {",".join(runnable)}')
  if config.bias_correction:
    raise TfpruneError('--bias_correction does not run on a graph network (a '
                       'CNN weight folder or --model_file) yet: drop it')


def _load_user_data(config: SweepConfig):
  if config.data is not None:
    return user_data.load(config.data)
  return datasets.load(config.dataset, 'test', config.data_dir), None


def _run_graph(config: SweepConfig,
               folder: weights.WeightFolder | None = None,
               progress: Progress | None = None) -> list[SweepRow]:
  """The sweep of a user's Keras model (`config.model_file`) or of a CNN folder."""
  check_graph_methods(config)
  test, train = _load_user_data(config)
  if folder is None:
    graph = importer.from_keras(config.model_file, data=test.images[:16])
  else:
    graph = network_graph.to_graph(folder.network, config.use_biases)
  source = config.data or config.dataset
  user_data.check_fits(test, graph.input_shape, int(np.prod(graph.output_shape)),
                       source)
  names = graph_pruning.prunable(graph, config.prune_layers,
                                 config.prune_output_layer)
  calibration_inputs = calibration(config, train)
  with atomic.staging(config.out_dir) as out_dir:
    on_pruned = None
    if config.save_pruned or config.save_keras:
      pruned_dir = out_dir / PRUNED_DIR
      pruned_dir.mkdir()

      def on_pruned(method, k, pruned):
        if config.save_pruned:
          graph_io.save(pruned, pruned_dir / f'{method}-k{k:g}{graph_io.SUFFIX}')
        if config.save_keras:
          pruned_keras.save(
              pruned_keras.graph_to_save(graph, pruned, method, k, names),
              pruned_dir / f'{method}-k{k:g}{pruned_keras.SUFFIX}')
    start = time.perf_counter()
    rows = graph_sweep.sweep_graph(
        graph, config.methods, config.levels, names, test.images, test.labels,
        SweepRow, on_pruned,
        points=allocated.graph_points(config, graph, names, calibration_inputs),
        per_layer=config.allocation != allocated.UNIFORM, progress=progress)
    elapsed = time.perf_counter() - start
    csv_path = atomic.write_text(out_dir / CSV_NAME, to_csv(rows))
    record = {'config': config_record(config), 'pruned_layers': names,
              **({'weights_sha256': folder.sha256} if folder else {}),
              'tfprune_version': __version__}
    atomic.write_text(out_dir / CONFIG_NAME, json.dumps(record, indent=2) + '\n')
    write_timing(out_dir, elapsed, len(rows))
    plots.plot_sweep(csv_path, out_dir)
  return rows


def write_timing(out_dir, seconds: float, points: int) -> None:
  """The sweep's wall time, kept apart from its results (`timing.json`)."""
  atomic.write_text(out_dir / TIMING_NAME, json.dumps(
      {'sweep_seconds': round(seconds, 2), 'points': points}, indent=2) + '\n')
