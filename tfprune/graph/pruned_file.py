"""Any pruned `.npz` tfprune wrote, read as a `Graph`.

tfprune writes one pruned-file format, the graph file (`graph.io`). Older
versions of the sweep's `--save_pruned` wrote dense chains in their own
format (`tfprune-pruned-v1`: per layer a dense kernel or the CSR of its
transpose, and a bias unless biases were off); `read` converts such a file to
the equivalent graph (a chain of dense layers with ReLU between them), so a
user's old exports keep loading and scoring. What neither format is, is
refused in one line saying how to write the file again.
"""

import io
import json
import pathlib
import zipfile
from typing import Any

import numpy as np

from tfprune import ziptags
from tfprune.errors import TfpruneError
from tfprune.graph import io as graph_io
from tfprune.graph import network_graph
from tfprune.graph.ir import Graph
from tfprune.graph.ir import thaw

DENSE_FORMAT = 'tfprune-pruned-v1'  # the old dense-chain export
_GRAPH_ENTRY = 'graph.json.npy'
_FIX = ('write it again with tfprune sweep --save_pruned (or tfprune.save); '
        'this tfprune writes graph files')


def is_graph_file(path: str | pathlib.Path) -> bool:
  """True if `path` is a tfprune graph file (`graph.io`)."""
  try:
    with zipfile.ZipFile(path) as archive:
      return _GRAPH_ENTRY in archive.namelist()
  except (zipfile.BadZipFile, OSError):
    return False


def read(path: str | pathlib.Path
         ) -> tuple[Graph, dict[str, Any] | None, dict[str, Any]]:
  """The graph in a pruned `.npz`, its provenance entry and what made it.

  Returns:
    The graph; the provenance entry of the archive's comment, or None; and
    the record of how the file was made (a graph file's metadata, an old
    export's `metadata`).

  Raises:
    TfpruneError: the file is missing, not an `.npz`, neither format, or its
      arrays are inconsistent.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise TfpruneError(f'pruned file {path} does not exist: write one with '
                       'tfprune sweep --save_pruned')
  raw = path.read_bytes()
  if is_graph_file(path):
    graph, recorded = graph_io.read_bytes(raw, str(path))
    return graph, recorded, thaw(graph.metadata)
  try:
    loaded = np.load(io.BytesIO(raw), allow_pickle=False)
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    raise TfpruneError(f'{path} is not a readable pruned .npz '
                       f'({type(e).__name__}): {_FIX}') from None
  if not isinstance(loaded, np.lib.npyio.NpzFile):
    raise TfpruneError(f'{path} is not a readable pruned .npz (it holds a '
                       f'single .npy array): {_FIX}')
  with loaded as archive:
    arrays = {name: archive[name] for name in archive.files}
  found = str(arrays.get('format', 'none'))
  if found != DENSE_FORMAT:
    raise TfpruneError(f'{path} has format {found!r}, neither a graph file nor '
                       f'{DENSE_FORMAT!r}: {_FIX}')
  try:
    graph, metadata = _dense_export_graph(arrays)
  except (KeyError, ValueError, IndexError, TfpruneError) as e:
    raise TfpruneError(f'{path} is inconsistent ({type(e).__name__}: {e}): '
                       f'{_FIX}') from None
  return graph, ziptags.read(raw), metadata


def load(path: str | pathlib.Path) -> Graph:
  """The graph in a pruned `.npz` (see `read`)."""
  return read(path)[0]


def _dense_export_graph(arrays: dict[str, np.ndarray]
                        ) -> tuple[Graph, dict[str, Any]]:
  """The graph of an old dense-chain export's arrays, and its metadata."""
  use_biases = bool(arrays['use_biases'])
  kernels, biases = [], []
  for i in range(1, int(arrays['num_layers']) + 1):
    if f'kernel_{i}' in arrays:
      kernel = arrays[f'kernel_{i}']
    else:
      inputs, units = (int(d) for d in arrays[f'shape_{i}'])
      indptr = arrays[f'csr_indptr_{i}'].astype(np.int64)
      indices = arrays[f'csr_indices_{i}'].astype(np.int64)
      values = arrays[f'csr_values_{i}']
      if (indptr.shape != (units + 1,) or indptr[-1] != values.size
          or indices.size != values.size or np.any(np.diff(indptr) < 0)
          or (indices.size and (indices.min() < 0 or indices.max() >= inputs))):
        raise ValueError(f'CSR arrays of layer {i} do not describe a '
                         f'({units}, {inputs}) matrix')
      kernel_t = np.zeros((units, inputs), dtype=np.float32)
      kernel_t[np.repeat(np.arange(units), np.diff(indptr)), indices] = values
      kernel = kernel_t.T
    if kernel.ndim != 2 or (kernels and kernel.shape[0] != kernels[-1].shape[1]):
      raise ValueError(f'kernel {i} of shape {kernel.shape} does not chain')
    kernels.append(np.ascontiguousarray(kernel, dtype=np.float32))
    biases.append(arrays[f'bias_{i}'].astype(np.float32) if use_biases else None)
  if not kernels:
    raise ValueError('no layers')
  metadata = json.loads(str(arrays['metadata']))
  return network_graph.layers_graph(kernels, biases), metadata


def made_for_dataset(metadata: dict[str, Any]) -> str | None:
  """The dataset a pruned file's weights were trained on, if it can be known.

  Old exports carry no provenance tag but record the weight folder they were
  pruned from; its manifest names the dataset. A folder that has moved, or
  has no manifest, gives None.
  """
  if isinstance(metadata.get('dataset'), str):
    return metadata['dataset']
  folder = metadata.get('weights_dir')
  if not isinstance(folder, str):
    return None
  try:
    manifest = json.loads((pathlib.Path(folder) / 'manifest.json').read_text())
  except (OSError, ValueError):
    return None
  made_for = manifest.get('dataset') if isinstance(manifest, dict) else None
  return made_for if isinstance(made_for, str) else None
