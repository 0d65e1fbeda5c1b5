"""A weighted node's pre-activation on calibration examples, in float64.

The pre-activation of a dense or conv node is its kernel applied to its
input plus its bias, before the node's own activation. Bias correction and
the data-aware N:M patterns read it (or the node's input) node after node,
through a graph that changes as they go; the values are computed in float64
a chunk of examples at a time (`CHUNK_EXAMPLES`), so the calibration set of
a conv graph never has all its feature maps in memory at once.
"""

from typing import Iterator

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import ops
from tfprune.graph.ir import Graph

CHUNK_EXAMPLES = 256


def calibration_batch(graph: Graph, calibration: np.ndarray) -> np.ndarray:
  """The calibration examples shaped as `graph`'s inputs, float64, checked."""
  x = np.asarray(calibration)
  if x.ndim < 1 or not len(x):
    raise TfpruneError('the calibration data is empty: pass some training '
                       'examples, e.g. 2048 of them')
  if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
    raise TfpruneError(f'the calibration data holds {x.dtype} values: pass '
                       'float examples')
  size = int(np.prod(graph.input_shape))
  if x[0].size != size:
    raise TfpruneError(
        f'the network takes inputs of shape {graph.input_shape} but the '
        f'calibration examples have {x[0].size} values: calibrate on the data '
        'the network was trained on')
  if not np.all(np.isfinite(x)):
    raise TfpruneError('the calibration data holds NaN/Inf values: pass '
                       'finite training examples')
  return x.reshape(len(x), *graph.input_shape).astype(np.float64)


def node_inputs(graph: Graph, name: str, x: np.ndarray) -> Iterator[np.ndarray]:
  """Node `name`'s input through `graph` on `x`, one chunk of examples at a time."""
  source = graph.node(name).inputs[0]
  index = next(i for i, n in enumerate(graph.nodes) if n.name == source)
  upto = Graph(graph.nodes[:index + 1], source, graph.input_shape)
  params = {n.name: {p: tf.constant(v, tf.float64) for p, v in n.params.items()}
            for n in upto.nodes if n.params}
  for start in range(0, len(x), CHUNK_EXAMPLES):
    batch = x[start:start + CHUNK_EXAMPLES]
    if index == 0:  # the node reads the graph's input
      yield batch
    else:
      (value,), _ = evaluator.run_nodes(upto, tf.constant(batch), params)
      yield value.numpy()


def pre_activation(graph: Graph, name: str, inputs: np.ndarray) -> np.ndarray:
  """Node `name` of `graph` on its `inputs`, without its activation (float64)."""
  node = graph.node(name)
  linear = node.replace(attrs={**node.attrs, 'activation': ops.LINEAR})
  params = {p: tf.constant(v, tf.float64) for p, v in node.params.items()}
  return ops.get(node.op).compute(linear, params, [tf.constant(inputs)],
                                  graph.shapes[name]).numpy()
