"""The checks of a network a tool is given, beside those of its data (`data.checks`).

A user's Keras model is imported and verified by `keras_io`; here its
weights must also be finite (a NaN weight would score as chance at every
level), and its provenance tag (`ziptags`, written by `--save_keras`) is
read so the tool can check it against the data (`data.provenance`).
"""

import pathlib
import warnings

import numpy as np

from tfprune import ziptags
from tfprune.data import checks
from tfprune.errors import TfpruneError
from tfprune.graph.ir import Graph


def finite(graph: Graph, source: str) -> Graph:
  """`graph` if every parameter is finite (`checks.finite_params`)."""
  checks.finite_params(((f'{node.name}/{name}', value) for node in graph.nodes
                        for name, value in node.params.items()), source)
  return graph


def io_shapes(graph: Graph) -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
  """The input shapes by input name and the classes by output name of
  `graph` (what `data.source.fits_model` checks data against)."""
  return ({n.name: s for n, s in zip(graph.inputs, graph.input_shapes)},
          {o: int(np.prod(graph.shapes[o])) for o in graph.outputs})


def scored_output(graph: Graph, name: str | None) -> str:
  """The output whose accuracy a tool reports: `name`, default the first.

  Raises:
    TfpruneError: `name` is not an output of `graph` (the outputs are listed).
  """
  if name is None:
    return graph.outputs[0]
  if name not in graph.outputs:
    raise TfpruneError(f'--score_output={name} is not an output of the model: '
                       f'choose from {", ".join(graph.outputs)}')
  return name


def import_model(model_file: str, x, check_data=None
                 ) -> tuple[Graph, dict | None]:
  """The checked graph of a Keras model file and its provenance tag (or None).

  The import is verified against Keras on the first examples of `x` (an
  array, or a dict by input name), after `check_data(graph)` if given.

  Raises:
    TfpruneError: the model cannot be imported or has a NaN/Inf weight.
  """
  # Imported here: it loads TensorFlow and Keras.
  from tfprune.keras_io import importer  # pylint: disable=import-outside-toplevel
  with warnings.catch_warnings():
    # A NaN weight makes the import's verification warn about NaN
    # tolerances; it is refused just below, naming the weight.
    warnings.simplefilter('ignore', RuntimeWarning)
    head = ({k: v[:16] for k, v in x.items()} if isinstance(x, dict)
            else x[:16])
    graph = importer.from_keras(model_file, data=head, check_data=check_data)
  finite(graph, model_file)
  path = pathlib.Path(model_file)
  return graph, ziptags.read(path) if path.is_file() else None
