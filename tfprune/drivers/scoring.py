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

from tfprune import ziptags
from tfprune.data import source as data_source
from tfprune.drivers import folder_graph
from tfprune.drivers import graph_sweep
from tfprune.drivers import model_checks
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import io as graph_io
from tfprune.graph.ir import thaw
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
          data_dir: str | None = None, data: str | None = None,
          allow_other_data: bool = False) -> export.Score:
  """Test accuracy, non-zero parameters, widths and bytes of a saved network.

  Args:
    path: the export, graph file or Keras model.
    dataset: the registry dataset to score on (without `data`).
    data_dir: its local folder, or None.
    data: a user's `.npz` instead.
    allow_other_data: score it even if its provenance names other data.

  Raises:
    TfpruneError: the file cannot be read, has a NaN/Inf weight, was made on
      other data, or does not fit the data.
  """
  path = pathlib.Path(path)
  keras_file = path.suffix in ('.keras', '.h5', '.hdf5') or path.is_dir()
  if not keras_file and not is_graph_file(path):
    if data is not None:
      raise TfpruneError(f'{path} is a dense-chain export, scored on a registry '
                         '--dataset: drop --data')
    return export.score(path, dataset, data_dir, allow_other_data)
  given = data_source.load(dataset, data_dir, data)
  split = given.test
  if keras_file:
    if data is None:
      split = _as_model_reads(path, split)
    graph, recorded = model_checks.import_model(str(path), split.images)
    size = sum(f.stat().st_size for f in path.rglob('*') if f.is_file()) if (
        path.is_dir()) else path.stat().st_size
  else:
    graph, recorded = graph_io.read(path)
    model_checks.finite(graph, str(path))
    # The network's bytes, as the sweep's size_bytes column: not its tag.
    size = path.stat().st_size - len(ziptags.comment(recorded))
    if data is None:  # a weight folder's dense chain reads each image flat
      split = folder_graph.shaped(split, graph.input_shape)
  given.check_made_on(recorded, str(path), allow_other_data)
  data_source.fits(split, graph.input_shape, int(np.prod(graph.output_shape)),
                   given.name)
  source = given.name
  accuracy = evaluator.Evaluator(graph).accuracy(split.images, split.labels)
  return export.Score(str(path), source, accuracy,
                      graph_sweep.nonzero_params(graph),
                      graph_sweep.macs(graph, nonzero_only=True),
                      graph_sweep.live_units(graph), size, thaw(graph.metadata))


def _as_model_reads(path: pathlib.Path, split):
  """A registry dataset's images shaped as the Keras model at `path` reads them.

  A dense chain saved by `sweep --save_keras` reads each image flat, as the
  sweep fed it; anything else is left as it is for the import to check.
  """
  # Imported here: it loads TensorFlow and Keras.
  from tfprune.keras_io import load  # pylint: disable=import-outside-toplevel
  shape = load.load_model(path).input_shape
  if not (isinstance(shape, tuple) and all(isinstance(d, int) for d in shape[1:])):
    return split
  shape = tuple(shape[1:])
  if split.images.shape[1:] != shape and split.images[0].size == np.prod(shape):
    split = dataclasses.replace(split, images=split.images.reshape(
        len(split.images), *shape))
  return split

