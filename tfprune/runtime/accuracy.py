"""Test accuracy of a graph on a dataset's images: the graph evaluator, fed right.

Datasets hand images as (n, 28, 28, 1) and the like; a dense chain's graph
(an MLP weight folder) reads each example flat. `accuracy` reshapes the
images to the graph's input when they hold the same number of values, and
scores them through `graph.evaluator` — the one evaluator (dense, CSR and
conv kernels) that the sweep, `evaluate` and the benchmark use.
"""

import numpy as np

from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph.ir import Graph


def as_input(graph: Graph, images: np.ndarray) -> np.ndarray:
  """`images` as float32 of shape (n, *graph.input_shape).

  Raises:
    TfpruneError: the images do not hold the graph's number of input values.
  """
  x = np.asarray(images, dtype=np.float32)
  values = int(np.prod(graph.input_shape))
  if x.size != len(x) * values:
    raise TfpruneError(
        f'the network takes inputs of shape {graph.input_shape} but the '
        f'images have shape {x.shape[1:]}: use weights trained on this dataset')
  return x.reshape((len(x),) + tuple(graph.input_shape))


def accuracy(graph: Graph, images: np.ndarray, labels: np.ndarray) -> float:
  """Fraction of `images` whose arg-max output equals `labels`."""
  if len(images) != len(labels) or not len(labels):
    raise TfpruneError(
        f'{len(images)} images and {len(labels)} labels: give one label per '
        'image, at least one')
  return evaluator.Evaluator(graph).accuracy(as_input(graph, images), labels)
