"""Score any saved network on a test split: a pruned `.npz` or a Keras model.

`score(path)` reads a pruned `.npz` (`graph.pruned_file`: a graph file
written by `sweep --save_pruned`, `tfprune.save` or a gradual run, or an old
dense-chain export, converted to its graph) or a Keras model file (imported
and verified by `from_keras`), and scores the graph through the graph
evaluator, as the sweep scores it. `data` (a user's `.npz`) replaces the
registry dataset. A network with several inputs or outputs is scored on a
`.npz` of `x_test_<input>` / `y_test_<output>` arrays, every output against
its labels: `accuracy` is the first output's, or `score_output`'s, as the
sweep's `accuracy` column, and the others are its `accuracy_<output>`
columns.
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
    accuracy: test accuracy of the loaded network (of output `output`).
    nonzero_params: non-zero parameters (the sweep's `nonzero_params`).
    flops: multiply-adds per example of the non-zero weights (the sweep's
      `flops` column).
    units: per weighted layer, the output channels with a non-zero weight.
    size_bytes: bytes of the file but its provenance tag (`ziptags`): the
      network's bytes, as the sweep's `size_bytes` column counts them.
    metadata: what the file recorded of how it was made.
    output: the output whose accuracy `accuracy` is.
    output_accuracies: (output name, test accuracy) of every other output,
      in output order (the sweep row's `accuracy_<output>` columns).
  """
  path: str
  dataset: str
  accuracy: float
  nonzero_params: int
  flops: int
  units: str
  size_bytes: int
  metadata: dict[str, Any]
  output: str
  output_accuracies: tuple[tuple[str, float], ...]


def score(path: str | pathlib.Path, dataset: str = 'mnist',
          data_dir: str | None = None, data: str | None = None,
          allow_other_data: bool = False,
          score_output: str | None = None) -> Score:
  """Test accuracy, non-zero parameters, widths and bytes of a saved network.

  Args:
    path: the pruned `.npz` or Keras model.
    dataset: the registry dataset to score on (without `data`).
    data_dir: its local folder, or None.
    data: a user's `.npz` instead.
    allow_other_data: score it even if its provenance names other data.
    score_output: the output whose accuracy is `accuracy` (several outputs;
      default the first).

  Raises:
    TfpruneError: the file cannot be read, has a NaN/Inf weight, was made on
      other data, does not fit the data, or has several inputs or outputs
      and `data` is None.
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

  def fits(graph):  # the model's inputs by name, its outputs' classes
    data_source.fits_model(split, *model_checks.io_shapes(graph), given.name)
  if keras_file:
    if data is None:
      split = _as_model_reads(path, split)
    graph, recorded = model_checks.import_model(str(path), split.images, fits)
    size = sum(f.stat().st_size for f in path.rglob('*') if f.is_file()) if (
        path.is_dir()) else path.stat().st_size
    made = thaw(graph.metadata)
  elif len(graph.inputs) == len(graph.outputs) == 1:
    split = folder_graph.shaped(split, graph.input_shape)
  given.check_made_on(recorded, str(path), allow_other_data)
  fits(graph)
  scored = model_checks.scored_output(graph, score_output)
  scores = evaluator.Evaluator(graph).accuracies(split.images, split.labels)
  return Score(str(path), given.name, scores[scored],
               graph_sweep.nonzero_params(graph),
               graph_sweep.macs(graph, nonzero_only=True),
               graph_sweep.live_units(graph), size, made, scored,
               tuple((o, scores[o]) for o in graph.outputs if o != scored))


def _check_fits_registry(path: str, graph, dataset: str) -> None:
  """Refuses, before reading any data, a graph of another dataset's shapes."""
  _check_one_input_and_output(path, len(graph.inputs), len(graph.outputs))
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
  model = load.load_model(path)
  _check_one_input_and_output(str(path), len(model.inputs), len(model.outputs))
  shape = model.input_shape
  if not (isinstance(shape, tuple) and all(isinstance(d, int) for d in shape[1:])):
    return split
  shape = tuple(shape[1:])
  if split.images.shape[1:] != shape and split.images[0].size == np.prod(shape):
    split = dataclasses.replace(split, images=split.images.reshape(
        len(split.images), *shape))
  return split



def _check_one_input_and_output(path: str, inputs: int, outputs: int) -> None:
  """Refuses a network of several inputs or outputs on a registry dataset."""
  if inputs > 1 or outputs > 1:
    raise TfpruneError(
        f'{path} has {inputs} input(s) and {outputs} output(s), and a registry '
        'dataset gives one of each: pass --data, an .npz of x_test_<input '
        'name> and y_test_<output name> arrays')
