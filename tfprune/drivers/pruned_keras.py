"""Pruned networks as plain Keras `.keras` files, compacted where structured removal allows.

For `sweep --save_keras`, through the one compaction (`graph_compaction`): a
graph is saved as the sweep measured it (`graph_sweep.saved_graph`: compacted
where the method removes channels, masked otherwise); a dense chain of a
weight folder is compacted after any method (units whose weights are all
pruned, or that nothing reads, are removed: `compact_zeros`). Files are
written under a temporary name and renamed.
"""

import os
import pathlib

from tfprune import ziptags
from tfprune.graph import network as network_graph
from tfprune.graph.ir import Graph
from tfprune.graph.network import Network
from tfprune.keras_io import build
from tfprune.transforms import graph_compaction

SUFFIX = '.keras'


def network_to_save(pruned: Network, use_biases: bool) -> Graph:
  """A pruned dense chain, compacted, as a graph."""
  return graph_compaction.compact_zeros(network_graph.to_graph(pruned, use_biases))


def save(graph: Graph, path: str | os.PathLike,
         provenance: dict | None = None) -> pathlib.Path:
  """Writes `graph` as a plain Keras model file at `path` (temporary name, rename).

  Two saves of equal graphs give equal bytes (`ziptags.reproducible_keras`:
  fixed zip timestamps and save date), and `provenance`, the data the
  network was made on, travels as the archive's comment, which Keras ignores.
  """
  path = pathlib.Path(path)
  tmp = path.with_name(f'.{path.stem}.tmp{os.getpid()}{SUFFIX}')
  try:
    build.to_keras(graph).save(tmp)
    ziptags.reproducible_keras(tmp, provenance)
    os.replace(tmp, path)
  finally:
    tmp.unlink(missing_ok=True)
  return path
