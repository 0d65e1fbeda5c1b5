"""What a (pruned) network costs: parameters, multiply-adds and bytes, as pairs.

Every metric comes as a (dense, effective) pair so that compression and the
theoretical speed-up are plain ratios:
  - params / nonzero_params: parameters stored densely / non-zero ones;
  - dense_macs / effective_macs: multiply-adds per example of a dense kernel /
    of a kernel that skips zeros (one per non-zero weight);
  - sizes in bytes: the dense `.npy` folder, the same arrays compressed
    (`np.savez_compressed`), and the compact sparse export (`export`).
Latency and throughput are measured in `benchmark`.
"""

import dataclasses
import io

import numpy as np

from tfprune import compaction
from tfprune import export
from tfprune.network import Network


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
  """The counts of each layer of `network`."""
  out = []
  for kernel, bias in zip(network.kernels, network.biases):
    kernel_nonzero = int(np.count_nonzero(kernel))
    bias_params = bias.size if use_biases else 0
    bias_nonzero = int(np.count_nonzero(bias)) if use_biases else 0
    out.append(Counts(kernel.size + bias_params, kernel_nonzero + bias_nonzero,
                      kernel.size, kernel_nonzero))
  return out


def total(counts: list[Counts]) -> Counts:
  """The sum of per-layer counts."""
  return Counts(*(sum(getattr(c, f.name) for c in counts)
                  for f in dataclasses.fields(Counts)))


def npy_folder_bytes(network: Network) -> int:
  """Bytes of the `.npy` weight folder of `network` (manifest excluded)."""
  return sum(_npy_bytes(a) for a in network.kernels + network.biases)


def compressed_bytes(network: Network) -> int:
  """Bytes of the network's dense arrays in one `np.savez_compressed` file."""
  buffer = io.BytesIO()
  np.savez_compressed(buffer, *network.kernels, *network.biases)
  return buffer.getbuffer().nbytes


def export_bytes(network: Network, use_biases: bool = True) -> int:
  """Bytes of the compact sparse export of `network` (see `export`)."""
  return len(export.to_bytes(compaction.compact(network, use_biases), use_biases))


def _npy_bytes(array: np.ndarray) -> int:
  buffer = io.BytesIO()
  np.save(buffer, array, allow_pickle=False)
  return buffer.getbuffer().nbytes
