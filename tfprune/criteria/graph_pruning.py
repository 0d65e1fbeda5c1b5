"""Pruning any graph kernel by kernel: a criterion that ranks each kernel alone.

The criteria are the importance objects of the one registry
(`importances`); this module only decides which kernels they see and along
which axis a unit lies: the output channels of a dense or conv kernel (its
last axis), the channels of a depthwise kernel (its third axis, each with its
multiplier's filters). The output layer is kept unless asked for; `layers`
names nodes as Keras does.
"""

from typing import Mapping, Sequence

import numpy as np

from tfprune.criteria import importances
from tfprune.criteria import patterns
from tfprune.criteria import protocol
from tfprune.criteria import pruning
from tfprune.errors import TfpruneError
from tfprune.graph import ops
from tfprune.graph.ir import Graph

Criterion = 'str | protocol.Importance'


def get(criterion: Criterion) -> protocol.Importance:
  """The criterion `criterion` if it ranks each kernel alone (`per_layer`).

  Raises:
    TfpruneError: unknown, or ranking across layers or on calibration data.
  """
  importance = importances.get(criterion)
  if importance.needs_calibration or not importance.per_layer:
    raise TfpruneError(
        f'criterion {importance.name!r} does not rank one kernel alone: choose '
        f'one of {",".join(kernel_criteria())}')
  return importance


def kernel_criteria() -> tuple[str, ...]:
  """The registered criteria that rank each kernel alone, without data."""
  return importances.names(needs_calibration=False, per_layer=True)


def prunable(graph: Graph, names: Sequence[str] | None = None,
             prune_output_layer: bool = False) -> list[str]:
  """Names of the nodes to prune: `names`, or every weighted node but the last.

  The last weighted node before each output (the classifier; one per head of
  a network with several outputs) is kept unless `prune_output_layer`.

  Raises:
    TfpruneError: a name is not a node with a kernel.
  """
  weighted = [n.name for n in graph.weighted()]
  if names:
    for name in names:
      if name not in weighted:
        raise TfpruneError(
            f'--prune_layers names {name!r}, which is not a layer with a kernel: '
            f'choose from {",".join(weighted)}')
    return [n for n in weighted if n in set(names)]
  if prune_output_layer:
    return weighted
  heads = {_last_weighted_before(graph, output, weighted) for output in graph.outputs}
  return [n for n in weighted if n not in heads]


def _last_weighted_before(graph: Graph, output: str, weighted: list[str]) -> str:
  """The last node of `weighted` (graph order) that `output` depends on."""
  needed, todo = set(), [output]
  while todo:
    name = todo.pop()
    if name not in needed:
      needed.add(name)
      todo.extend(graph.node(name).inputs)
  return next((n for n in reversed(weighted) if n in needed), None)


def _unit_axis(graph: Graph, name: str) -> int:
  return ops.get(graph.node(name).op).kernels['kernel']


def kernel_mask(criterion: Criterion, kernel: np.ndarray, k: float,
                unit_axis: int, seed: int = 0,
                mask: np.ndarray | None = None) -> np.ndarray:
  """`criterion`'s mask of one kernel, with units along `unit_axis`.

  `criterion` ranks each kernel alone (`get`). `seed` seeds `random` (the
  sweep gives each layer its own). `mask` is the kernel's current mask
  (None: all kept): weights it pruned count first towards the k% and are
  never revived.
  """
  importance = get(criterion)
  if isinstance(importance, protocol.WeightImportance):
    return importance.mask(kernel, k, mask, seed=seed)
  moved = np.moveaxis(kernel, unit_axis, -1)
  moved_mask = None if mask is None else np.moveaxis(mask, unit_axis, -1)
  return np.moveaxis(importance.kernel_mask(moved, k, moved_mask), -1, unit_axis)


def masks(graph: Graph, criterion: Criterion, k: float | Mapping[str, float],
          names: Sequence[str]) -> dict[str, np.ndarray]:
  """One kernel mask per node of `names` (True: kept); `random` seeds node i with i.

  `k` is one level, or a mapping from node name to that node's level.
  """
  get(criterion)
  return {name: kernel_mask(criterion, graph.node(name).params['kernel'],
                            pruning.layer_level(k, name),
                            _unit_axis(graph, name), seed=i)
          for i, name in enumerate(names)}


def apply_masks(graph: Graph, kernel_masks: dict[str, np.ndarray]) -> Graph:
  """A new graph whose kernels are zero where their masks are False."""
  return graph.with_params({
      name: {'kernel': np.where(mask, graph.node(name).params['kernel'],
                                np.float32(0))}
      for name, mask in kernel_masks.items()})


def prune(graph: Graph, criterion: Criterion, k: float | Mapping[str, float],
          names: Sequence[str]) -> Graph:
  """`graph` with `criterion` at level k (one, or one per name) on the kernels of `names`."""
  for name in names:
    pruning.check_level(pruning.layer_level(k, name))
  return apply_masks(graph, masks(graph, criterion, k, names))


def pattern(graph: Graph, criterion: Criterion, names: Sequence[str],
            nm: 'str | patterns.Pattern') -> Graph:
  """`graph` with an N:M pattern on the kernels of `names`, ranked by a weight-level criterion.

  Node i of `names` gets seed i (`random`).

  Raises:
    TfpruneError: a bad pattern, or a criterion that does not score weights.
  """
  p = nm if isinstance(nm, patterns.Pattern) else patterns.parse(nm)
  importance = importances.get(criterion)
  if not isinstance(importance, protocol.WeightImportance):
    raise TfpruneError(f'an N:M pattern ranks single weights, which '
                       f'{importance.name!r} does not score on a graph: use one '
                       f'of {",".join(importances.names(per_weight=True, needs_calibration=False))}')
  return apply_masks(graph, {
      name: importance.pattern_mask(graph.node(name).params['kernel'], p,
                                    _unit_axis(graph, name), seed=i)
      for i, name in enumerate(names)})
