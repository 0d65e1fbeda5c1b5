"""Calibration examples as a graph reads them, and the part of a graph before a node.

The data-aware criteria (Wanda, OBS, their N:M modes) and bias correction
push calibration examples through a graph, node after node. `check` checks
the examples once and gives one array per graph input (in the order of
`graph.inputs`), each shaped as that input: one array for a one-input graph,
or, for several inputs, a dict of arrays by input name (or a list in input
order), each example flattened or not. `chunks` slices every input's array
alike, and `upto` is the part of the graph that computes one node's value
from the graph's inputs, so its forward pass skips every other branch.
"""

from typing import Iterator, Mapping, Sequence

import numpy as np

from tfprune.errors import TfpruneError
from tfprune.graph.ir import Graph


def _by_input(graph: Graph, calibration) -> list:
  """`calibration` as one value per input of `graph`, in input order."""
  names = [n.name for n in graph.inputs]
  if isinstance(calibration, Mapping):
    missing = [n for n in names if n not in calibration]
    extra = sorted(set(calibration) - set(names))
    if missing or extra:
      raise TfpruneError(
          f'calibration inputs {sorted(calibration)} given but the network '
          f'reads {names} (missing {missing}, extra {extra}): give one array '
          'per input name')
    return [calibration[n] for n in names]
  if isinstance(calibration, (list, tuple)):
    if len(calibration) != len(names):
      raise TfpruneError(
          f'{len(calibration)} calibration arrays given but the network reads '
          f'{len(names)} ({", ".join(names)}): give one per input')
    return list(calibration)
  if len(names) != 1:
    raise TfpruneError(
        f'one calibration array given but the network reads {len(names)} '
        f'inputs ({", ".join(names)}): give a dict of arrays by input name')
  return [calibration]


def check(graph: Graph, calibration, dtype=None) -> list[np.ndarray]:
  """The calibration examples as one checked array per input of `graph`.

  Args:
    graph: the graph.
    calibration: (n, ...) examples (a one-input graph), or a dict of them by
      input name, or a list in the order of `graph.inputs`.
    dtype: the arrays' dtype (None: as given).

  Returns:
    One array (n, *input shape) per input, in the order of `graph.inputs`.

  Raises:
    TfpruneError: no examples, non-numeric or non-finite values, examples
      of another size than an input's, a missing or extra input, or inputs
      of different lengths.
  """
  xs = []
  several = len(graph.inputs) > 1
  for node, shape, value in zip(graph.inputs, graph.input_shapes,
                                _by_input(graph, calibration)):
    at = f' at input {node.name}' if several else ''
    x = np.asarray(value)
    if x.ndim < 1 or not len(x):
      raise TfpruneError(
          f'the calibration data{at} is empty: pass some training examples, '
          'e.g. 2048 of them')
    if not (np.issubdtype(x.dtype, np.floating)
            or np.issubdtype(x.dtype, np.integer)):
      raise TfpruneError(f'the calibration data{at} holds {x.dtype} values: '
                         'pass float examples')
    size = int(np.prod(shape))
    if x[0].size != size:
      raise TfpruneError(
          f'the network takes inputs of shape {shape}{at} but the calibration '
          f'examples have {x[0].size} values: calibrate on the data the '
          'network was trained on')
    if not np.all(np.isfinite(x)):
      raise TfpruneError(f'the calibration data{at} holds NaN/Inf values: '
                         'pass finite training examples')
    x = x.reshape(len(x), *shape)
    xs.append(x if dtype is None else x.astype(dtype))
  if len({len(x) for x in xs}) > 1:
    raise TfpruneError(
        f'calibration arrays of {[len(x) for x in xs]} examples: give the same '
        'examples to every input')
  return xs


def chunks(xs: Sequence[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
  """The arrays `xs` (one per input) a chunk of `size` examples at a time."""
  for start in range(0, len(xs[0]), size):
    yield [x[start:start + size] for x in xs]


def upto(graph: Graph, name: str) -> Graph:
  """The part of `graph` computing node `name` from the graph's inputs.

  Its nodes are the graph's input nodes and the nodes `name` depends on, in
  graph order; its one output is `name`.
  """
  needed, pending = set(), [name]
  while pending:
    node = graph.node(pending.pop())
    if node.name not in needed:
      needed.add(node.name)
      pending.extend(node.inputs)
  inputs = len(graph.inputs)
  return Graph(graph.nodes[:inputs] + tuple(
      n for n in graph.nodes[inputs:] if n.name in needed), name,
               graph.input_shapes)
