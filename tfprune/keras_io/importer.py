"""`from_keras`: a user's Keras model (object or file) as a verified `Graph`."""

import dataclasses
import pathlib

import numpy as np

from tfprune.graph.ir import Graph
from tfprune.keras_io import load
from tfprune.keras_io import trace
from tfprune.keras_io import verify


def from_keras(model_or_path, data: np.ndarray | None = None) -> Graph:
  """Imports a tf_keras or Keras 3 model exactly, or refuses it.

  Args:
    model_or_path: a functional or Sequential Keras model, or the path of a
      `.keras`, `.h5` or SavedModel folder.
    data: optional examples (shaped like the model's input) to verify on,
      besides random inputs.

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
  verify.verify(model, traced, data)
  graph = traced.graph
  if source is not None:
    graph = dataclasses.replace(graph, metadata={**graph.metadata,
                                                 'source': source})
  return graph
