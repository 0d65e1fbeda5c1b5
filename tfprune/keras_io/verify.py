"""Checks a traced graph against its Keras model, layer by layer.

The evaluator computes every node on a batch (random inputs of the model's
input shape, plus the user's own examples when given) and each node that
stands for a Keras layer is compared with that layer's output in the model
itself. The first layer whose output differs is named in a one-line refusal:
a graph that does not compute the user's network is never used.
"""

import numpy as np

from tfprune import keras_compat
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.keras_io.trace import Traced

# Layer outputs may differ by float32 round-off (a fused batch norm, another
# summation order): |ours - keras| <= RTOL * |keras| + ATOL * max|keras|.
RTOL = 1e-5
ATOL = 1e-5
# The network's output (probabilities, logits) is held to rtol 1e-5.
OUTPUT_ATOL = 1e-6
DEFAULT_EXAMPLES = 16


def probe_inputs(input_shape, count: int = DEFAULT_EXAMPLES,
                 seed: int = 0) -> np.ndarray:
  """Random N(0, 1) inputs of the model's per-example shape."""
  rng = np.random.default_rng(seed)
  return rng.standard_normal((count, *input_shape)).astype(np.float32)


def keras_outputs(model, traced: Traced, names, x: np.ndarray) -> list[np.ndarray]:
  """The Keras model's outputs at the layers of `names`, in inference mode."""
  probe = keras_compat.keras_module(traced.framework).Model(
      model.inputs[0], [traced.tensors[n] for n in names])
  outs = probe(x, training=False)
  outs = outs if isinstance(outs, (list, tuple)) else [outs]
  return [np.asarray(o) for o in outs]


def first_mismatch(ours: np.ndarray, theirs: np.ndarray, rtol: float,
                   atol: float) -> str | None:
  """A description of how `ours` differs from `theirs`, or None if they agree."""
  if ours.shape != theirs.shape:
    return f'shape {ours.shape[1:]} instead of {theirs.shape[1:]}'
  scale = float(np.max(np.abs(theirs))) if theirs.size else 0.0
  bad = ~np.isclose(ours, theirs, rtol=rtol, atol=atol * max(scale, 1e-30))
  both_nan = np.isnan(ours) & np.isnan(theirs)
  bad &= ~both_nan
  if not bad.any():
    return None
  worst = float(np.max(np.abs(np.where(bad, ours - theirs, 0))))
  return (f'{int(bad.sum())} of {bad.size} values differ, by up to {worst:.3g} '
          f'(values up to {scale:.3g})')


def verify(model, traced: Traced, data: np.ndarray | None = None) -> None:
  """Refuses `traced` unless it computes `model`'s outputs at every layer.

  Args:
    model: the Keras model that was traced.
    traced: its trace.
    data: optional user examples, shaped like the model's input.

  Raises:
    TfpruneError: naming the first layer (in graph order) whose output
      differs from Keras's, or the output when only it differs.
  """
  graph = traced.graph
  x = probe_inputs(graph.input_shape)
  if data is not None and len(data):
    if tuple(np.shape(data)[1:]) != graph.input_shape:
      raise TfpruneError(
          f'examples of shape {tuple(np.shape(data)[1:])} but the model takes '
          f'{graph.input_shape}: store the inputs as the model reads them')
    x = np.concatenate([x, np.asarray(data[:DEFAULT_EXAMPLES], np.float32)])
  names = [n.name for n in graph.nodes if n.name in traced.tensors]
  if graph.output not in names:
    names.append(graph.output)
  theirs = keras_outputs(model, traced, names, x)
  ours = evaluator.node_outputs(graph, x, names)
  for name, expected in zip(names, theirs):
    last = name == graph.output
    problem = first_mismatch(ours[name], expected, RTOL,
                             OUTPUT_ATOL if last else ATOL)
    if problem:
      node = graph.node(name)
      raise TfpruneError(
          f'model {model.name}: the imported graph does not compute layer '
          f'{name} ({node.op}) as Keras does: {problem}; refusing to use it')
