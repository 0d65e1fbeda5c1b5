"""Export of a pruned network in its compact, sparse form: one `.npz` file.

The network is compacted first (`compaction.compact`), then each kernel is
stored whichever way is smaller: dense, or CSR of its transposed (units,
inputs) form with float32 values, int16 column indices (int32 past 32,767
inputs) and int32 row pointers. Values are stored exactly, so the loaded
network predicts exactly like the pruned one. Arrays, with `format` and a JSON
`metadata` string, go into an uncompressed `.npz` (no pickles; deflate saves
little on float values and would cost a quarter second per 10 MB). Only dense
chains export: networks with layer specs (CNNs, ResNet-18) are refused.
"""

import dataclasses
import io
import json
import pathlib
import zipfile
from typing import Any

import numpy as np

from tfprune import atomic
from tfprune import ziptags
from tfprune.errors import TfpruneError
from tfprune.graph.network import Network
from tfprune.transforms import compaction

FORMAT = 'tfprune-pruned-v1'
SUFFIX = '.npz'


@dataclasses.dataclass(frozen=True)
class Score:
  """What `score` measured of an export.

  Attributes:
    path: the export file.
    dataset: the dataset whose test split was used.
    accuracy: test accuracy of the loaded network.
    nonzero_params: non-zero kernel weights, plus biases when used.
    flops: multiply-adds per example of the non-zero weights (the sweep's
      `flops` column).
    units: layer widths, e.g. 784-100-100-50-20-10.
    size_bytes: bytes of the file but its provenance tag (`ziptags`): the
      network's bytes, as the sweep's `size_bytes` column counts them.
    metadata: what the export recorded of how it was made.
  """
  path: str
  dataset: str
  accuracy: float
  nonzero_params: int
  flops: int
  units: str
  size_bytes: int
  metadata: dict[str, Any]


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


def load(path: str | pathlib.Path) -> tuple[Network, bool, dict[str, Any]]:
  """Reads an export back.

  Returns:
    The compact network (dense arrays; zero biases when the export has none),
    whether it was exported with biases, and its metadata.

  Raises:
    TfpruneError: the file is missing, not an `.npz`, not this format, or its
      arrays are inconsistent.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise TfpruneError(f'pruned export {path} does not exist: write one with --save_pruned')
  fix = 're-export it with experiments/sweep.py --save_pruned'
  try:
    loaded = np.load(path, allow_pickle=False)
    if isinstance(loaded, np.lib.npyio.NpzFile):
      with loaded as npz:
        arrays = {name: npz[name] for name in npz.files}
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    raise TfpruneError(f'{path} is not a readable .npz file ({e}): {fix}') from None
  if not isinstance(loaded, np.lib.npyio.NpzFile):
    raise TfpruneError(f'{path} is a single .npy array, not a pruned export '
                       f'(.npz): {fix}')
  found = str(arrays.get('format', 'none'))
  if found != FORMAT:
    raise TfpruneError(f'{path} has format {found!r}, expected {FORMAT!r}: {fix}')
  try:
    return _from_arrays(arrays)
  except (KeyError, ValueError, IndexError) as e:
    raise TfpruneError(f'{path} is inconsistent ({type(e).__name__}: {e}): {fix}') from None


def _from_arrays(arrays: dict[str, np.ndarray]) -> tuple[Network, bool, dict[str, Any]]:
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
        raise ValueError(f'CSR arrays of layer {i} do not describe a ({units}, {inputs}) matrix')
      kernel_t = np.zeros((units, inputs), dtype=np.float32)
      kernel_t[np.repeat(np.arange(units), np.diff(indptr)), indices] = values
      kernel = kernel_t.T
    kernels.append(kernel)
    biases.append(arrays[f'bias_{i}'] if use_biases
                  else np.zeros(kernel.shape[1], np.float32))
  metadata = json.loads(str(arrays['metadata']))
  return Network(tuple(kernels), tuple(biases)), use_biases, metadata


def made_for_dataset(metadata: dict[str, Any]) -> str | None:
  """The dataset an export's weights were trained on, if it can be known.

  Exports record the weight folder they were pruned from; its manifest names
  the dataset. A folder that has moved, or has no manifest, gives None.
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


def score(path: str | pathlib.Path, dataset: str = 'mnist',
          data_dir: str | None = None, allow_other_data: bool = False) -> Score:
  """Loads an export and measures its test accuracy through `inference`.

  Args:
    path: the export.
    dataset: the registry dataset to score on.
    data_dir: its local folder, or None.
    allow_other_data: score it even if its provenance names other data.

  Raises:
    TfpruneError: the export cannot be read (see `load`), holds a NaN/Inf
      weight, was made on other data, or does not fit the dataset's inputs or
      classes.
  """
  # Imported here: `inference` loads TensorFlow, which `save`/`load` do not need.
  from tfprune.data import checks  # pylint: disable=g-import-not-at-top
  from tfprune.data import datasets  # pylint: disable=g-import-not-at-top
  from tfprune.data import provenance  # pylint: disable=g-import-not-at-top
  from tfprune.runtime import inference  # pylint: disable=g-import-not-at-top
  from tfprune.runtime import metrics  # pylint: disable=g-import-not-at-top
  network, use_biases, metadata = load(path)
  checks.finite_params(
      [(f'kernel_{i}', k) for i, k in enumerate(network.kernels, start=1)]
      + [(f'bias_{i}', b) for i, b in enumerate(network.biases, start=1)],
      str(path))
  recorded = ziptags.read(path)
  made_for = None if recorded or allow_other_data else made_for_dataset(metadata)
  if made_for is not None and made_for != dataset:
    raise TfpruneError(
        f'{path} was pruned from weights trained on {made_for}, not {dataset}: '
        f'pass --dataset={made_for}')
  spec = datasets.get(dataset)
  if network.input_dim != int(np.prod(spec.image_shape)):
    raise TfpruneError(
        f'{path} takes {network.input_dim} inputs but {dataset} examples have '
        f'{int(np.prod(spec.image_shape))} values: pass the --dataset it was '
        'made for')
  if network.output_dim != spec.num_classes:
    raise TfpruneError(
        f'{path} has {network.output_dim} outputs but {dataset} has '
        f'{spec.num_classes} classes: pass the --dataset it was made for')
  split = datasets.load(dataset, 'test', data_dir)
  provenance.check(recorded, provenance.record(
      dataset, None, None, split.images.shape[1:]), str(path), allow_other_data)
  plan = inference.plan(network, use_biases)
  inputs = inference.prepare(split.images, network.input_dim)
  counts = metrics.total(metrics.layer_counts(network, use_biases))
  return Score(str(path), dataset, inference.accuracy(plan, inputs, split.labels),
               counts.nonzero_params, counts.effective_macs,
               metrics.widths(network),
               # The network's bytes, as the sweep's size_bytes: not the tag.
               pathlib.Path(path).stat().st_size - len(ziptags.comment(recorded)),
               metadata)
