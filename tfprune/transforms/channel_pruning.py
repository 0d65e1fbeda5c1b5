"""Pruning any graph with any criterion; structured: score each dependency group, mask its weakest channels.

`prune_graph` is the one graph entry point of every registered criterion
(`criteria.importances`): a weight-level one masks each chosen kernel alone
(`graph_pruning`), a data-aware one walks the graph on calibration inputs
(its `prune_graph`), and a channel-level one (`ChannelImportance`: `unit`,
`unit_l1`, `unit_bn`, `filter_l1`, or yours) scores the channels of every
`groups.Group` holding a chosen node. `select` removes exactly
floor(k * m / 100) of each group's m channels (the lowest scores, ties to
the lower channel index), always keeping one. On a dense chain a group is
one layer's units and `unit`'s score is exactly `pruning.unit_l2_mask`'s
column norm, so `unit` keeps its results there.
`mask` zeroes the removed channels' producing kernel slices and depthwise
filters, so each outputs a constant (e.g. relu(bias) or BN(bias)) that
`graph_compaction.compact` folds into the next layer's bias. Where the
channel reaches zero padding (a 'same' conv with a window > 1, ZeroPadding2D)
a constant would not stay constant at the borders, so the mask silences it:
biases, batch-norm gamma and beta (and per-channel offsets) are zeroed too.
With `prune_layer_norm`, groups pass a LayerNormalization over their
channels: `mask` zeroes a removed channel's entries of its channel mask,
gamma and beta (`ops.base.OpDef.channel_mask`), so it normalises over the
kept channels and outputs 0 on the removed ones.
"""

import logging
from typing import Mapping, Sequence

import numpy as np

from tfprune.criteria import graph_pruning
from tfprune.criteria import importances
from tfprune.criteria import protocol
from tfprune.criteria import pruning
from tfprune.errors import TfpruneError
from tfprune.graph.ir import Graph
from tfprune.graph import groups as groups_lib
from tfprune.graph import ops

Removed = dict[str, np.ndarray]  # group name -> removed channel indices
Criterion = 'str | protocol.Importance'
channel_rows = importances.channel_rows


def lowest(scores: np.ndarray, k: float) -> np.ndarray:
  """The floor(k*m/100) lowest of m scores (at most m - 1), ties to lower index."""
  count = min(pruning.prune_count(k, scores.size), scores.size - 1)
  return np.sort(np.argsort(scores, kind='stable')[:max(count, 0)])


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


def channel_importance(criterion: Criterion) -> protocol.ChannelImportance:
  """The channel-level criterion `criterion` (a registered name or an object).

  Raises:
    TfpruneError: unknown, or not channel-level.
  """
  importance = importances.get(criterion)
  if not isinstance(importance, protocol.ChannelImportance):
    raise TfpruneError(f'{importance.name!r} does not rank channels: choose one '
                       f'of {",".join(importances.names(removes_channels=True))}')
  return importance


def select(graph: Graph, analysis: groups_lib.Analysis, criterion: Criterion,
           k: float, names: Sequence[str] | None = None) -> Removed:
  """The channels of each chosen group to remove at level k.

  Args:
    graph: the network.
    analysis: `groups.analyse(graph)`.
    criterion: a channel-level criterion (name or `ChannelImportance`).
    k: percentage of each group's channels, in [0, 100].
    names: prune the groups holding these nodes (default: every group).
  """
  pruning.check_level(k)
  score = channel_importance(criterion)
  groups = chosen(analysis, names)
  if k and not groups:
    _nothing_to_prune(analysis, names)
  return {g.name: lowest(np.asarray(score(graph, g), np.float64), k)
          for g in groups}


def _nothing_to_prune(analysis: groups_lib.Analysis,
                      names: Sequence[str] | None) -> None:
  """Refuses, in one line, a channel pruning that could remove nothing."""
  kept = [g for g in analysis.groups if g.refused and (
      names is None or set(g.nodes) & set(names))]
  more = f' (and {len(kept) - 3} more)' if len(kept) > 3 else ''
  why = ('every channel group is kept ('
         + '; '.join(f'{g.name}: {g.refused}' for g in kept[:3]) + f'{more})'
         if kept else f'no channel group holds {", ".join(names or ())}')
  raise TfpruneError(f'unit pruning would remove no channel: {why}: prune '
                     'weights instead (method weight)')


# Arrays zeroed on a silenced channel besides the kernels: what makes it 0.
_SILENCED = {'bias', 'gamma', 'beta', 'offset', 'mean'}


def mask(graph: Graph, analysis: groups_lib.Analysis,
         removed: Mapping[str, np.ndarray], silence: bool = False) -> Graph:
  """`graph` with the removed channels masked (see the module docstring).

  With `silence`, every removed channel is silenced (outputs exactly 0), not
  only those reaching zero padding: pruning while training keeps them at 0
  so that their biases do not go on learning a constant.
  """
  changes: dict[str, dict[str, np.ndarray]] = {}
  for name, channels in removed.items():
    group = analysis.group(name)
    if not len(channels):
      continue
    for s in group.slices:
      node = graph.node(s.node)
      kernel = s.param == 'kernel' and s.role != groups_lib.CONSUMER
      silenced = (group.silence or silence) and s.role != groups_lib.CONSUMER and (
          s.param in _SILENCED and not (s.param == 'mean' and
                                        node.op == 'batch_norm'))
      normalised = s.role == groups_lib.CHANNEL and (
          ops.get(node.op).channel_mask is not None)
      if not (kernel or silenced or normalised):
        continue
      params = changes.setdefault(s.node, {})
      value = params.get(s.param)
      if value is None:  # a channel mask not made yet keeps every channel
        value = (np.array(node.params[s.param]) if s.param in node.params
                 else np.ones(graph.shapes[s.node][-1], np.float32))
        params[s.param] = value
      index = [slice(None)] * value.ndim
      index[s.axis] = s.indices[channels].ravel()
      value[tuple(index)] = 0.0
  return graph.with_params(changes)


def check(graph: Graph, method: Criterion, names: Sequence[str] | None = None,
          analysis: groups_lib.Analysis | None = None) -> None:
  """Refuses `method` on `graph` before any work if it cannot rank every chosen group.

  Only `unit_bn` can fail: a group without a batch norm has no gamma.

  Raises:
    TfpruneError: naming the method and the groups without batch norm.
  """
  if not isinstance(importances.get(method), importances.BatchNormScale):
    return
  method = importances.get(method).name
  groups = chosen(analysis or groups_lib.analyse(graph), names)
  bare = [g for g in groups if not importances.bn_gammas(graph, g)]
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


def prune(graph: Graph, criterion: Criterion, k: float,
          names: Sequence[str] | None = None,
          prune_layer_norm: bool = False) -> Graph:
  """`graph` with the channels a channel-level criterion ranks lowest masked at level k.

  Args:
    graph: the network.
    criterion: 'unit' (L2 of the coupled producers' kernels), 'unit_l1' (L1
      of every kernel weight the channels touch), 'unit_bn' (|gamma| of their
      batch norms), 'filter_l1', or a `ChannelImportance`.
    k: percentage of each group's channels to remove.
    names: prune the groups holding these nodes (default: every group).
    prune_layer_norm: also prune channels a LayerNormalization normalises
      over (a Transformer's residual stream); default: they are kept.

  Raises:
    TfpruneError: unknown criterion, k outside [0, 100], or `check` refuses.
  """
  analysis = groups_lib.analyse(graph, prune_layer_norm)
  check(graph, criterion, names, analysis)
  removed = select(graph, analysis, criterion, k, names)
  return mask(graph, analysis, removed)


def prune_graph(graph: Graph, criterion: Criterion, k: float | Mapping[str, float],
                names: Sequence[str],
                calibration: np.ndarray | None = None,
                prune_layer_norm: bool = False) -> Graph:
  """`graph` pruned by any registered criterion (or importance object) on `names`.

  Args:
    graph: the dense graph (not modified).
    criterion: a name of `importances.REGISTRY` or an `Importance`.
    k: level in percent, or {node name: level} (criteria ranking each kernel
      alone: `per_layer`).
    names: the nodes to prune.
    calibration: training examples, for data-aware criteria.
    prune_layer_norm: channel criteria also prune the channels a
      LayerNormalization normalises over (`prune`).

  Raises:
    TfpruneError: unknown criterion, per-layer levels for a criterion that
      ranks across layers, missing calibration data, or `check` refuses.
  """
  importance = importances.get(criterion)
  if isinstance(importance, protocol.DataAwareImportance):
    if calibration is None:
      raise TfpruneError(f'{importance.name} needs calibration data: pass '
                         'calibration= (training examples)')
    return importance.prune_graph(graph, k, names, calibration)
  if isinstance(importance, protocol.ChannelImportance) and not isinstance(
      k, Mapping):
    return prune(graph, importance, k, names, prune_layer_norm)
  if isinstance(k, Mapping) and not importance.per_layer:
    raise TfpruneError(f'{importance.name} ranks channel groups across layers: '
                       'give one level, not one per layer')
  return graph_pruning.prune(graph, importance, k, names)
