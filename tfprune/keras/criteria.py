"""What a Keras pruner ranks by: an adapter over tfprune's criteria and allocations.

A rule knows which variables it masks (`targets`), which it reads to rank
(`reads`), and turns their current values and masks into new masks at a
level k (percent). It only calls tfprune's pure criteria:

- weight criteria, on each prunable kernel alone: 'weight' (smallest |w|,
  `pruning.weight_magnitude_mask`) and 'random' (`pruning.random_mask`),
  with the per-layer levels of an allocation (`allocation.allocators`:
  uniform, global, erk, sensitivity); or, with a `pattern` such as '2:4',
  N:M masks of the same scores (`patterns.nm_mask`, the level unused);
- channel criteria 'unit', 'unit_l1', 'unit_bn' (those of `importances.REGISTRY`
  that remove channels):
  the model's graph (`tfprune.from_keras`) gives the dependency groups, so
  channels tied by a residual add are removed together, with every kernel
  slice, depthwise filter and (where zero padding needs it) bias and
  batch-norm entry they touch (`graph_gradual.removal_masks`).

Weights a mask removed stay removed: every rule ANDs its new masks with the
current ones, and the criteria rank masked weights (zeros) first.
"""

from typing import Sequence

import numpy as np

from tfprune import registry
from tfprune.allocation import allocators
from tfprune.allocation import scan as scan_lib
from tfprune.criteria import graph_pruning
from tfprune.criteria import importances
from tfprune.criteria import patterns
from tfprune.criteria import pruning
from tfprune.errors import TfpruneError
from tfprune.keras import targets as targets_lib
from tfprune.keras_io import importer
from tfprune.training import graph_gradual
from tfprune.transforms import channel_pruning
from tfprune.graph import groups as groups_lib

WEIGHT_CRITERIA = ('weight', 'random')
CHANNEL_CRITERIA = importances.names(removes_channels=True)
CRITERIA = (*WEIGHT_CRITERIA, *CHANNEL_CRITERIA)


class WeightRule:
  """Masks each prunable kernel by its own weights, at an allocation's per-layer levels."""

  def __init__(self, criterion: str, model, layers: Sequence[str] | None,
               prune_output_layer: bool, allocation: str = 'uniform',
               pattern: str | None = None, scan: scan_lib.Scan | None = None):
    self.criterion = criterion
    self.allocation = registry.check_choice(allocation, allocators.ALLOCATIONS,
                                            'allocation')
    if allocation in allocators.NEEDS_SCAN and scan is None:
      raise TfpruneError('the sensitivity allocation needs a scan: pass '
                         'scan=tfprune.allocation.scan.read(path) of '
                         'experiments/sensitivity.py')
    self.pattern = None if pattern is None else patterns.parse(pattern)
    self.scan = scan
    self.targets = targets_lib.choose(targets_lib.prunable_kernels(model),
                                      layers, prune_output_layer)
    self.reads = [t.variable for t in self.targets]
    layer_names = [t.layer for t in self.targets]
    # Allocations and scans name layers; a SeparableConv's two kernels by path.
    self.keys = [t.layer if layer_names.count(t.layer) == 1 else t.name
                 for t in self.targets]

  def _scores(self, i: int, value: np.ndarray) -> np.ndarray:
    if self.criterion == 'random':
      return np.random.default_rng(i).random(value.shape)
    return np.abs(value)

  def masks(self, values: Sequence[np.ndarray], current: Sequence[np.ndarray],
            k: float) -> list[np.ndarray]:
    """New masks at overall level k (unused with a pattern)."""
    if self.pattern is not None:
      return [patterns.nm_mask(np.where(m, self._scores(i, v), -1.0),
                               self.pattern) & m
              for i, (v, m) in enumerate(zip(values, current))]
    levels = allocators.allocate(self.allocation, dict(zip(self.keys, values)),
                                 k, self.scan)
    out = []
    for i, (key, value, mask) in enumerate(zip(self.keys, values, current)):
      if self.criterion == 'random':
        out.append(pruning.random_mask(value, levels[key], mask, seed=i))
      else:
        out.append(pruning.weight_magnitude_mask(value, levels[key], mask))
    return out


class ChannelRule:
  """Removes the weakest channels of every dependency group holding a chosen layer."""

  def __init__(self, method: str, model, layers: Sequence[str] | None,
               prune_output_layer: bool, data: np.ndarray | None = None):
    self.graph = importer.from_keras(model, data=data)
    self.names = graph_pruning.prunable(self.graph, layers, prune_output_layer)
    self.analysis = groups_lib.analyse(self.graph)
    channel_pruning.check(self.graph, method, self.names, self.analysis)
    self.importance = method
    chosen = channel_pruning.chosen(self.analysis, self.names)
    if not chosen:
      raise TfpruneError(f'no channel of {", ".join(self.names)} can be removed '
                         '(each is tied to the network input or output): '
                         'choose other layers, or use criterion weight')
    variables = targets_lib.graph_variables(model, self.graph)
    touched = graph_gradual.removal_masks(
        self.graph, self.analysis, {g.name: np.arange(g.size) for g in chosen})
    missing = [f'{n}.{p}' for n, p in touched if (n, p) not in variables]
    if missing:
      raise TfpruneError(f'{", ".join(missing)} of the graph is held in no Keras '
                         'variable, so its channels cannot be masked in training')
    self.keys = list(touched)
    self.targets = [targets_lib.Target(variables[key].path, key[0],
                                       variables[key]) for key in self.keys]
    self.read_keys = list(variables)
    self.reads = [variables[key] for key in self.read_keys]
    # The graph's shape of each array (an attention kernel's differs).
    self.shapes = {(n, p): self.graph.node(n).params[p].shape
                   for n, p in variables}

  def masks(self, values: Sequence[np.ndarray], current: Sequence[np.ndarray],
            k: float) -> list[np.ndarray]:
    """New masks removing floor(k·m/100) channels of each chosen group of m."""
    params: dict[str, dict[str, np.ndarray]] = {}
    for (node, param), value in zip(self.read_keys, values):
      params.setdefault(node, {})[param] = np.asarray(
          value, np.float32).reshape(self.shapes[(node, param)])
    now = self.graph.with_params(params)
    removed = channel_pruning.select(now, self.analysis, self.importance, k,
                                     self.names)
    keep = graph_gradual.removal_masks(self.graph, self.analysis, removed)
    return [keep[key].reshape(mask.shape) & mask if key in keep else mask
            for key, mask in zip(self.keys, current)]


def make(criterion: str, model, layers: Sequence[str] | None = None,
         prune_output_layer: bool = False, allocation: str = 'uniform',
         pattern: str | None = None, scan: scan_lib.Scan | None = None,
         data: np.ndarray | None = None):
  """The rule of `criterion` (a key of `CRITERIA`) for `model`.

  Raises:
    TfpruneError: unknown criterion, an option the criterion does not take,
      or nothing to prune.
  """
  registry.check_choice(criterion, CRITERIA, 'pruning criterion')
  if criterion in WEIGHT_CRITERIA:
    return WeightRule(criterion, model, layers, prune_output_layer, allocation,
                      pattern, scan)
  if allocation != 'uniform' or pattern is not None:
    raise TfpruneError(f'criterion {criterion!r} removes the same share of every '
                       'channel group: drop allocation and pattern (they apply '
                       'to the weight criteria)')
  return ChannelRule(criterion, model, layers, prune_output_layer, data)


