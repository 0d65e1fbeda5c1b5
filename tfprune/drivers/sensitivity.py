"""The sensitivity scan: prune one layer at a time and measure the damage.

For each pruned layer and each level k, only that layer is pruned (by the
criterion that ranks one kernel alone, e.g. `weight` or `unit`) and the network's accuracy and mean
cross-entropy are measured on a held-out slice of the *training* data (a
seeded draw; the test set is never read). `run(config)` writes
`sensitivity.csv` (`allocation.scan`), `sensitivity_config.json` and
`sensitivity.png`, each through a temporary file and a rename. The
`sensitivity` allocation of the sweep reads the CSV (`--sensitivity_csv`).

Works on a weight folder (as a graph, `drivers.folder_graph`) and on a user's Keras
model with a `.npz` holding `x_train`/`y_train`.
"""

import dataclasses
import json
from typing import Sequence

import numpy as np

from tfprune import __version__
from tfprune import atomic
from tfprune.allocation import scan as scan_lib
from tfprune.criteria import graph_pruning
from tfprune.criteria import pruning
from tfprune.data import datasets
from tfprune.data import provenance
from tfprune.data import source as data_source
from tfprune.drivers import folder_graph
from tfprune.drivers import model_checks
from tfprune.drivers import sweep_config
from tfprune.errors import TfpruneError
from tfprune.graph import weights
from tfprune.graph.evaluator import Evaluator
from tfprune.graph.ir import Graph
from tfprune.reports import sensitivity_plot
from tfprune.runtime import executors

CSV_NAME = 'sensitivity.csv'
CONFIG_NAME = 'sensitivity_config.json'
PLOT_NAME = 'sensitivity.png'
DEFAULT_LEVELS = (0, 50, 70, 80, 85, 90, 93, 95, 97, 98, 99, 99.5)
DEFAULT_HOLDOUT_SIZE = 5000


@dataclasses.dataclass(frozen=True)
class ScanConfig:
  """How a sensitivity scan was made; saved beside it.

  Attributes:
    out_dir: where the CSV, the config and the plot go.
    weights_dir: a `.npy` weight folder to scan, or None.
    model_file: a user's Keras model instead of `weights_dir`.
    data: the user's `.npz` (its x_train/y_train) for `model_file`.
    dataset: registry dataset of a weight folder (its training split is used).
    data_dir: local data folder (None: `$TFPRUNE_DATA_DIR`, then tfds).
    criterion: a registered criterion that ranks one kernel alone
      (`graph_pruning.kernel_criteria`: weight, unit, random, filter_l1).
    levels: k in percent; 0 is always added (the dense reference).
    holdout_size: training examples drawn to measure on.
    holdout_seed: seed of that draw.
    prune_layers: layer names to scan (default: every layer with a kernel
      but the output layer, as the sweep prunes).
    prune_output_layer: scan the output layer too.
    use_biases: add biases in the forward pass (weight folders).
    allow_other_data: scan on other data than the network's files record,
      on purpose (`data.provenance`).
  """
  out_dir: str
  weights_dir: str | None = None
  model_file: str | None = None
  data: str | None = None
  dataset: str = 'mnist'
  data_dir: str | None = None
  criterion: str = 'weight'
  levels: tuple[float, ...] = DEFAULT_LEVELS
  holdout_size: int = DEFAULT_HOLDOUT_SIZE
  holdout_seed: int = 0
  prune_layers: tuple[str, ...] = ()
  prune_output_layer: bool = False
  use_biases: bool = True
  allow_other_data: bool = False

  def __post_init__(self):
    sweep_config.check_paths_given(self)
    if (self.weights_dir is None) == (self.model_file is None):
      raise TfpruneError('give either --weights_dir or --model_file, not both')
    if self.model_file is not None and self.data is None:
      raise TfpruneError('--model_file needs --data, an .npz with x_train and '
                         'y_train to measure on')
    graph_pruning.get(self.criterion)
    levels = sorted({0.0, *(pruning.check_level(k) for k in self.levels)})
    object.__setattr__(self, 'levels', tuple(levels))
    object.__setattr__(self, 'prune_layers', tuple(self.prune_layers))
    if isinstance(self.holdout_size, bool) or self.holdout_size < 1:
      raise TfpruneError(f'holdout_size must be a positive number of training '
                         f'examples, got {self.holdout_size}: pass e.g. '
                         f'{DEFAULT_HOLDOUT_SIZE}')
    if self.data is None:
      datasets.get(self.dataset)


def holdout(split: datasets.Split, size: int, seed: int,
            source: str) -> tuple[np.ndarray, np.ndarray]:
  """A seeded draw of `size` training examples (inputs, labels).

  Raises:
    TfpruneError: `size` exceeds the split.
  """
  if size > len(split):
    raise TfpruneError(f'holdout_size {size} exceeds the {len(split)} training '
                       f'examples of {source}: pass at most {len(split)}')
  chosen = np.sort(np.random.default_rng(seed).permutation(len(split))[:size])
  return split.images[chosen], split.labels[chosen]


def cross_entropy(outputs: np.ndarray, labels: np.ndarray) -> float:
  """Mean cross-entropy of `outputs` (logits, or probabilities if a softmax made them)."""
  out = np.asarray(outputs, np.float64).reshape(len(labels), -1)
  probabilities = (np.all(out >= 0) and
                   np.allclose(out.sum(axis=1), 1, atol=1e-3))
  if probabilities:
    log_p = np.log(np.clip(out, 1e-12, 1))
  else:
    shifted = out - out.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
  return float(-np.mean(log_p[np.arange(len(labels)), labels]))


def scan(graph: Graph, names: Sequence[str], criterion: str,
         levels: Sequence[float], x: np.ndarray, labels: np.ndarray,
         executor: str = 'serial') -> scan_lib.Scan:
  """Each layer of `names` pruned alone at each level; writes nothing.

  Each (layer, level) is one trial (`_trial`), run by `executor` (a key of
  `runtime.executors.EXECUTORS`); the scan is the same whichever runs them.

  Args:
    graph: the dense network.
    names: the layers to scan.
    criterion: a criterion ranking one kernel alone (`graph_pruning.get`).
    levels: k in percent, starting at 0.
    x, labels: held-out training inputs and integer labels.
    executor: where the trials run.
  """
  points = [(None, 0.0)] + [(name, k) for name in names for k in levels if k]
  measured = dict(zip(points, executors.map_trials(
      executor, _prepare, _trial, _Payload(graph, criterion, x, labels),
      points)))
  curves = {}
  for name in names:
    accuracy, loss = zip(*(measured[(name, k) if k else (None, 0.0)]
                           for k in levels))
    curves[name] = scan_lib.Curve(graph.node(name).params['kernel'].size,
                                  tuple(levels), accuracy, loss)
  return scan_lib.Scan(curves, graph_pruning.get(criterion).name)


@dataclasses.dataclass(frozen=True)
class _Payload:
  """What every trial of a scan reads."""
  graph: Graph
  criterion: str
  x: np.ndarray
  labels: np.ndarray


def _prepare(payload: _Payload) -> tuple[_Payload, Evaluator]:
  return payload, Evaluator(payload.graph)


def _trial(context: tuple[_Payload, Evaluator],
           point: tuple[str | None, float]) -> tuple[float, float]:
  """(accuracy, loss) with layer `point[0]` alone pruned at `point[1]` (None: dense)."""
  payload, evaluator = context
  name, k = point
  pruned = (payload.graph if name is None else
            graph_pruning.prune(payload.graph, payload.criterion, k, [name]))
  outputs = evaluator.predict(payload.x, pruned)
  accuracy = float(np.mean(np.argmax(outputs.reshape(len(payload.x), -1), axis=1)
                           == payload.labels))
  return accuracy, cross_entropy(outputs, payload.labels)


def _load(config: ScanConfig) -> tuple[Graph, datasets.Split, str]:
  """The checked graph, its training split and where the data came from.

  The training split is held to the model's input layout and classes
  (`data.source`); a weight folder's examples are read flattened.
  """
  allow = config.allow_other_data
  folder = None
  if config.weights_dir is not None:
    folder = weights.load(config.weights_dir)
    if config.data is None and not allow:
      weights.check_made_for(folder, config.weights_dir, config.dataset)
  given = data_source.load(config.dataset, config.data_dir, config.data)
  train = given.train_split()
  if train is None:
    raise TfpruneError(f'{config.data} has no x_train/y_train: the scan '
                       'measures on training data, never the test set; add them')
  if folder is None:
    graph, recorded = model_checks.import_model(config.model_file, train.images)
    given.check_made_on(recorded, config.model_file, allow)
    data_source.fits(train, graph.input_shape, int(np.prod(graph.output_shape)),
                     given.name, 'train')
  else:
    given.check_made_on(provenance.from_manifest(folder.manifest),
                        config.weights_dir, allow)
    graph = folder_graph.to_graph(folder, config.use_biases)
    train = folder_graph.shaped(train, graph.input_shape)
    data_source.fits(train, graph.input_shape, int(np.prod(graph.output_shape)),
                     given.name, 'train')
  return graph, train, given.name


def run(config: ScanConfig, executor: str = 'serial') -> scan_lib.Scan:
  """Scans, then writes the CSV, the config JSON and the plot to `out_dir`.

  `executor` (a key of `runtime.executors.EXECUTORS`) runs the trials; the
  files are the same bytes whichever does.
  """
  atomic.check_writable(config.out_dir)
  graph, train, source = _load(config)
  x, labels = holdout(train, config.holdout_size, config.holdout_seed, source)
  x = x.reshape(len(x), *graph.input_shape)  # a weight folder's: flattened
  names = graph_pruning.prunable(graph, config.prune_layers,
                                 config.prune_output_layer)
  out_dir = atomic.ensure_dir(config.out_dir)
  result = scan(graph, names, config.criterion, config.levels, x, labels,
                executor)
  csv_path = atomic.write_text(out_dir / CSV_NAME, scan_lib.to_csv(result))
  record = {'config': provenance.config_record(config), 'layers': names,
            'tfprune_version': __version__}
  atomic.write_text(out_dir / CONFIG_NAME, json.dumps(record, indent=2) + '\n')
  sensitivity_plot.plot(csv_path, out_dir / PLOT_NAME)
  return result
