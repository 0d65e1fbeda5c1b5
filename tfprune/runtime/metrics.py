"""What a (pruned) network costs: parameters, multiply-adds and bytes, as pairs.

Every metric comes as a (dense, effective) pair so that compression and the
theoretical speed-up are plain ratios:
  - params / nonzero_params: parameters stored densely / non-zero ones;
  - dense_macs / effective_macs: multiply-adds per example of a dense kernel /
    of a kernel that skips zeros (one per non-zero weight);
  - sizes in bytes: the dense `.npy` folder, the same arrays compressed
    (`np.savez_compressed`), and the compact sparse export (`export`).
The `graph_*` functions count the same for any `Graph` (its weighted nodes:
dense, conv and depthwise kernels with their biases); on a network's graph
they give the network's numbers. Latency and throughput are measured in
`benchmark`.
"""

import dataclasses
import io

import numpy as np

from tfprune.graph import layers as layers_lib
from tfprune.graph.ir import Graph
from tfprune.graph.network import Network
from tfprune.runtime import export
from tfprune.transforms import compaction


@dataclasses.dataclass(frozen=True)
class Counts:
  """Counts of one layer or of a whole network.

  Attributes:
    params: kernel entries, plus bias entries when biases are used.
    nonzero_params: the non-zero ones among them.
    dense_macs: multiply-adds per example with dense kernels.
    effective_macs: multiply-adds per example skipping zero weights.
  """
  params: int
  nonzero_params: int
  dense_macs: int
  effective_macs: int

  @property
  def compression(self) -> float:
    """params / nonzero_params (inf when everything is zero)."""
    return self.params / self.nonzero_params if self.nonzero_params else float('inf')

  @property
  def theoretical_speedup(self) -> float:
    """dense_macs / effective_macs (inf when no multiply-add is left)."""
    return self.dense_macs / self.effective_macs if self.effective_macs else float('inf')


def layer_counts(network: Network, use_biases: bool = True) -> list[Counts]:
  """The counts of each layer of `network`.

  A conv kernel is applied at every output position, so its multiply-adds
  are its (non-zero) entries times the positions (see `layers.positions`).
  Batch-norm parameters are not counted: they fold into the conv at inference,
  which also gives a conv without bias (ResNet-18's) one bias per filter, so
  every layer counts kernel entries plus one bias per unit. Layers reached
  through a `source` or `residual` (a DAG) are counted like any other.
  """
  if network.specs is None:
    positions = [1] * network.num_layers
  else:
    positions = layers_lib.positions(
        network.specs, [k.shape for k in network.kernels], network.input_shape)
  out = []
  for kernel, bias, where in zip(network.kernels, network.biases, positions):
    kernel_nonzero = int(np.count_nonzero(kernel != 0))
    bias_params = bias.size if use_biases else 0
    bias_nonzero = int(np.count_nonzero(bias != 0)) if use_biases else 0
    out.append(Counts(kernel.size + bias_params, kernel_nonzero + bias_nonzero,
                      kernel.size * where, kernel_nonzero * where))
  return out


def widths(network: Network) -> str:
  """Input and layer widths of a dense chain, e.g. '784-100-100-50-20-10'."""
  return '-'.join(str(w) for w in
                  [network.input_dim] + [k.shape[1] for k in network.kernels])


def total(counts: list[Counts]) -> Counts:
  """The sum of per-layer counts."""
  return Counts(*(sum(getattr(c, f.name) for c in counts)
                  for f in dataclasses.fields(Counts)))


def npy_folder_bytes(network: Network) -> int:
  """Bytes of the `.npy` weight folder of `network` (manifest excluded)."""
  return sum(_npy_bytes(a) for a in network.kernels + network.biases
             + _norms(network))


def compressed_bytes(network: Network) -> int:
  """Bytes of the network's dense arrays in one `np.savez_compressed` file."""
  buffer = io.BytesIO()
  np.savez_compressed(buffer, *network.kernels, *network.biases,
                      *_norms(network))
  return buffer.getbuffer().nbytes


def _norms(network: Network) -> tuple[np.ndarray, ...]:
  return tuple(n for n in network.norms or () if n is not None)


def export_bytes(network: Network, use_biases: bool = True) -> int:
  """Bytes of the compact sparse export of `network` (see `export`)."""
  return export.size_bytes(compaction.compact(network, use_biases), use_biases)


def _npy_bytes(array: np.ndarray) -> int:
  buffer = io.BytesIO()
  np.save(buffer, array, allow_pickle=False)
  return buffer.getbuffer().nbytes


def graph_layer_counts(graph: Graph) -> list[Counts]:
  """The counts of each weighted node of `graph`, as `layer_counts`.

  A node's parameters are its kernel and bias (batch norms fold into it at
  inference and are not counted, as in `layer_counts`); its multiply-adds are
  its (non-zero) kernel entries times its output positions (1 for a dense
  node, height x width for a conv or depthwise conv).
  """
  out = []
  for node in graph.weighted():
    kernel = node.params['kernel']
    bias = node.params.get('bias', np.zeros(0, np.float32))
    shape = graph.shapes[node.name]
    where = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    kernel_nonzero = int(np.count_nonzero(kernel != 0))
    out.append(Counts(kernel.size + bias.size,
                      kernel_nonzero + int(np.count_nonzero(bias != 0)),
                      kernel.size * where, kernel_nonzero * where))
  return out


def _graph_arrays(graph: Graph) -> list[np.ndarray]:
  """Every array of `graph` in a weight folder's order: the weighted nodes'
  kernels, then their biases, then every other array in node order."""
  weighted = graph.weighted()
  kernels = [n.params['kernel'] for n in weighted]
  biases = [n.params['bias'] for n in weighted if 'bias' in n.params]
  taken = {id(a) for a in kernels + biases}
  rest = [a for n in graph.nodes for a in n.params.values() if id(a) not in taken]
  return kernels + biases + rest


def graph_npy_bytes(graph: Graph) -> int:
  """Bytes of every array of `graph` as one `.npy` file each (dense storage)."""
  return sum(_npy_bytes(a) for a in _graph_arrays(graph))


def graph_compressed_bytes(graph: Graph) -> int:
  """Bytes of `graph`'s arrays in one `np.savez_compressed` file.

  The arrays go in a weight folder's order (`_graph_arrays`), so a network
  without batch norm gives `compressed_bytes` of its `Network`.
  """
  buffer = io.BytesIO()
  np.savez_compressed(buffer, *_graph_arrays(graph))
  return buffer.getbuffer().nbytes
