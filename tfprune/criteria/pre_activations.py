"""A weighted node's pre-activation on calibration examples, in float64.

The pre-activation of a dense or conv node is its kernel applied to its
input plus its bias, before the node's own activation. Bias correction and
the data-aware N:M patterns read it (or the node's input) node after node,
through a graph that changes as they go; the values are computed in float64
a chunk of examples at a time (`CHUNK_EXAMPLES`), so the calibration set of
a conv graph never has all its feature maps in memory at once. A graph
with several inputs reads one array per input (`calibration_arrays`).
"""

from typing import Iterator

import numpy as np
import tensorflow as tf

from tfprune.criteria import calibration_arrays
from tfprune.graph import evaluator
from tfprune.graph import ops
from tfprune.graph.ir import Graph

CHUNK_EXAMPLES = 256


def calibration_batch(graph: Graph, calibration) -> list[np.ndarray]:
  """The calibration examples shaped as `graph`'s inputs, float64, checked:
  one array per input (`calibration_arrays.check`)."""
  return calibration_arrays.check(graph, calibration, np.float64)


def node_inputs(graph: Graph, name: str,
                x: list[np.ndarray]) -> Iterator[np.ndarray]:
  """Node `name`'s input through `graph` on `x` (one array per graph input),
  one chunk of examples at a time."""
  source = graph.node(name).inputs[0]
  upto = calibration_arrays.upto(graph, source)
  params = {n.name: {p: tf.constant(v, tf.float64) for p, v in n.params.items()}
            for n in upto.nodes if n.params}
  inputs = [n.name for n in graph.inputs]
  for batch in calibration_arrays.chunks(x, CHUNK_EXAMPLES):
    if source in inputs:  # the node reads one of the graph's inputs
      yield batch[inputs.index(source)]
    else:
      (value,), _ = evaluator.run_nodes(upto, [tf.constant(b) for b in batch],
                                        params)
      yield value.numpy()


def pre_activation(graph: Graph, name: str, inputs: np.ndarray) -> np.ndarray:
  """Node `name` of `graph` on its `inputs`, without its activation (float64)."""
  node = graph.node(name)
  linear = node.replace(attrs={**node.attrs, 'activation': ops.LINEAR})
  params = {p: tf.constant(v, tf.float64) for p, v in node.params.items()}
  return ops.get(node.op).compute(linear, params, [tf.constant(inputs)],
                                  graph.shapes[name]).numpy()
