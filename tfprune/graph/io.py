"""A graph as one `.npz` file: its structure as JSON, each array dense or sparse.

`to_bytes(graph)` stores every array densely, or, where it is smaller, as the
flat indices (uint32) and values (float32) of its non-zeros, so a pruned
network's file shrinks with its sparsity; `from_bytes` rebuilds the exact
graph (checked again on construction). `save` writes through a temporary
file and a rename (`atomic.replacing`), so an interrupted save leaves no half-written file.

A file may carry a provenance entry (the data the network was made or
scored on, `tfprune.data.provenance`) as the archive's comment (`ziptags`),
beside the graph rather than in it: `read` returns both. A file that is not whole (a member removed, a node
without params, sparse indices out of range) is refused in one line naming
the file and what is wrong.

A graph with several inputs or outputs stores `outputs` and `input_shapes`
where a one-input, one-output graph stores `output` and `input_shape`.
"""

import io
import json
import os
import pathlib
import zipfile

import numpy as np

from tfprune import atomic
from tfprune import ziptags
from tfprune.errors import TfpruneError
from tfprune.graph.ir import Graph
from tfprune.graph.ir import Node
from tfprune.graph.ir import thaw

FORMAT = 'tfprune-graph'
VERSION = 1
SUFFIX = '.npz'


def _encode(array: np.ndarray) -> dict[str, np.ndarray]:
  flat = array.ravel()
  nonzero = np.flatnonzero(flat)
  if nonzero.size * 8 < flat.size * 4 and flat.size < 2**32:
    return {'indices': nonzero.astype(np.uint32),
            'values': flat[nonzero].astype(np.float32)}
  return {'dense': array}


def to_bytes(graph: Graph, provenance: dict | None = None) -> bytes:
  """The graph (and its `provenance` entry, if given) as the bytes of an `.npz` file."""
  arrays, nodes = {}, []
  for i, node in enumerate(graph.nodes):
    params = {}
    for name, value in node.params.items():
      encoded = _encode(value)
      params[name] = {'shape': list(value.shape), 'encoding': next(iter(encoded)) if
                      len(encoded) == 1 else 'sparse'}
      for part, data in encoded.items():
        arrays[f'n{i}.{name}.{part}'] = data
    nodes.append({'name': node.name, 'op': node.op, 'inputs': list(node.inputs),
                  'attrs': thaw(node.attrs), 'params': params})
  structure = {'format': FORMAT, 'version': VERSION, 'nodes': nodes,
               'metadata': thaw(graph.metadata)}
  if len(graph.outputs) == 1 and len(graph.inputs) == 1:  # as before
    structure.update(output=graph.output, input_shape=list(graph.input_shape))
  else:
    structure.update(outputs=list(graph.outputs),
                     input_shapes=[list(s) for s in graph.input_shapes])
  arrays['graph.json'] = np.frombuffer(
      json.dumps(structure, sort_keys=True).encode(), dtype=np.uint8)
  out = io.BytesIO()
  np.savez(out, **arrays)
  return ziptags.tagged(out.getvalue(), provenance)


def _attrs(value):
  """JSON lists back to the tuples the graph stores."""
  if isinstance(value, dict):
    return {k: _attrs(v) for k, v in value.items()}
  if isinstance(value, list):
    return tuple(_attrs(v) for v in value)
  return value


def from_bytes(raw: bytes, source: str = 'graph file') -> Graph:
  """The graph stored by `to_bytes`.

  Raises:
    TfpruneError: the bytes are not a whole tfprune graph file, or a newer one.
  """
  return read_bytes(raw, source)[0]


def read_bytes(raw: bytes, source: str = 'graph file'
               ) -> tuple[Graph, dict | None]:
  """The graph stored by `to_bytes` and its provenance entry (None if absent).

  Raises:
    TfpruneError: the bytes are not a whole tfprune graph file, or a newer one.
  """
  try:
    with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
      arrays = {k: archive[k] for k in archive.files}
    structure = json.loads(arrays.pop('graph.json').tobytes())
  except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
    raise TfpruneError(f'{source} is not a tfprune graph file ({e}): write it '
                       'with tfprune.save') from None
  if not isinstance(structure, dict):
    raise TfpruneError(f'{source} is not a tfprune graph file (its graph.json '
                       'is not an object): write it with tfprune.save')
  if structure.get('format') != FORMAT or structure.get('version') != VERSION:
    raise TfpruneError(f'{source} is {structure.get("format")} version '
                       f'{structure.get("version")}, not {FORMAT} version '
                       f'{VERSION}: write it again with this tfprune')
  try:
    nodes = [_node(i, entry, arrays) for i, entry in
             enumerate(structure['nodes'])]
    if 'outputs' in structure:
      outputs, shapes = structure['outputs'], structure['input_shapes']
    else:
      outputs, shapes = structure['output'], structure['input_shape']
    graph = Graph(tuple(nodes), outputs, shapes, structure.get('metadata', {}))
  except _Broken as e:
    raise TfpruneError(f'{source} is damaged ({e}): write it again with '
                       'tfprune.save') from None
  except TfpruneError as e:
    raise TfpruneError(f'{source}: {e}') from None
  except (KeyError, TypeError, AttributeError, ValueError) as e:
    raise TfpruneError(f'{source} is damaged ({type(e).__name__}: {e} in its '
                       'graph.json): write it again with tfprune.save') from None
  return graph, ziptags.read(raw)


class _Broken(Exception):
  """A graph file's arrays do not agree with its graph.json."""


def _node(i: int, entry: dict, arrays: dict[str, np.ndarray]) -> Node:
  """Node `i` of a graph file, its params rebuilt from the arrays."""
  if not isinstance(entry.get('params'), dict):
    raise _Broken(f'node {entry.get("name", i)!r} has no params entry')
  params = {}
  for name, info in entry['params'].items():
    key = f'n{i}.{name}'
    shape = tuple(int(d) for d in info['shape'])
    parts = ('dense',) if info['encoding'] == 'dense' else ('indices', 'values')
    missing = [f'{key}.{p}' for p in parts if f'{key}.{p}' not in arrays]
    if missing:
      raise _Broken(f'member {missing[0]}.npy is missing')
    if info['encoding'] == 'dense':
      params[name] = arrays[f'{key}.dense']
      if params[name].shape != shape:
        raise _Broken(f'{key}.dense has shape {params[name].shape}, graph.json '
                      f'says {shape}')
      continue
    size = int(np.prod(shape))
    indices, values = arrays[f'{key}.indices'], arrays[f'{key}.values']
    if (indices.ndim != 1 or indices.shape != values.shape
        or not np.issubdtype(indices.dtype, np.integer)):
      raise _Broken(f'{key}: {indices.shape} indices for {values.shape} values')
    if indices.size and (indices.min() < 0 or indices.max() >= size):
      raise _Broken(f'{key}.indices reaches {indices.max()}, past the {size} '
                    f'values of shape {shape}')
    flat = np.zeros(size, np.float32)
    flat[indices] = values
    params[name] = flat.reshape(shape)
  return Node(entry['name'], entry['op'], entry['inputs'],
              _attrs(entry['attrs']), params)


def save(graph: Graph, path: str | os.PathLike,
         provenance: dict | None = None) -> pathlib.Path:
  """Writes `graph` (and `provenance`) to `path` (temporary file, then rename)."""
  path = pathlib.Path(path)
  with atomic.replacing(path) as tmp:
    tmp.write_bytes(to_bytes(graph, provenance))
  return path


def load(path: str | os.PathLike) -> Graph:
  """The graph saved at `path`."""
  return read(path)[0]


def read(path: str | os.PathLike) -> tuple[Graph, dict | None]:
  """The graph saved at `path` and its provenance entry (None if absent)."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise TfpruneError(f'graph file {path} does not exist: pass a file written '
                       'by tfprune.save')
  return read_bytes(path.read_bytes(), str(path))
