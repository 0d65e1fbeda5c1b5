"""Structured pruning of any graph: score each dependency group, mask its weakest channels.

`IMPORTANCE` scores the channels of one `groups.Group` (pure functions of the
graph's arrays):

* `l2`: the L2 norm of each channel's producing kernel slices (all producers
  of the group together). On a dense chain a group is one layer's units and
  this is exactly `pruning.unit_l2_mask`'s column norm, so the `unit` method
  keeps its results there.
* `l1`: the L1 norm of every kernel weight the channel touches (producers,
  depthwise filters and the consumers' input rows).
* `bn_gamma`: the summed |gamma| of the channel's batch norms.

`METHODS` are the registry's methods (`criteria.methods.METHODS`) that
remove coupled channels on a graph, each with its importance: `unit` (l2),
`unit_l1` (l1) and `unit_bn` (bn_gamma). `select` removes exactly
floor(k * m / 100) of each group's m channels (the lowest scores, ties to
the lower channel index), always keeping one.
`mask` zeroes the removed channels' producing kernel slices and depthwise
filters, so each outputs a constant (e.g. relu(bias) or BN(bias)) that
`graph_compaction.compact` folds into the next layer's bias. Where the
channel reaches zero padding (a 'same' conv with a window > 1, ZeroPadding2D)
a constant would not stay constant at the borders, so the mask silences it:
biases, batch-norm gamma and beta (and per-channel offsets) are zeroed too.
"""

import logging
from typing import Callable, Mapping, Sequence

import numpy as np

from tfprune import registry
from tfprune.criteria import graph_pruning
from tfprune.criteria import methods as methods_lib
from tfprune.criteria import pruning
from tfprune.criteria import unit_groups
from tfprune.errors import TfpruneError
from tfprune.graph.ir import Graph
from tfprune.graph import groups as groups_lib

Removed = dict[str, np.ndarray]  # group name -> removed channel indices


def channel_rows(graph: Graph, s: groups_lib.Slice) -> np.ndarray:
  """The slice's values as (channels, r, rest) in float64."""
  value = np.moveaxis(np.asarray(graph.node(s.node).params[s.param],
                                 np.float64), s.axis, 0)
  return value.reshape(value.shape[0], -1)[s.indices]


def l2(graph: Graph, group: groups_lib.Group) -> np.ndarray:
  """L2 norm of each channel's producing kernel slices."""
  total = np.zeros(group.size)
  for s in group.slices:
    if s.role == groups_lib.PRODUCER and s.param == 'kernel':
      # As `unit_l2_mask`: units last, sum of squares over axis 0.
      w = np.moveaxis(np.asarray(graph.node(s.node).params['kernel'],
                                 np.float64), s.axis, -1)
      column = np.sum(w.reshape(-1, w.shape[-1]) ** 2, axis=0)
      total += column[s.indices].sum(axis=1)
  return np.sqrt(total)


def l1(graph: Graph, group: groups_lib.Group) -> np.ndarray:
  """L1 norm of every kernel weight each channel touches."""
  return sum((np.abs(channel_rows(graph, s)).sum(axis=(1, 2))
              for s in group.slices if s.param == 'kernel'),
             np.zeros(group.size))


def _gammas(graph: Graph, group: groups_lib.Group) -> list[np.ndarray]:
  return [np.abs(channel_rows(graph, s)).sum(axis=(1, 2))
          for s in group.slices if s.param == 'gamma']


def bn_gamma(graph: Graph, group: groups_lib.Group) -> np.ndarray:
  """Summed |gamma| of each channel's batch norms.

  Raises:
    TfpruneError: the group has no batch norm.
  """
  gammas = _gammas(graph, group)
  if not gammas:
    raise TfpruneError(f'group {group.name} has no batch norm to score by '
                       'gamma: use importance l2 or l1')
  return sum(gammas)


IMPORTANCE: dict[str, Callable[[Graph, groups_lib.Group], np.ndarray]] = {
    'l2': l2, 'l1': l1, 'bn_gamma': bn_gamma}
# Graph pruning methods that remove coupled channels, and their importance.
METHODS: dict[str, str] = {
    name: method.channel_importance
    for name, method in methods_lib.METHODS.items() if method.channel_importance}


# Every method `prune_graph` runs: the per-kernel criteria, then the channel
# methods (a name in both, 'unit', is listed once).
GRAPH_METHODS: tuple[str, ...] = tuple(dict.fromkeys([*graph_pruning.CRITERIA,
                                                      *METHODS]))


def check_method(name: str) -> str:
  """Returns `name` if `prune_graph` runs it.

  Raises:
    TfpruneError: unknown method, listing `GRAPH_METHODS`.
  """
  return registry.check_choice(name, GRAPH_METHODS, 'pruning method')


# The floor(k*m/100) lowest of m scores (at most m - 1), ties to lower index:
# the same rule ranks a dense chain's units (`unit_groups`).
lowest = unit_groups.lowest


def chosen(analysis: groups_lib.Analysis,
           names: Sequence[str] | None = None) -> list[groups_lib.Group]:
  """The groups to prune: those holding a node of `names` (default: all).

  Groups that cannot be pruned are left out, with a warning naming why.
  """
  picked = []
  for group in analysis.groups:
    if names is not None and not set(group.nodes) & set(names):
      continue
    if group.refused:
      if names is not None:
        logging.warning('channels of %s are kept: %s', group.name, group.refused)
      continue
    picked.append(group)
  return picked


def select(graph: Graph, analysis: groups_lib.Analysis, importance: str,
           k: float, names: Sequence[str] | None = None) -> Removed:
  """The channels of each chosen group to remove at level k.

  Args:
    graph: the network.
    analysis: `groups.analyse(graph)`.
    importance: a key of `IMPORTANCE`.
    k: percentage of each group's channels, in [0, 100].
    names: prune the groups holding these nodes (default: every group).
  """
  pruning.check_level(k)
  score = registry.lookup(IMPORTANCE, importance, 'importance')
  groups = chosen(analysis, names)
  if k and not groups:
    _nothing_to_prune(analysis, names)
  return {g.name: lowest(score(graph, g), k) for g in groups}


def _nothing_to_prune(analysis: groups_lib.Analysis,
                      names: Sequence[str] | None) -> None:
  """Refuses, in one line, a channel pruning that could remove nothing."""
  kept = [g for g in analysis.groups if g.refused and (
      names is None or set(g.nodes) & set(names))]
  more = f' (and {len(kept) - 3} more)' if len(kept) > 3 else ''
  why = (f'every channel group is kept ('
         + '; '.join(f'{g.name}: {g.refused}' for g in kept[:3]) + f'{more})'
         if kept else f'no channel group holds {", ".join(names or ())}')
  raise TfpruneError(f'unit pruning would remove no channel: {why}: prune '
                     'weights instead (method weight)')


# Arrays zeroed on a silenced channel besides the kernels: what makes it 0.
_SILENCED = {'bias', 'gamma', 'beta', 'offset', 'mean'}


def mask(graph: Graph, analysis: groups_lib.Analysis,
         removed: Mapping[str, np.ndarray]) -> Graph:
  """`graph` with the removed channels masked (see the module docstring)."""
  changes: dict[str, dict[str, np.ndarray]] = {}
  for name, channels in removed.items():
    group = analysis.group(name)
    if not len(channels):
      continue
    for s in group.slices:
      kernel = s.param == 'kernel' and s.role != groups_lib.CONSUMER
      silenced = group.silence and s.role != groups_lib.CONSUMER and (
          s.param in _SILENCED and not (s.param == 'mean' and graph.node(
              s.node).op == 'batch_norm'))
      if not (kernel or silenced):
        continue
      params = changes.setdefault(s.node, {})
      value = params.get(s.param)
      if value is None:
        value = np.array(graph.node(s.node).params[s.param])
        params[s.param] = value
      index = [slice(None)] * value.ndim
      index[s.axis] = s.indices[channels].ravel()
      value[tuple(index)] = 0.0
  return graph.with_params(changes)


def check(graph: Graph, method: str, names: Sequence[str] | None = None,
          analysis: groups_lib.Analysis | None = None) -> None:
  """Refuses `method` on `graph` before any work if it cannot rank every chosen group.

  Only `bn_gamma` can fail: a group without a batch norm has no gamma.

  Raises:
    TfpruneError: naming the method and the groups without batch norm.
  """
  if registry.lookup(METHODS, method, 'method') != 'bn_gamma':
    return
  groups = chosen(analysis or groups_lib.analyse(graph), names)
  bare = [g for g in groups if not _gammas(graph, g)]
  if not bare:
    return
  if len(bare) == len(groups):
    raise TfpruneError(f'method {method!r} ranks channels by batch-norm gamma, '
                       'but this network has no batch norm on the channels it '
                       'prunes: use unit or unit_l1')
  layers = ','.join(n for g in bare for n in g.nodes)
  raise TfpruneError(
      f'method {method!r} ranks channels by batch-norm gamma, but the channels '
      f'of {layers} have no batch norm: use unit or unit_l1, or leave those '
      'layers out with --prune_layers')


def prune(graph: Graph, method: str, k: float,
          names: Sequence[str] | None = None) -> Graph:
  """`graph` with `method` (a key of `METHODS`) masked at level k.

  Args:
    graph: the network.
    method: 'unit' (L2 of the coupled producers' kernels), 'unit_l1' (L1 of
      every kernel weight the channels touch) or 'unit_bn' (|gamma| of their
      batch norms).
    k: percentage of each group's channels to remove.
    names: prune the groups holding these nodes (default: every group).

  Raises:
    TfpruneError: unknown method, k outside [0, 100], or `check` refuses.
  """
  analysis = groups_lib.analyse(graph)
  check(graph, method, names, analysis)
  removed = select(graph, analysis, METHODS[method], k, names)
  return mask(graph, analysis, removed)


def prune_graph(graph: Graph, method: str, k: float,
                names: Sequence[str]) -> Graph:
  """`graph` pruned by any graph method on the nodes `names`.

  The structured methods of `METHODS` ('unit', 'unit_l1', 'unit_bn') remove
  coupled channels of the groups holding `names`; the others ('weight',
  'random') mask each kernel of `names` alone (`graph_pruning.prune`).
  """
  check_method(method)
  if method in METHODS:
    return prune(graph, method, k, names)
  return graph_pruning.prune(graph, method, k, names)
