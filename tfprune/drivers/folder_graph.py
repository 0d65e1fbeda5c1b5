"""A `.npy` weight folder as a graph, and the examples shaped as that graph reads them.

Every weight folder (a dense chain, a CNN, a ResNet) is pruned, scanned and
measured as the `Graph` that its `WeightFolder.graph` is; biases
off (`use_biases=False`, the original project's MLP) is a transform of that
graph (`transforms.biases.drop_biases`), not a second network type.
"""

from typing import Sequence

import dataclasses
import numpy as np

from tfprune.data import datasets
from tfprune.graph import weights
from tfprune.graph.ir import Graph
from tfprune.transforms import biases


def to_graph(folder: weights.WeightFolder, use_biases: bool = True) -> Graph:
  """The graph of a weight folder's network; `use_biases=False` drops its biases."""
  return folder.graph if use_biases else biases.drop_biases(folder.graph)


def shaped(split: datasets.Split | None,
           input_shape: Sequence[int]) -> datasets.Split | None:
  """`split` with each example flattened when the graph reads flat vectors of its size.

  A dense chain's folder reads (784,) vectors; MNIST's examples are
  (28, 28, 1) images of as many values. Any other split is returned as it
  is (and `data.source.fits` says what does not fit).
  """
  if split is None or len(input_shape) != 1:
    return split
  shape = split.images.shape[1:]
  if tuple(shape) == tuple(input_shape) or int(np.prod(shape)) != input_shape[0]:
    return split
  return dataclasses.replace(
      split, images=split.images.reshape(len(split.images), input_shape[0]))
