"""What a graph costs: parameters, multiply-adds and bytes, as (dense, effective) pairs.

Every count comes as a pair so that compression and the theoretical
speed-up are plain ratios:
  - params / nonzero_params: parameters stored densely / non-zero ones;
  - dense_macs / effective_macs: multiply-adds per example of a dense kernel /
    of a kernel that skips zeros (one per non-zero weight);
  - sizes in bytes: every array as its own `.npy` file (dense storage), and
    the same arrays compressed (`np.savez_compressed`).
The weighted nodes (dense, conv and depthwise kernels with their biases) are
counted; batch norms fold into them at inference and are not. Latency and
throughput are measured by the benchmark (`drivers/benchmark.py`).
"""

import dataclasses
import io

import numpy as np

from tfprune.graph.ir import Graph


@dataclasses.dataclass(frozen=True)
class Counts:
  """Counts of one weighted node or of a whole graph.

  Attributes:
    params: kernel and bias entries.
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


def layer_counts(graph: Graph) -> list[Counts]:
  """The counts of each weighted node of `graph`, in graph order.

  A node's parameters are its kernel and bias; its multiply-adds are its
  (non-zero) kernel entries times its output positions (1 for a dense node
  on vectors, height x width for a conv or depthwise conv).
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


def total(counts: list[Counts]) -> Counts:
  """The sum of per-node counts."""
  return Counts(*(sum(getattr(c, f.name) for c in counts)
                  for f in dataclasses.fields(Counts)))


def _arrays(graph: Graph) -> list[np.ndarray]:
  """Every array of `graph` in a weight folder's order: the weighted nodes'
  kernels, then their biases, then every other array in node order."""
  weighted = graph.weighted()
  kernels = [n.params['kernel'] for n in weighted]
  biases = [n.params['bias'] for n in weighted if 'bias' in n.params]
  taken = {id(a) for a in kernels + biases}
  rest = [a for n in graph.nodes for a in n.params.values() if id(a) not in taken]
  return kernels + biases + rest


def _npy_bytes(array: np.ndarray) -> int:
  buffer = io.BytesIO()
  np.save(buffer, array, allow_pickle=False)
  return buffer.getbuffer().nbytes


def npy_bytes(graph: Graph) -> int:
  """Bytes of every array of `graph` as one `.npy` file each (dense storage)."""
  return sum(_npy_bytes(a) for a in _arrays(graph))


def compressed_bytes(graph: Graph) -> int:
  """Bytes of `graph`'s arrays in one `np.savez_compressed` file, in a weight
  folder's order (`_arrays`)."""
  buffer = io.BytesIO()
  np.savez_compressed(buffer, *_arrays(graph))
  return buffer.getbuffer().nbytes
