"""A graph as one `.npz` file: its structure as JSON, each array dense or sparse.

`to_bytes(graph)` stores every array densely, or, where it is smaller, as the
flat indices (uint32) and values (float32) of its non-zeros, so a pruned
network's file shrinks with its sparsity; `from_bytes` rebuilds the exact
graph (checked again on construction). `save` writes through a temporary
file and a rename (`atomic.replacing`), so an interrupted save leaves no half-written file.
"""

import io
import json
import os
import pathlib
import zipfile

import numpy as np

from tfprune import atomic
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


def to_bytes(graph: Graph) -> bytes:
  """The graph as the bytes of an `.npz` file."""
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
               'output': graph.output, 'input_shape': list(graph.input_shape),
               'metadata': thaw(graph.metadata)}
  arrays['graph.json'] = np.frombuffer(
      json.dumps(structure, sort_keys=True).encode(), dtype=np.uint8)
  out = io.BytesIO()
  np.savez(out, **arrays)
  return out.getvalue()


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
    TfpruneError: the bytes are not a tfprune graph file, or a newer one.
  """
  try:
    with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
      arrays = {k: archive[k] for k in archive.files}
    structure = json.loads(arrays.pop('graph.json').tobytes())
  except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
    raise TfpruneError(f'{source} is not a tfprune graph file ({e}): write it '
                       'with tfprune.save') from None
  if structure.get('format') != FORMAT or structure.get('version') != VERSION:
    raise TfpruneError(f'{source} is {structure.get("format")} version '
                       f'{structure.get("version")}, not {FORMAT} version '
                       f'{VERSION}: write it again with this tfprune')
  nodes = []
  for i, entry in enumerate(structure['nodes']):
    params = {}
    for name, info in entry['params'].items():
      key = f'n{i}.{name}'
      if info['encoding'] == 'dense':
        params[name] = arrays[f'{key}.dense']
      else:
        flat = np.zeros(int(np.prod(info['shape'])), np.float32)
        flat[arrays[f'{key}.indices']] = arrays[f'{key}.values']
        params[name] = flat.reshape(info['shape'])
    nodes.append(Node(entry['name'], entry['op'], entry['inputs'],
                      _attrs(entry['attrs']), params))
  return Graph(tuple(nodes), structure['output'], structure['input_shape'],
               structure['metadata'])


def save(graph: Graph, path: str | os.PathLike) -> pathlib.Path:
  """Writes `graph` to `path` (temporary file, then rename)."""
  path = pathlib.Path(path)
  with atomic.replacing(path) as tmp:
    tmp.write_bytes(to_bytes(graph))
  return path


def load(path: str | os.PathLike) -> Graph:
  """The graph saved at `path`."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise TfpruneError(f'graph file {path} does not exist: pass a file written '
                       'by tfprune.save')
  return from_bytes(path.read_bytes(), str(path))
