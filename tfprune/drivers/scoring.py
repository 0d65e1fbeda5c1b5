"""Score any saved network on a test split: a pruned `.npz` or a Keras model.

`score(path)` reads a pruned `.npz` (`graph.pruned_file`: a graph file
written by `sweep --save_pruned`, `tfprune.save` or a gradual run, or an old
dense-chain export, converted to its graph) or a Keras model file (imported
and verified by `from_keras`), and scores the graph through the graph
evaluator, as the sweep scores it. `data` (a user's `.npz`) replaces the
registry dataset.
"""

import dataclasses
import pathlib
from typing import Any

import numpy as np

from tfprune import ziptags
from tfprune.data import datasets
from tfprune.data import source as data_source
from tfprune.drivers import folder_graph
from tfprune.drivers import graph_sweep
from tfprune.drivers import model_checks
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import pruned_file
from tfprune.graph.ir import thaw


@dataclasses.dataclass(frozen=True)
class Score:
  """What `score` measured of a saved network.

  Attributes:
    path: the file.
    dataset: the data whose test split was used.
    accuracy: test accuracy of the loaded network.
    nonzero_params: non-zero parameters (the sweep's `nonzero_params`).
    flops: multiply-adds per example of the non-zero weights (the sweep's
      `flops` column).
    units: per weighted layer, the output channels with a non-zero weight.
    size_bytes: bytes of the file but its provenance tag (`ziptags`): the
      network's bytes, as the sweep's `size_bytes` column counts them.
    metadata: what the file recorded of how it was made.
  """
  path: str
  dataset: str
  accuracy: float
  nonzero_params: int
  flops: int
  units: str
  size_bytes: int
  metadata: dict[str, Any]


def score(path: str | pathlib.Path, dataset: str = 'mnist',
          data_dir: str | None = None, data: str | None = None,
          allow_other_data: bool = False) -> Score:
  """Test accuracy, non-zero parameters, widths and bytes of a saved network.

  Args:
    path: the pruned `.npz` or Keras model.
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
  if not keras_file:  # the file first: it is what the user asked about
    graph, recorded, made = pruned_file.read(path)
    model_checks.finite(graph, str(path))
    made_for = None if recorded or allow_other_data or data is not None else (
        pruned_file.made_for_dataset(made))
    if made_for is not None and made_for != dataset:
      raise TfpruneError(
          f'{path} was pruned from weights trained on {made_for}, not '
          f'{dataset}: pass --dataset={made_for}')
    if data is None:
      _check_fits_registry(str(path), graph, dataset)
    # The network's bytes, as the sweep's size_bytes column: not its tag.
    size = path.stat().st_size - len(ziptags.comment(recorded))
  given = data_source.load(dataset, data_dir, data)
  split = given.test
  if keras_file:
    if data is None:
      split = _as_model_reads(path, split)
    graph, recorded = model_checks.import_model(str(path), split.images)
    size = sum(f.stat().st_size for f in path.rglob('*') if f.is_file()) if (
        path.is_dir()) else path.stat().st_size
    made = thaw(graph.metadata)
  else:
    split = folder_graph.shaped(split, graph.input_shape)
  given.check_made_on(recorded, str(path), allow_other_data)
  data_source.fits(split, graph.input_shape, int(np.prod(graph.output_shape)),
                   given.name)
  accuracy = evaluator.Evaluator(graph).accuracy(split.images, split.labels)
  return Score(str(path), given.name, accuracy,
               graph_sweep.nonzero_params(graph),
               graph_sweep.macs(graph, nonzero_only=True),
               graph_sweep.live_units(graph), size, made)


def _check_fits_registry(path: str, graph, dataset: str) -> None:
  """Refuses, before reading any data, a graph of another dataset's shapes."""
  spec = datasets.get(dataset)
  inputs, values = int(np.prod(graph.input_shape)), int(np.prod(spec.image_shape))
  if inputs != values:
    raise TfpruneError(
        f'{path} takes {inputs} inputs but {dataset} examples have {values} '
        'values: pass the --dataset it was made for')
  outputs = int(np.prod(graph.output_shape))
  if outputs != spec.num_classes:
    raise TfpruneError(
        f'{path} has {outputs} outputs but {dataset} has {spec.num_classes} '
        'classes: pass the --dataset it was made for')


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

