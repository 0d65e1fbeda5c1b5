"""Biases off: a graph whose kernel nodes add no bias.

The original project's MLP computed its dense chain without biases
(`--use_biases=false`); on a graph that is this transform, not a second
network type. Batch-norm parameters are not biases and stay.
"""

from tfprune.graph.ir import Graph


def drop_biases(graph: Graph) -> Graph:
  """`graph` with the `bias` parameter removed from every node that has one."""
  return graph.replace_nodes(
      node.__class__(node.name, node.op, node.inputs, node.attrs,
                     {k: v for k, v in node.params.items() if k != 'bias'})
      if 'bias' in node.params else node
      for node in graph.nodes)
