"""Pruning any graph: a mask criterion applied to the kernels of chosen nodes.

The criteria are the pure functions of `pruning` (`PRUNERS`); this
module only decides which kernels they see and along which axis a unit lies:
the output channels of a dense or conv kernel (its last axis), the channels of
a depthwise kernel (its third axis, each with its multiplier's filters). The
output layer is kept unless asked for; `layers` names nodes as Keras does.
"""

import functools
from typing import Callable, Mapping, Sequence

import numpy as np

from tfprune.criteria import methods
from tfprune.criteria import pruning
from tfprune import registry
from tfprune.errors import TfpruneError
from tfprune.graph import ops
from tfprune.graph.ir import Graph

# The network methods (`methods.METHODS`) that are one mask criterion of
# `pruning.PRUNERS`, need no data and rank each kernel alone run on any graph.
CRITERIA: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    name: pruning.PRUNERS[name] for name, method in methods.METHODS.items()
    if not method.needs_calibration and method.per_layer
    and name in pruning.PRUNERS}
UNIT_LEVEL = ('unit', 'unit_l1')


def get(name: str) -> Callable[[np.ndarray, float], np.ndarray]:
  """The criterion called `name`.

  Raises:
    TfpruneError: unknown name, listing the valid ones.
  """
  return registry.lookup(CRITERIA, name, 'pruning method')


def prunable(graph: Graph, names: Sequence[str] | None = None,
             prune_output_layer: bool = False) -> list[str]:
  """Names of the nodes to prune: `names`, or every weighted node but the last.

  The last weighted node (the classifier) is kept unless `prune_output_layer`.

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
  return weighted if prune_output_layer else weighted[:-1]


def _unit_axis(graph: Graph, name: str) -> int:
  return ops.get(graph.node(name).op).kernels['kernel']


def kernel_mask(criterion: str, kernel: np.ndarray, k: float,
                unit_axis: int, seed: int = 0,
                mask: np.ndarray | None = None) -> np.ndarray:
  """`criterion`'s mask of one kernel, with units along `unit_axis`.

  `criterion` is any criterion of the one table, `pruning.PRUNERS` (the
  graph methods, `CRITERIA`, are those the sweep runs). `seed` seeds
  `random` (the sweep gives each layer its own). `mask` is the kernel's
  current mask (None: all kept): weights it pruned count first towards the
  k% and are never revived, as in every criterion of `pruning`.
  """
  fn = pruning.get(criterion)
  if criterion == 'random':
    fn = functools.partial(fn, seed=seed)
  if criterion in UNIT_LEVEL and unit_axis != kernel.ndim - 1:
    moved = np.moveaxis(kernel, unit_axis, -1)
    moved_mask = None if mask is None else np.moveaxis(mask, unit_axis, -1)
    return np.moveaxis(fn(moved, k, moved_mask), -1, unit_axis)
  return fn(kernel, k, mask)


def masks(graph: Graph, criterion: str, k: float | Mapping[str, float],
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


def prune(graph: Graph, criterion: str, k: float | Mapping[str, float],
          names: Sequence[str]) -> Graph:
  """`graph` with `criterion` at level k (one, or one per name) on the kernels of `names`."""
  for name in names:
    pruning.check_level(pruning.layer_level(k, name))
  return apply_masks(graph, masks(graph, criterion, k, names))
