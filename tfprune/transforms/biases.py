"""Biases off, as a transform of a graph.

The original pruning project evaluated its dense chains without their
biases; tfprune keeps that as an option (`--use_biases=false`). Rather than a
second evaluator, it is a graph: `without_biases(graph)` is the same graph
with the bias of every weighted node (dense, conv) left out, which every
tool then computes, prunes, compacts and saves like any other graph.
"""

import dataclasses

from tfprune.graph.ir import Graph


def without_biases(graph: Graph) -> Graph:
  """`graph` with no bias on its weighted nodes; `graph` itself if it has none.

  Batch-norm offsets and other parameters are kept: only the `bias` that a
  dense or conv node adds to its kernel's output is removed.
  """
  weighted = {n.name for n in graph.weighted() if 'bias' in n.params}
  if not weighted:
    return graph
  nodes = tuple(
      dataclasses.replace(n, params={k: v for k, v in n.params.items()
                                     if k != 'bias'})
      if n.name in weighted else n for n in graph.nodes)
  return graph.replace_nodes(nodes)
