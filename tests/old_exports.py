"""Writes files in the old dense-chain export format (`tfprune-pruned-v1`), for tests.

tfprune no longer writes that format (it writes graph files, `graph.io`), but
users' old `--save_pruned` files must keep loading (`graph.pruned_file`).
This writer follows the old exporter's layout: per layer the dense kernel, or
the CSR of its transpose (float32 values, int16 column indices, int32 row
pointers) where that is smaller, and the bias unless biases were off; the
provenance entry, if any, in the archive's comment.
"""

import json
import pathlib

import numpy as np

from tfprune import ziptags
from tfprune.graph import pruned_file


def random_chain(shapes=((12, 8), (8, 6), (6, 3)), seed: int = 0
                 ) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """Kernels and biases of a random dense ReLU chain of (inputs, units) shapes."""
  rng = np.random.default_rng(seed)
  kernels = [rng.normal(0, 0.3, s).astype(np.float32) for s in shapes]
  biases = [rng.normal(0, 0.1, s[1]).astype(np.float32) for s in shapes]
  return kernels, biases


def magnitude_pruned(kernels, k: float, layers=None) -> list[np.ndarray]:
  """`kernels` with the k% smallest |w| of each listed layer set to zero
  (default: every layer but the last)."""
  layers = range(len(kernels) - 1) if layers is None else layers
  out = [np.array(w) for w in kernels]
  for i in layers:
    count = int(round(k / 100 * out[i].size))
    order = np.argsort(np.abs(out[i]), axis=None, kind='stable')[:count]
    out[i].flat[order] = 0
  return out


def arrays(kernels, biases, use_biases: bool = True) -> dict[str, np.ndarray]:
  """The export's arrays of a chain (no compaction: the layers as given)."""
  out = {'num_layers': np.array(len(kernels)), 'use_biases': np.array(use_biases)}
  for i, (kernel, bias) in enumerate(zip(kernels, biases), start=1):
    index_type = np.int16 if kernel.shape[0] <= np.iinfo(np.int16).max else np.int32
    nonzeros = int(np.count_nonzero(kernel))
    csr_bytes = nonzeros * (4 + np.dtype(index_type).itemsize) + 4 * (
        kernel.shape[1] + 1)
    if csr_bytes < kernel.nbytes:
      kernel_t = np.ascontiguousarray(kernel.T)
      rows, cols = np.nonzero(kernel_t)
      out[f'csr_values_{i}'] = kernel_t[rows, cols].astype(np.float32)
      out[f'csr_indices_{i}'] = cols.astype(index_type)
      out[f'csr_indptr_{i}'] = np.concatenate([[0], np.cumsum(np.bincount(
          rows, minlength=kernel.shape[1]))]).astype(np.int32)
      out[f'shape_{i}'] = np.array(kernel.shape, dtype=np.int64)
    else:
      out[f'kernel_{i}'] = kernel
    if use_biases:
      out[f'bias_{i}'] = bias
  return out


def save(path, kernels, biases, use_biases: bool = True, metadata=None,
         provenance=None) -> pathlib.Path:
  """Writes an old dense-chain export of the chain at `path`; returns the path."""
  path = pathlib.Path(path)
  with open(path, 'wb') as f:
    np.savez(f, format=np.array(pruned_file.DENSE_FORMAT),
             metadata=np.array(json.dumps(metadata or {})),
             **arrays(kernels, biases, use_biases))
  if provenance is not None:
    path.write_bytes(ziptags.tagged(path.read_bytes(), provenance))
  return path
