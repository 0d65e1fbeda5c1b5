"""Export of a pruned network in its compact, sparse form: one `.npz` file.

The network is compacted first (`compaction.compact`), then each kernel is
stored whichever way is smaller: dense, or CSR of its transposed (units,
inputs) form with float32 values, int16 column indices (int32 past 32,767
inputs) and int32 row pointers. Values are stored exactly, so the loaded
network predicts exactly like the pruned one. Arrays, with `format` and a JSON
`metadata` string, go into an uncompressed `.npz` (no pickles; deflate saves
little on float values and would cost a quarter second per 10 MB). Only dense
chains export: networks with layer specs (CNNs, ResNet-18) are refused.

This is the old dense-chain format. Only the MLP benchmark
(`drivers/benchmark.py`, its `export_size_ratio`; `metrics.export_bytes`)
and a sweep of a dense weight folder not yet on the graph path still size
or write it; files in it load as graphs through `graph.pruned_file` and
score through the graph evaluator (`drivers/scoring.py`).
"""

import dataclasses
import io
import json
import pathlib
from typing import Any

import numpy as np

from tfprune import atomic
from tfprune import ziptags
from tfprune.errors import TfpruneError
from tfprune.graph import pruned_file
from tfprune.graph.network import Network
from tfprune.transforms import compaction

FORMAT = pruned_file.DENSE_FORMAT
SUFFIX = '.npz'


@dataclasses.dataclass(frozen=True)
class _Entry:
  """One array of the export: its name, dtype, shape and how to make it."""
  name: str
  dtype: np.dtype
  shape: tuple[int, ...]
  make: Any


def _layout(compact: Network, use_biases: bool) -> list[_Entry]:
  """The export's arrays, decided but not built (see `to_arrays`)."""
  compaction.check_dense_chain(compact, 'export')
  const = lambda value: _Entry('', value.dtype, value.shape, lambda: value)
  entries = [dataclasses.replace(const(np.array(compact.num_layers)), name='num_layers'),
             dataclasses.replace(const(np.array(use_biases)), name='use_biases')]
  for i, (kernel, bias) in enumerate(zip(compact.kernels, compact.biases), start=1):
    index_type = np.dtype(np.int16 if kernel.shape[0] <= np.iinfo(np.int16).max
                          else np.int32)
    nonzeros = int(np.count_nonzero(kernel != 0))
    csr_bytes = nonzeros * (4 + index_type.itemsize) + 4 * (kernel.shape[1] + 1)
    if csr_bytes < kernel.nbytes:
      csr = _csr_maker(kernel, index_type)
      entries += [
          _Entry(f'csr_values_{i}', np.dtype(np.float32), (nonzeros,), lambda c=csr: c()[0]),
          _Entry(f'csr_indices_{i}', index_type, (nonzeros,), lambda c=csr: c()[1]),
          _Entry(f'csr_indptr_{i}', np.dtype(np.int32), (kernel.shape[1] + 1,),
                 lambda c=csr: c()[2]),
          dataclasses.replace(const(np.array(kernel.shape, dtype=np.int64)),
                              name=f'shape_{i}')]
    else:
      entries.append(dataclasses.replace(const(kernel), name=f'kernel_{i}'))
    if use_biases:
      entries.append(dataclasses.replace(const(bias), name=f'bias_{i}'))
  return entries


def _csr_maker(kernel: np.ndarray, index_type: np.dtype):
  """A function building (values, column indices, row pointers) of kernel.T once."""
  built = []

  def make():
    if not built:
      kernel_t = np.ascontiguousarray(kernel.T)
      rows, cols = np.nonzero(kernel_t)
      built.append((kernel_t[rows, cols].astype(np.float32), cols.astype(index_type),
                    np.concatenate([[0], np.cumsum(np.bincount(
                        rows, minlength=kernel.shape[1]))]).astype(np.int32)))
    return built[0]

  return make


def to_arrays(compact: Network, use_biases: bool = True) -> dict[str, np.ndarray]:
  """The arrays of the export of a network already compacted by `compaction`.

  Raises:
    TfpruneError: the network has layer specs (only dense chains export).
  """
  return {e.name: e.make() for e in _layout(compact, use_biases)}


def _header(metadata: dict[str, Any] | None) -> dict[str, np.ndarray]:
  return {'format': np.array(FORMAT), 'metadata': np.array(json.dumps(metadata or {}))}


def to_bytes(compact: Network, use_biases: bool = True,
             metadata: dict[str, Any] | None = None) -> bytes:
  """The export file's content for a network already compacted by `compaction`.

  `inference.Plan.network` is such a network; `save` compacts for you.
  """
  buffer = io.BytesIO()
  np.savez(buffer, **_header(metadata), **to_arrays(compact, use_biases))
  return buffer.getvalue()


# np.savez writes an uncompressed zip64 entry per array: a local header of 30
# bytes + the name + a 20-byte zip64 extra field, the .npy bytes, and a central
# directory entry of 46 bytes + the name; then a 22-byte end record.
_LOCAL, _ZIP64_EXTRA, _CENTRAL, _END = 30, 20, 46, 22


def _npy_header_bytes(dtype: np.dtype, shape: tuple[int, ...]) -> int:
  header = {'descr': np.lib.format.dtype_to_descr(dtype), 'fortran_order': False,
            'shape': tuple(int(d) for d in shape)}
  buffer = io.BytesIO()
  try:
    np.lib.format.write_array_header_1_0(buffer, header)
  except ValueError:  # too long for version 1.0: np.save then writes 2.0
    np.lib.format.write_array_header_2_0(buffer, header)
  return len(buffer.getvalue())


def size_bytes(compact: Network, use_biases: bool = True,
               metadata: dict[str, Any] | None = None) -> int:
  """`len(to_bytes(...))` without building the file: from the arrays' shapes.

  The sweep's `size_bytes` column; equal to the written file's size (tested
  against `to_bytes`), at a fraction of the cost.
  """
  header = [_Entry(name, value.dtype, value.shape, None)
            for name, value in _header(metadata).items()]
  total = _END
  for e in header + _layout(compact, use_biases):
    name = len((e.name + '.npy').encode())
    data = _npy_header_bytes(e.dtype, e.shape) + int(
        np.prod(e.shape, dtype=np.int64)) * e.dtype.itemsize
    total += _LOCAL + name + _ZIP64_EXTRA + data + _CENTRAL + name
  return total


def save(path: str | pathlib.Path, network: Network, use_biases: bool = True,
         metadata: dict[str, Any] | None = None,
         provenance: dict[str, Any] | None = None) -> pathlib.Path:
  """Writes the export of `network` to `path` atomically; returns the path.

  `provenance` (the data it was made on, `tfprune.data.provenance`) goes into
  the archive's comment (`ziptags`): the file is `size_bytes` plus the
  comment's length.
  """
  path = pathlib.Path(path)
  atomic.ensure_dir(path.parent, flag='--save_pruned')
  with atomic.replacing(path) as tmp:
    tmp.write_bytes(ziptags.tagged(to_bytes(
        compaction.compact(network, use_biases), use_biases, metadata),
        provenance))
  return path
