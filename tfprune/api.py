"""The public API: import a Keras model, prune it, score it, save it, build it back.

    import tfprune
    graph = tfprune.from_keras('my.keras')           # exact, or refused in one line
    pruned = tfprune.prune(graph, 'weight', 90)      # 90% of each hidden kernel
    pruned = tfprune.prune(graph, tfprune.OBS(), 90, calibration=x_train[:2048])
    pruned = tfprune.prune(graph, 'weight', 90, allocation='erk')
    pruned = tfprune.prune(graph, 'weight', pattern='2:4')
    print(tfprune.evaluate(pruned, x_test, y_test))  # top-1 accuracy
    small = tfprune.compact(pruned)                  # removed channels physically gone
    tfprune.save(small, 'pruned.npz')
    tfprune.to_keras(small).save('pruned.keras')     # plain Keras, no tfprune needed

A criterion is a registered name (`tfprune.criterion_names()`) or an object: a
subclass of `WeightImportance`, `ChannelImportance` or `DataAwareImportance`
(see docs/criteria.md); `tfprune.register` makes it a name for the scripts.
"""

import pathlib
from typing import Sequence


from tfprune.allocation import allocators
from tfprune.allocation import scan as scan_lib
from tfprune.criteria import graph_pruning
from tfprune.criteria import importances
from tfprune.criteria import nm_calibrated
from tfprune.criteria.importances import OptimalBrainSurgeon as OBS
from tfprune.criteria.importances import Wanda
from tfprune.criteria.importances import register
from tfprune.criteria.patterns import Pattern
from tfprune.criteria.protocol import ChannelImportance
from tfprune.criteria.protocol import DataAwareImportance
from tfprune.criteria.protocol import Importance
from tfprune.criteria.protocol import WeightImportance
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import io as graph_io
from tfprune.graph import pruned_file
from tfprune.graph import weights
from tfprune.graph.ir import Graph
from tfprune.keras_io.build import to_keras
from tfprune.keras_io.importer import from_keras
from tfprune.transforms import channel_pruning
from tfprune.transforms import graph_compaction

__all__ = ['Graph', 'from_keras', 'to_keras', 'load', 'save', 'prune',
           'compact', 'evaluate', 'predict', 'criterion_names', 'allocations',
           'allocate', 'register', 'Importance', 'WeightImportance',
           'ChannelImportance', 'DataAwareImportance', 'Wanda', 'OBS', 'Pattern']


def load(path: str | pathlib.Path) -> Graph:
  """A graph from a tfprune `.npz` graph file, a `.npy` weight folder or a Keras file.

  Raises:
    TfpruneError: the path is none of these, or cannot be read.
  """
  path = pathlib.Path(path)
  if path.is_dir() and any(path.glob('weight-*.npy')):
    return weights.load_graph(path)
  if path.suffix == graph_io.SUFFIX:
    return pruned_file.load(path)  # a graph file, or an old dense export
  if path.suffix in ('.keras', '.h5', '.hdf5') or path.is_dir():
    return from_keras(path)
  raise TfpruneError(f'{path} is not a graph .npz, a weight folder or a Keras '
                     'model file: pass one of these')


def save(graph: Graph, path: str | pathlib.Path) -> pathlib.Path:
  """Writes `graph` as a `.npz` graph file (sparse arrays where smaller)."""
  return graph_io.save(graph, path)


def criterion_names() -> tuple[str, ...]:
  """The registered criterion names (built-ins and `register`ed ones)."""
  return tuple(importances.REGISTRY)


def allocations() -> tuple[str, ...]:
  """The allocation names: how an overall level is spread over layers."""
  return tuple(allocators.ALLOCATIONS)


def allocate(graph: Graph, allocation: str, k: float,
             layers: Sequence[str] | None = None,
             sensitivity_csv: str | None = None) -> dict[str, float]:
  """Per-layer levels {layer: k%} of `allocation` for an overall level k.

  Args:
    graph: the network.
    allocation: 'uniform', 'global', 'erk' or 'sensitivity'.
    k: percent of all the chosen kernels' weights together.
    layers: the layers to prune (default: every kernel but the output's).
    sensitivity_csv: the scan `sensitivity` reads (experiments/sensitivity.py).
  """
  names = graph_pruning.prunable(graph, layers)
  kernels = {n: graph.node(n).params['kernel'] for n in names}
  scan = None
  if sensitivity_csv is not None:
    scan = scan_lib.read_csv(sensitivity_csv)
    scan_lib.check_matches(scan, {n: w.size for n, w in kernels.items()},
                           sensitivity_csv)
  return allocators.allocate(allocation, kernels, k, scan)


def prune(graph: Graph, criterion: 'str | Importance', k: float | None = None,
          layers: Sequence[str] | None = None, prune_output_layer: bool = False,
          calibration=None, allocation: str = 'uniform',
          pattern: 'str | Pattern | None' = None,
          sensitivity_csv: str | None = None,
          prune_layer_norm: bool = False) -> Graph:
  """`graph` pruned by `criterion` at k percent.

  Args:
    graph: the network.
    criterion: a name of `criterion_names()` ('weight', 'unit', 'unit_l1',
      'unit_bn', 'filter_l1', 'random', 'wanda', 'obs') or an `Importance`
      object, e.g. `tfprune.OBS(damping=0.01)` or your own.
    k: percentage of each chosen kernel's weights (or channels) to prune;
      channel criteria remove k% of the channels of every dependency group
      holding a chosen layer (residual adds and concatenations pruned
      together). Unused with `pattern`.
    layers: layer names to prune; default every layer with a kernel but the
      output layer (or with it, if `prune_output_layer`).
    prune_output_layer: prune the output layer too.
    calibration: training examples, for data-aware criteria (wanda, obs);
      for several inputs, a dict of arrays by input name (or a list in the
      order of `graph.inputs`), the same examples in each.
    allocation: how k is spread over the layers: 'uniform' (k% of each), or
      'global', 'erk', 'sensitivity' (k% of all their weights together).
    pattern: 'N:M' (e.g. '2:4'): keep N of every M consecutive weights of
      each kernel, ranked by a weight-level criterion, or by `wanda` or
      `obs` on `calibration` (Dense layers).
    sensitivity_csv: the scan that `allocation='sensitivity'` reads.
    prune_layer_norm: channel criteria also remove channels that a
      LayerNormalization normalises over (a Transformer's residual stream,
      the embedding width): the masked layer norm normalises over the kept
      channels only, and `compact` makes it a smaller LayerNormalization.
      Default: those channels are kept.

  Raises:
    TfpruneError: an unknown name, a bad level, pattern or allocation, or a
      data-aware criterion without `calibration`.
  """
  names = graph_pruning.prunable(graph, layers, prune_output_layer)
  if pattern is not None:
    if not importances.get(criterion).needs_calibration:
      return graph_pruning.pattern(graph, criterion, names, pattern)
    if calibration is None:
      raise TfpruneError(f'{importances.get(criterion).name} ranks the N:M '
                         'groups by data: pass calibration= (training examples)')
    return nm_calibrated.prune(graph, criterion, names, pattern, calibration)
  if k is None:
    raise TfpruneError('no level given: pass k, a percentage such as 50')
  levels = k
  if allocation != 'uniform':
    levels = allocate(graph, allocation, k, names, sensitivity_csv)
  return channel_pruning.prune_graph(graph, criterion, levels, names, calibration,
                                     prune_layer_norm)


def compact(graph: Graph) -> Graph:
  """The smaller graph computing what the pruned `graph` computes.

  Every channel of a dependency group that a pruned graph no longer needs
  (its producing kernels zero, so it carries a constant, folded into the
  consumers' biases; or nothing reads it) is removed from every layer of the
  group (`graph_compaction.compact_zeros`). An unpruned graph comes back as
  it is.
  """
  return graph_compaction.compact_zeros(graph)


def predict(graph: Graph, x):
  """The network's outputs on inputs `x`.

  For several inputs, `x` is a dict of arrays by input name (or a list in
  the order of `graph.inputs`); several outputs come as a list of arrays in
  the order of `graph.outputs`.
  """
  return evaluator.predict(graph, x)


def evaluate(graph: Graph, x, labels):
  """Top-1 accuracy of `graph` on inputs `x` with integer `labels`.

  For several outputs, `labels` is a dict of arrays by output name, and the
  result a dict of accuracies by output name.
  """
  if isinstance(labels, dict):
    return evaluator.Evaluator(graph).accuracies(x, labels)
  return evaluator.Evaluator(graph).accuracy(x, labels)
