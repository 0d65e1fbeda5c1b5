"""Score any saved network on a test split: a sweep export, a graph file, a Keras model.

`score(path)` picks the reader by what the file is: a dense-chain export of
`sweep --save_pruned` (`runtime.export`, scored through `inference`), a
tfprune graph file (a sweep of a CNN folder or a Keras model with
`--save_pruned`, or a gradual run's `graph.npz`), or a Keras model file
(imported and verified by `from_keras`); the last two are scored through
the graph evaluator, as the sweep scores them. `data` (a user's `.npz`)
replaces the registry dataset for graphs and Keras models.
"""

import dataclasses
import pathlib
import zipfile

import numpy as np

from tfprune.data import datasets
from tfprune.data import user_data
from tfprune.drivers import graph_sweep
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import io as graph_io
from tfprune.graph.ir import thaw
from tfprune.keras_io import importer
from tfprune.runtime import export

_GRAPH_ENTRY = 'graph.json.npy'


def is_graph_file(path: pathlib.Path) -> bool:
  """True if `path` is a tfprune graph file (`graph.io`)."""
  try:
    with zipfile.ZipFile(path) as archive:
      return _GRAPH_ENTRY in archive.namelist()
  except (zipfile.BadZipFile, OSError):
    return False


def score(path: str | pathlib.Path, dataset: str = 'mnist',
          data_dir: str | None = None, data: str | None = None) -> export.Score:
  """Test accuracy, non-zero parameters, widths and bytes of a saved network.

  Raises:
    TfpruneError: the file cannot be read, or does not fit the data.
  """
  path = pathlib.Path(path)
  keras_file = path.suffix in ('.keras', '.h5', '.hdf5') or path.is_dir()
  if not keras_file and not is_graph_file(path):
    if data is not None:
      raise TfpruneError(f'{path} is a dense-chain export, scored on a registry '
                         '--dataset: drop --data')
    return export.score(path, dataset, data_dir)
  if data is not None:
    split, _ = user_data.load(data)
  else:
    split = datasets.load(dataset, 'test', data_dir)
  if keras_file:
    graph = importer.from_keras(path)
    if data is None and split.images[0].size == np.prod(graph.input_shape):
      # A registry dataset's images, as the model reads them (a dense chain
      # reads them flat, as the sweep fed them).
      split = dataclasses.replace(split, images=split.images.reshape(
          len(split.images), *graph.input_shape))
    size = sum(f.stat().st_size for f in path.rglob('*') if f.is_file()) if (
        path.is_dir()) else path.stat().st_size
  else:
    graph = graph_io.load(path)
    size = path.stat().st_size
  source = data or dataset
  user_data.check_fits(split, graph.input_shape, int(np.prod(graph.output_shape)),
                       source)
  accuracy = evaluator.Evaluator(graph).accuracy(split.images, split.labels)
  return export.Score(str(path), source, accuracy,
                      graph_sweep.nonzero_params(graph),
                      graph_sweep.macs(graph, nonzero_only=True),
                      graph_sweep.live_units(graph), size, thaw(graph.metadata))
