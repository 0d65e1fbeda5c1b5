"""The sweep's allocations and N:M patterns, on either path (Network or graph).

`sweep` asks this module, for each overall level k, the per-layer levels of
the config's allocation (plain k under `uniform`, so the default sweep is
unchanged) and, after pruning, each layer's measured sparsity for the
`layer_sparsity` column. With `--pattern=N:M` it also prunes every
weight-level method with that pattern: those rows are named `<method>-N:M`
(e.g. `weight-2:4`) and their k is 100·(M−N)/M.

Layers are named as in the graph: a weight folder's 0-based layer i is
`layer_<i+1>` (`network_graph`), a Keras model's layers by their Keras names.
"""

from typing import Iterator, Mapping, Sequence

import numpy as np

from tfprune.allocation import allocators
from tfprune.allocation import scan as scan_lib
from tfprune.criteria import graph_pruning
from tfprune.criteria import importances
from tfprune.criteria import methods as methods_lib
from tfprune.criteria import patterns
from tfprune.criteria import reconstruction
from tfprune.criteria import unit_groups
from tfprune.errors import TfpruneError
from tfprune.graph.ir import Graph
from tfprune.transforms import channel_pruning
from tfprune.graph.network import Network

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


def layer_name(index: int) -> str:
  """The graph name of a weight folder's 0-based layer `index`."""
  return f'layer_{index + 1}'


def load_scan(allocation: str, path: str | None,
              sizes: Mapping[str, int]) -> scan_lib.Scan | None:
  """The sensitivity scan the allocation reads, checked against `sizes`."""
  if allocation not in allocators.NEEDS_SCAN:
    return None
  scan = scan_lib.read_csv(path)
  scan_lib.check_matches(scan, sizes, path)
  return scan


def network_levels(allocation: str, network: Network, layers: Sequence[int],
                   k: float, scan: scan_lib.Scan | None
                   ) -> float | dict[int, float]:
  """k itself under `uniform`, else {layer index: level}."""
  if allocation == UNIFORM:
    return k
  levels = allocators.allocate(
      allocation, {layer_name(i): network.kernels[i] for i in layers}, k, scan)
  return {i: levels[layer_name(i)] for i in layers}


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


def network_pattern(network: Network, method: str, layers: Sequence[int],
                    pattern: str, calibration: np.ndarray | None = None,
                    use_biases: bool = True) -> Network:
  """`network` with `pattern` on `layers`, ranked by `method` (random: seed i).

  `wanda` and `obs` rank by their calibration scores (and `obs` re-fits the
  kept weights), layer after layer as without a pattern.
  """
  p = patterns.parse(pattern)
  importance = importances.get(method)
  if isinstance(importance, importances.Wanda):
    return reconstruction.prune_wanda(network, p.level, layers, calibration,
                                      use_biases=use_biases, pattern=p)
  if isinstance(importance, importances.OptimalBrainSurgeon):
    return reconstruction.prune_obs(network, p.level, layers, calibration,
                                    use_biases, importance.damping,
                                    importance.block_size, pattern=p)
  return network.masked([
      importance.pattern_mask(w, p, seed=i) if i in set(layers) else None
      for i, w in enumerate(network.kernels)])


def graph_pattern(graph: Graph, method: str, names: Sequence[str],
                  pattern: str) -> Graph:
  """`graph` with `pattern` on the kernels of `names` (random: node i seed i)."""
  return graph_pruning.pattern(graph, method, names, pattern)


def pattern_level(pattern: str) -> float:
  """The k reported for a pattern's rows: 100·(M−N)/M."""
  return patterns.parse(pattern).level


def network_points(config, network: Network, layers: Sequence[int],
                   calibration: np.ndarray | None
                   ) -> Iterator[tuple[str, float, Network]]:
  """Yields (method, k, pruned network) for each point of a sweep config.

  Every method at every level under the config's allocation, then the N:M
  rows of `pattern_methods`.
  """
  for method in config.methods:  # before any point is pruned
    unit_groups.check(network, importances.get(method).name)
  scan = load_scan(config.allocation, config.sensitivity_csv,
                   {layer_name(i): network.kernels[i].size for i in layers})
  for method in config.methods:
    for k in config.levels:
      levels = network_levels(config.allocation, network, layers, k, scan)
      yield importances.get(method).name, k, methods_lib.prune(
          method, network, levels, layers, calibration, config.use_biases,
          config.bias_correction)
  for name, method in pattern_methods(config.pattern, config.methods):
    yield (name, pattern_level(config.pattern),
           network_pattern(network, method, layers, config.pattern, calibration,
                           config.use_biases))


def check_graph_pattern(config) -> None:
  """Refuses an N:M pattern ranked by calibration data on a graph (not yet built)."""
  for method in config.methods:
    if config.pattern is not None and importances.get(method).needs_calibration:
      raise TfpruneError(f'--pattern with {importances.get(method).name} runs '
                         'on dense-chain weight '
                         'folders only so far: use weight or random on this '
                         'network')


def graph_points(config, graph: Graph, names: Sequence[str],
                 calibration: np.ndarray | None = None
                 ) -> Iterator[tuple[str, float, Graph]]:
  """Yields (row name, k, pruned graph, criterion) for each point, like `network_points`.

  The data-aware criteria read `calibration`.
  """
  check_graph_pattern(config)
  for method in config.methods:  # before any point is pruned
    channel_pruning.check(graph, method, names)
  scan = load_scan(config.allocation, config.sensitivity_csv,
                   {n: graph.node(n).params['kernel'].size for n in names})
  for method in config.methods:
    for k in config.levels:
      levels = graph_levels(config.allocation, graph, names, k, scan)
      # Under `uniform`, a channel criterion removes coupled channel groups
      # (`channel_pruning`); per-layer levels rank each kernel alone.
      yield (importances.get(method).name, k, channel_pruning.prune_graph(
          graph, method, levels, names, calibration), importances.get(method))
  for name, method in pattern_methods(config.pattern, config.methods):
    yield (name, pattern_level(config.pattern),
           graph_pattern(graph, method, names, config.pattern),
           importances.get(method))
