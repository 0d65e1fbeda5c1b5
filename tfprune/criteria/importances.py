"""The one registry of criteria: every built-in importance, and `register` for yours.

`REGISTRY` maps a name to its importance object (`protocol`). The sweep's
`--methods`, the sensitivity scan, the allocations, the N:M patterns, the
benchmarks and `tfprune.prune` all read it through `get`, which also takes
an object, so a user's criterion runs everywhere a built-in does.

  weight     |w| (magnitude), each kernel alone.
  random     seeded uniform scores: the baseline.
  unit       coupled channels of smallest L2 norm of their producing kernels.
  unit_l1    coupled channels of smallest L1 norm of every kernel weight they
             touch (producers, depthwise filters, consumers' input rows).
  unit_bn    coupled channels of smallest summed batch-norm |gamma|.
  filter_l1  each layer's filters of smallest L1 norm of the filter alone
             (Li et al. 2017; Study B's `structured_l1`).
  wanda      |w|·‖x‖ on calibration inputs (Wanda).
  obs        OBS saliency + layer-wise least-squares re-fit (SparseGPT/OBC).

Channel scores read a `transforms.groups.Group` through its slices' `role`
('producer', 'channel' or 'consumer') and `param`: criteria sit below
transforms, so the role names are compared as the strings they are.
"""

import numpy as np

from tfprune import registry
from tfprune.criteria import graph_reconstruction
from tfprune.criteria import pruning
from tfprune.criteria import protocol
from tfprune.criteria import reconstruction
from tfprune.errors import TfpruneError

_PRODUCER = 'producer'  # `transforms.groups.PRODUCER`


def channel_rows(graph, s) -> np.ndarray:
  """A group slice's values as (channels, r, rest) in float64."""
  value = np.moveaxis(np.asarray(graph.node(s.node).params[s.param],
                                 np.float64), s.axis, 0)
  return value.reshape(value.shape[0], -1)[s.indices]


class Magnitude(protocol.WeightImportance):
  name, summary = 'weight', 'smallest |w| of each layer (magnitude)'

  def __call__(self, kernel, seed=0):
    del seed
    kernel = np.asarray(kernel)
    # |w| in the weights' own float type: exact, and no float64 copy.
    return np.abs(kernel.astype(np.float32 if kernel.dtype == np.float32
                                else np.float64, copy=False))


class Random(protocol.WeightImportance):
  name, summary = 'random', 'weights chosen at random (seeded): the baseline'

  def __call__(self, kernel, seed=0):
    return np.random.default_rng(seed).random(np.shape(kernel))


class GroupL2(protocol.ChannelImportance):
  """L2 norm of each channel's producing kernel slices (all producers together).

  On a dense chain a group is one layer's units and this is exactly
  `pruning.unit_l2_mask`'s column norm.
  """
  name, summary = 'unit', 'columns (neurons) of smallest L2 norm'

  def __call__(self, graph, group):
    total = np.zeros(group.size)
    for s in group.slices:
      if s.role == _PRODUCER and s.param == 'kernel':
        # As `unit_l2_mask`: units last, sum of squares over axis 0.
        w = np.moveaxis(np.asarray(graph.node(s.node).params['kernel'],
                                   np.float64), s.axis, -1)
        column = np.sum(w.reshape(-1, w.shape[-1]) ** 2, axis=0)
        total += column[s.indices].sum(axis=1)
    return np.sqrt(total)

  @property
  def per_layer(self):
    return True

  def kernel_mask(self, kernel, k, mask=None):
    return pruning.unit_l2_mask(kernel, k, mask)


class GroupL1(protocol.ChannelImportance):
  """L1 norm of every kernel weight each channel touches."""
  name, summary = 'unit_l1', ('units (channels) of smallest L1 norm of every '
                              'weight they touch')

  def __call__(self, graph, group):
    return sum((np.abs(channel_rows(graph, s)).sum(axis=(1, 2))
                for s in group.slices if s.param == 'kernel'),
               np.zeros(group.size))


def bn_gammas(graph, group) -> list[np.ndarray]:
  """|gamma| per channel of each batch norm of `group` (none: empty list)."""
  return [np.abs(channel_rows(graph, s)).sum(axis=(1, 2))
          for s in group.slices if s.param == 'gamma']


class BatchNormScale(protocol.ChannelImportance):
  """Summed |gamma| of each channel's batch norms."""
  name, summary = 'unit_bn', ('channels of smallest batch-norm |gamma| '
                              '(networks with batch norm)')

  def __call__(self, graph, group):
    gammas = bn_gammas(graph, group)
    if not gammas:
      raise TfpruneError(f'group {group.name} has no batch norm to score by '
                         'gamma: use unit or unit_l1')
    return sum(gammas)


class FilterL1(protocol.ChannelImportance):
  """L1 norm of each channel's own filters (its producing kernel slices)."""
  name, summary = 'filter_l1', ('filters of smallest L1 norm of the filter '
                                'alone (Li et al. 2017)')

  def __call__(self, graph, group):
    return sum((np.abs(channel_rows(graph, s)).sum(axis=(1, 2))
                for s in group.slices
                if s.role == _PRODUCER and s.param == 'kernel'),
               np.zeros(group.size))

  @property
  def per_layer(self):
    return True

  def kernel_mask(self, kernel, k, mask=None):
    return pruning.unit_l1_mask(kernel, k, mask)


class Wanda(protocol.DataAwareImportance):
  name, summary = 'wanda', 'smallest |w| * ||x|| on calibration inputs (Wanda)'

  def prune_graph(self, graph, k, names, calibration):
    return graph_reconstruction.prune_wanda(graph, k, names, calibration)


class OptimalBrainSurgeon(protocol.DataAwareImportance):
  """OBS saliency and a least-squares re-fit of the kept weights (the reconstruction step)."""
  name, summary = 'obs', ('OBS saliency + layer-wise least-squares '
                          'reconstruction (SparseGPT)')

  def __init__(self, damping: float = reconstruction.DEFAULT_DAMPING,
               block_size: int = reconstruction.DEFAULT_BLOCK_SIZE):
    reconstruction.check_obs_args(damping, block_size)
    self.damping, self.block_size = damping, block_size

  def prune_graph(self, graph, k, names, calibration):
    return graph_reconstruction.prune_obs(graph, k, names, calibration,
                                          self.damping, self.block_size)


REGISTRY: dict[str, protocol.Importance] = {}


def register(importance: protocol.Importance) -> protocol.Importance:
  """Adds `importance` to `REGISTRY` under its `name`; returns it.

  Raises:
    TfpruneError: it is not an `Importance`, has no name, or the name is taken.
  """
  if not isinstance(importance, protocol.Importance):
    raise TfpruneError(f'{importance!r} is not a criterion: subclass '
                       'tfprune.WeightImportance, ChannelImportance or '
                       'DataAwareImportance')
  if not importance.name or importance.name in REGISTRY:
    raise TfpruneError(f'criterion name {importance.name!r} is empty or taken: '
                       'give your criterion a new name')
  REGISTRY[importance.name] = importance
  return importance


for _builtin in (Magnitude(), GroupL2(), Random(), Wanda(), OptimalBrainSurgeon(),
                 GroupL1(), BatchNormScale(), FilterL1()):
  register(_builtin)


def get(name_or_importance: 'str | protocol.Importance') -> protocol.Importance:
  """The registered criterion called `name`, or the importance object given.

  Raises:
    TfpruneError: an unknown name (listing the registered ones) or neither a
      name nor an `Importance`.
  """
  if isinstance(name_or_importance, protocol.Importance):
    return name_or_importance
  if not isinstance(name_or_importance, str):
    raise TfpruneError(f'{name_or_importance!r} is not a criterion: pass a name '
                       f'({", ".join(REGISTRY)}) or an Importance object')
  return registry.lookup(REGISTRY, name_or_importance, 'pruning method')


def names(**wanted) -> tuple[str, ...]:
  """The registered names whose attributes equal `wanted`, e.g. names(per_weight=True)."""
  return tuple(n for n, imp in REGISTRY.items()
               if all(getattr(imp, a) == v for a, v in wanted.items()))
