"""The sweep's allocations, N:M patterns and bias correction, on a graph.

`sweep` asks this module, for each overall level k, the per-layer levels of
the config's allocation (plain k under `uniform`, so the default sweep is
unchanged) and, after pruning, each layer's measured sparsity for the
`layer_sparsity` column. With `--pattern=N:M` it also prunes every
weight-level method with that pattern: those rows are named `<method>-N:M`
(e.g. `weight-2:4`) and their k is 100·(M−N)/M.

Layers are named as in the graph: a weight folder's 0-based layer i is
`layer_<i+1>` (`network_graph`), a Keras model's layers by their Keras names.
`GraphPruner` prunes one point (and corrects its biases with
`bias_correction`).
"""

import dataclasses
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from tfprune.allocation import allocators
from tfprune.allocation import scan as scan_lib
from tfprune.criteria import bias_correction
from tfprune.criteria import graph_pruning
from tfprune.criteria import importances
from tfprune.criteria import nm_calibrated
from tfprune.criteria import patterns
from tfprune.errors import TfpruneError
from tfprune.graph.ir import Graph
from tfprune.transforms import channel_pruning

UNIFORM = 'uniform'


def pattern_criteria() -> tuple[str, ...]:
  """The registered criteria that score single weights, so an N:M pattern can rank them."""
  return importances.names(per_weight=True)


def check(allocation: str, sensitivity_csv: str | None, pattern: str | None,
          methods: Sequence[str]) -> None:
  """Validates the sweep's allocation flags, telling the fix.

  Raises:
    TfpruneError: unknown allocation, a scan missing or given without
      `sensitivity`, a bad pattern, a pattern without a weight-level method,
      or per-layer levels for a method that ranks channels across layers.
  """
  allocators.get(allocation)
  across = [m for m in methods if not importances.get(m).per_layer]
  if allocation != UNIFORM and across:
    raise TfpruneError(
        f'--allocation={allocation} gives each layer its own level, but '
        f'{across[0]} ranks channel groups across layers: use '
        f'--allocation=uniform with {across[0]}, or method unit')
  if allocation in allocators.NEEDS_SCAN and not sensitivity_csv:
    raise TfpruneError(f'--allocation={allocation} needs --sensitivity_csv: '
                       'make one with experiments/sensitivity.py')
  if sensitivity_csv and allocation not in allocators.NEEDS_SCAN:
    raise TfpruneError('--sensitivity_csv is only read by '
                       '--allocation=sensitivity: drop it or set the allocation')
  if pattern is not None:
    patterns.parse(pattern)
    if allocation != UNIFORM:
      raise TfpruneError(f'--pattern={pattern} fixes every layer at N of M: '
                         f'drop --allocation={allocation} or --pattern')
    if not any(importances.get(m).per_weight for m in methods):
      raise TfpruneError(f'--pattern needs a weight-level method: add one of '
                         f'{",".join(pattern_criteria())} to --methods')


def load_scan(allocation: str, path: str | None,
              sizes: Mapping[str, int]) -> scan_lib.Scan | None:
  """The sensitivity scan the allocation reads, checked against `sizes`."""
  if allocation not in allocators.NEEDS_SCAN:
    return None
  scan = scan_lib.read_csv(path)
  scan_lib.check_matches(scan, sizes, path)
  return scan


def graph_levels(allocation: str, graph: Graph, names: Sequence[str], k: float,
                 scan: scan_lib.Scan | None) -> float | dict[str, float]:
  """k itself under `uniform`, else {node name: level}."""
  if allocation == UNIFORM:
    return k
  return allocators.allocate(
      allocation, {n: graph.node(n).params['kernel'] for n in names}, k, scan)


def layer_sparsity(kernels: Mapping[str, np.ndarray]) -> str:
  """Measured fraction of zeros per layer: 'layer_1=0.912;layer_2=0.850'."""
  return ';'.join(f'{name}={1 - np.count_nonzero(w) / w.size:.4f}'
                  for name, w in kernels.items())


def pattern_methods(pattern: str | None,
                    methods: Sequence[str]) -> list[tuple[str, str]]:
  """(row name, criterion) of each weight-level method to run with `pattern`."""
  if pattern is None:
    return []
  name = patterns.parse(pattern).name
  return [(f'{importances.get(m).name}-{name}', m) for m in methods
          if importances.get(m).per_weight]


def graph_pattern(graph: Graph, method: str, names: Sequence[str],
                  pattern: str, calibration: np.ndarray | None = None) -> Graph:
  """`graph` with `pattern` on the kernels of `names` (random: node i seed i).

  `wanda` and `obs` rank by their calibration scores (and `obs` re-fits the
  kept weights), node after node (`nm_calibrated`).
  """
  if importances.get(method).needs_calibration:
    return nm_calibrated.prune(graph, method, names, pattern, calibration)
  return graph_pruning.pattern(graph, method, names, pattern)


def pattern_level(pattern: str) -> float:
  """The k reported for a pattern's rows: 100·(M−N)/M."""
  return patterns.parse(pattern).level


class Point(NamedTuple):
  """One point of a sweep: a row's method name, its criterion and level.

  `pattern` is the config's N:M pattern for the `<method>-N:M` rows, else
  None.
  """
  row: str
  method: str
  k: float
  pattern: str | None = None


def sweep_points(config) -> list[Point]:
  """The points of a sweep config, in the sweep's row order.

  Every method at every level, then the N:M rows of `pattern_methods`.
  """
  points = [Point(importances.get(m).name, m, k) for m in config.methods
            for k in config.levels]
  return points + [Point(name, method, pattern_level(config.pattern),
                         config.pattern)
                   for name, method in pattern_methods(config.pattern,
                                                       config.methods)]


@dataclasses.dataclass(frozen=True)
class GraphPruner:
  """Prunes a graph at one `Point` of a sweep config.

  Made by `graph_pruner`, which checks the config first; picklable, so a
  trial can prune its point where it runs. The data-aware criteria and bias
  correction read `calibration`.
  """
  config: Any
  names: tuple[str, ...]
  calibration: np.ndarray | None
  scan: scan_lib.Scan | None

  def __call__(self, graph: Graph, point: Point) -> Graph:
    config, names, method = self.config, self.names, point.method
    if point.pattern is not None:
      pruned = graph_pattern(graph, method, names, point.pattern,
                             self.calibration)
    else:
      levels = graph_levels(config.allocation, graph, names, point.k, self.scan)
      # Under `uniform`, a channel criterion removes coupled channel groups
      # (`channel_pruning`); per-layer levels rank each kernel alone.
      pruned = channel_pruning.prune_graph(graph, method, levels, names,
                                           self.calibration)
    if config.bias_correction:
      pruned = bias_correction.correct_biases(graph, pruned, names,
                                              self.calibration)
    return pruned


def graph_pruner(config, graph: Graph, names: Sequence[str],
                 calibration: np.ndarray | None = None) -> GraphPruner:
  """The pruner of `config`'s points, after checking every method on `graph`."""
  for method in config.methods:  # before any point is pruned
    channel_pruning.check(graph, method, names)
  scan = load_scan(config.allocation, config.sensitivity_csv,
                   {n: graph.node(n).params['kernel'].size for n in names})
  return GraphPruner(config, tuple(names), calibration, scan)
