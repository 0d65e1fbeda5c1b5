"""`from_keras`: a user's Keras model (object or file) as a verified `Graph`."""

import dataclasses
import pathlib
from typing import Callable

from tfprune.graph.ir import Graph
from tfprune.keras_io import load
from tfprune.keras_io import trace
from tfprune.keras_io import verify


def from_keras(model_or_path, data=None,
               check_data: Callable[[Graph], None] | None = None) -> Graph:
  """Imports a tf_keras or Keras 3 model exactly, or refuses it.

  Args:
    model_or_path: a functional or Sequential Keras model, or the path of a
      `.keras`, `.h5` or SavedModel folder.
    data: optional examples (shaped like the model's input; for several
      inputs a list or a dict by input name) to verify on, besides random
      inputs.
    check_data: called with the traced graph before it is verified on
      `data`, to refuse data that does not fit the model in the data's terms.

  Returns:
    The model's graph, checked layer by layer against the model.

  Raises:
    TfpruneError: one line naming what cannot be read, or the first layer
      whose output the graph does not reproduce.
  """
  model = model_or_path
  source = None
  if isinstance(model_or_path, (str, pathlib.Path)):
    source = str(model_or_path)
    model = load.load_model(model_or_path)
  traced = trace.trace(model)
  if check_data is not None:
    check_data(traced.graph)
  verify.verify(model, traced, data)
  graph = traced.graph
  if source is not None:
    graph = dataclasses.replace(graph, metadata={**graph.metadata,
                                                 'source': source})
  return graph
