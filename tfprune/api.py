"""The public API: import a Keras model, prune it, score it, save it, build it back.

    import tfprune
    graph = tfprune.from_keras('my.keras')           # exact, or refused in one line
    pruned = tfprune.prune(graph, 'weight', 90)      # 90% of each hidden kernel
    print(tfprune.evaluate(pruned, x_test, y_test))  # top-1 accuracy
    small = tfprune.compact(pruned)                  # removed channels physically gone
    tfprune.save(small, 'pruned.npz')
    tfprune.to_keras(small).save('pruned.keras')     # plain Keras, no tfprune needed
"""

import pathlib
from typing import Sequence

import numpy as np

from tfprune.criteria import graph_pruning
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import io as graph_io
from tfprune.graph import network_graph
from tfprune.graph import weights
from tfprune.graph.ir import Graph
from tfprune.keras_io.build import to_keras
from tfprune.keras_io.importer import from_keras
from tfprune.transforms import channel_pruning
from tfprune.transforms import graph_compaction

__all__ = ['Graph', 'from_keras', 'to_keras', 'load', 'save', 'prune',
           'compact', 'evaluate', 'predict']


def load(path: str | pathlib.Path) -> Graph:
  """A graph from a tfprune `.npz` graph file, a `.npy` weight folder or a Keras file.

  Raises:
    TfpruneError: the path is none of these, or cannot be read.
  """
  path = pathlib.Path(path)
  if path.is_dir() and any(path.glob('weight-*.npy')):
    return network_graph.to_graph(weights.load(path).network)
  if path.suffix == graph_io.SUFFIX:
    return graph_io.load(path)
  if path.suffix in ('.keras', '.h5', '.hdf5') or path.is_dir():
    return from_keras(path)
  raise TfpruneError(f'{path} is not a graph .npz, a weight folder or a Keras '
                     'model file: pass one of these')


def save(graph: Graph, path: str | pathlib.Path) -> pathlib.Path:
  """Writes `graph` as a `.npz` graph file (sparse arrays where smaller)."""
  return graph_io.save(graph, path)


def prune(graph: Graph, method: str, k: float,
          layers: Sequence[str] | None = None,
          prune_output_layer: bool = False) -> Graph:
  """`graph` pruned by `method` ('weight', 'unit', 'unit_l1', 'unit_bn', 'random') at k percent.

  Args:
    graph: the network.
    method: a key of `graph_pruning.CRITERIA` or `channel_pruning.METHODS`.
    k: percentage of each chosen kernel's weights (or units) to prune;
      'unit', 'unit_l1' and 'unit_bn' remove k% of the channels of every
      dependency group holding a chosen layer (residual adds and
      concatenations pruned together), ranked by L2, L1 or batch-norm gamma.
    layers: layer names to prune; default every layer with a kernel but the
      output layer (or with it, if `prune_output_layer`).
  """
  return channel_pruning.prune_graph(graph, method, k, graph_pruning.prunable(
      graph, layers, prune_output_layer))


def compact(graph: Graph) -> Graph:
  """The smaller graph computing what the pruned `graph` computes.

  Every channel of a dependency group that a pruned graph no longer needs
  (its producing kernels zero, so it carries a constant, folded into the
  consumers' biases; or nothing reads it) is removed from every layer of the
  group (`graph_compaction.compact_zeros`). An unpruned graph comes back as
  it is.
  """
  return graph_compaction.compact_zeros(graph)


def predict(graph: Graph, x: np.ndarray) -> np.ndarray:
  """The network's outputs on inputs `x`."""
  return evaluator.predict(graph, x)


def evaluate(graph: Graph, x: np.ndarray, labels: np.ndarray) -> float:
  """Top-1 accuracy of `graph` on inputs `x` with integer `labels`."""
  return evaluator.Evaluator(graph).accuracy(x, labels)
