"""The criterion protocol: an importance object scores what pruning may remove.

After Torch-Pruning's `Importance.__call__(group)`: a criterion is one object
of one of three kinds, registered once under its `name`
(`criteria.importances.register`), and every tool (the sweep's `--methods`,
the sensitivity scan, allocations, N:M patterns, the benchmarks,
`tfprune.prune`) takes a registered name or the object itself.

* `WeightImportance`: a group of one weight. `__call__(kernel, seed)` gives a
  score per weight of one kernel; the floor(k·n/100) lowest go (ties: lower
  flat index first), and under an N:M pattern the N highest of every M.
* `ChannelImportance`: a dependency group (coupled channels that must go
  together: a residual add's inputs, a concatenation's parts, a batch norm's
  channels). `__call__(graph, group)` gives a score per channel of
  `group` (a `transforms.groups.Group`); the floor(k·m/100) lowest of each
  group go from every layer of the group, and the saved model is compacted.
* `DataAwareImportance`: reads a calibration batch of training inputs.
  `prune_graph(graph, k, names, calibration)` walks the chosen nodes in
  order, each scored on its inputs through the graph pruned so far; a
  reconstruction step (OBS/SparseGPT) also re-fits the kept weights.

A user's criterion is a subclass with a `name` and a `__call__` (or
`prune_graph`); see docs/criteria.md.
"""

import abc

import numpy as np

from tfprune.criteria import patterns
from tfprune.criteria import pruning


class Importance(abc.ABC):
  """What every criterion has.

  Attributes:
    name: its registry key, also the sweep's row name (`--methods`).
    summary: one line for `--help` and the docs.
    needs_calibration: whether it reads calibration inputs.
    removes_channels: whether it removes whole coupled channels, so the
      model a sweep saves (and measures) is compacted.
  """
  name: str = ''
  summary: str = ''
  needs_calibration: bool = False
  removes_channels: bool = False

  @property
  def per_layer(self) -> bool:
    """Whether it ranks each kernel by that kernel alone.

    Only such a criterion takes a level per layer (the allocations) or one
    layer at a time (the sensitivity scan).
    """
    return False

  @property
  def per_weight(self) -> bool:
    """Whether it scores single weights, so an N:M pattern can rank them."""
    return False

  def __repr__(self) -> str:
    return f'{type(self).__name__}({self.name!r})'


class WeightImportance(Importance):
  """A group of one weight: a score per weight of one kernel, the lowest pruned."""

  @abc.abstractmethod
  def __call__(self, kernel: np.ndarray, seed: int = 0) -> np.ndarray:
    """Scores shaped like `kernel` (higher: more important).

    Args:
      kernel: one layer's kernel (any layout).
      seed: the layer's position among the pruned ones (for seeded criteria).
    """

  @property
  def per_layer(self) -> bool:
    return True

  @property
  def per_weight(self) -> bool:
    return True

  def mask(self, kernel: np.ndarray, k: float, mask: np.ndarray | None = None,
           seed: int = 0) -> np.ndarray:
    """The kept weights at level k: floor(k·n/100) lowest scores pruned.

    Weights `mask` already pruned count first towards the k% and stay pruned.
    """
    return pruning.weight_magnitude_mask(self(kernel, seed), k, mask)

  def pattern_mask(self, kernel: np.ndarray, pattern: patterns.Pattern,
                   unit_axis: int = -1, seed: int = 0) -> np.ndarray:
    """The kept weights under an N:M pattern along the kernel's input axis."""
    return patterns.nm_mask(self(kernel, seed), pattern, unit_axis)


class ChannelImportance(Importance):
  """A dependency group: a score per coupled channel, the lowest removed together."""
  removes_channels = True

  @abc.abstractmethod
  def __call__(self, graph, group) -> np.ndarray:
    """One score per channel of `group` (a `transforms.groups.Group` of `graph`)."""

  def kernel_mask(self, kernel: np.ndarray, k: float,
                  mask: np.ndarray | None = None) -> np.ndarray:
    """The kept output units (last axis) of one kernel ranked alone, at level k.

    Only criteria whose score one kernel holds (`per_layer`) have it; it
    serves per-layer levels (allocations) and the sensitivity scan.
    """
    raise NotImplementedError(f'{self.name} ranks a channel by more than one '
                              'kernel')


class DataAwareImportance(Importance):
  """Scores (and may re-fit) each chosen node on its calibration inputs."""
  needs_calibration = True

  @property
  def per_layer(self) -> bool:
    return True

  @property
  def per_weight(self) -> bool:
    return True

  @abc.abstractmethod
  def prune_graph(self, graph, k, names, calibration: np.ndarray):
    """`graph` with the kernels of `names` pruned at level k.

    Args:
      graph: the dense graph (not modified).
      k: one level in percent, or {node name: level}.
      names: the nodes to prune, pruned in graph order.
      calibration: (n, ...) training examples.
    """
