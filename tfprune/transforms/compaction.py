"""Compaction of a dense-chain `Network`: the one graph compaction, on its graph.

`compact(network)` is `graph_compaction.compact_zeros` applied to the
network's graph (`network_graph.to_graph`) and read back as a `Network`: a
hidden unit whose incoming column is all zero outputs the constant relu(b)
(0 without biases), folded into the next layer's bias, and is removed, as is
a unit whose outgoing row is all zero. Networks with layer specs (conv, batch
norm, residuals) are compacted as graphs (`graph_compaction`), not here.
"""

from tfprune.errors import TfpruneError
from tfprune.graph import network as network_graph
from tfprune.graph.network import Network
from tfprune.transforms import graph_compaction


def compact(network: Network, use_biases: bool = True) -> Network:
  """Returns the smallest network equivalent to `network` by removing units.

  Args:
    network: a (pruned) dense chain; it is not modified.
    use_biases: whether the forward pass adds biases. Without them a dead unit
      outputs 0 and nothing is folded; the returned biases are then zero.

  Returns:
    An equivalent network whose hidden layers keep only live, used units
    (`network` itself when it has no unit to remove and uses its biases).

  Raises:
    TfpruneError: the network has layer specs (conv, batch norm, residuals).
  """
  check_dense_chain(network, 'compaction.compact')
  graph = network_graph.to_graph(network, use_biases)
  small = graph_compaction.compact_zeros(graph)
  if small is graph and use_biases:
    return network
  return network_graph.from_graph(small)[0]


def check_dense_chain(network: Network, what: str) -> None:
  """Refuses a network with layer specs, which `what` would silently misread.

  Raises:
    TfpruneError: the network has layer specs.
  """
  if network.specs is not None:
    raise TfpruneError(
        f'{what} handles dense chains only, this network has layer specs '
        '(conv, batch norm, pooling or residual adds): evaluate it with '
        'tfprune.runtime.evaluate and compact it as a graph with tfprune.compact')
