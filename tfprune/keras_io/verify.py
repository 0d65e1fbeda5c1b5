"""Checks a traced graph against its Keras model, layer by layer.

The evaluator computes every node on a batch (random inputs of each of the
model's input shapes, plus the user's own examples when given) and each node that
stands for a Keras layer is compared with that layer's output in the model
itself; a layer of a nested model is compared inside that model, run on
what Keras computed for its inputs, and each nested model's output also as
the model calling it sees it (which checks how the call is wired). The
first layer whose output differs is named in a one-line refusal: a graph
that does not compute the user's network is never used.
"""

import numpy as np

from tfprune import keras_compat
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.keras_io.trace import Traced

# Layer outputs may differ by float32 round-off (a fused batch norm, another
# summation order): |ours - keras| <= RTOL * |keras| + ATOL * max|keras|.
# The network's output is held to the same bound: a softmax turns a logit's
# round-off d into p(1 - p) d, and logits of a trained network reach tens, so
# its probabilities legitimately differ by a few 1e-6 with another summation
# order (a fine-tuned Fashion CNN: 5.7e-6), while a wrong layer differs by far
# more.
RTOL = 1e-5
ATOL = 1e-5
DEFAULT_EXAMPLES = 16


def probe_inputs(input_shape, count: int = DEFAULT_EXAMPLES,
                 seed: int = 0, vocabulary: int | None = None) -> np.ndarray:
  """Random N(0, 1) inputs of the model's per-example shape, or token ids
  in [0, vocabulary) for a model that embeds its input."""
  rng = np.random.default_rng(seed)
  if vocabulary:
    return rng.integers(0, vocabulary, (count, *input_shape)).astype(np.float32)
  return rng.standard_normal((count, *input_shape)).astype(np.float32)


def vocabulary_of(graph, name: str | None = None) -> int | None:
  """The smallest table of the embeddings reading input `name` (default:
  the one input), if any."""
  name = graph.input.name if name is None else name
  return min((n.params['kernel'].shape[0] for n in graph.consumers(name)
              if n.op == 'embedding'), default=None)


def probes(graph, count: int = DEFAULT_EXAMPLES, seed: int = 0
           ) -> list[np.ndarray]:
  """`probe_inputs` for each input of `graph`, in order (seeds `seed`,
  `seed` + 1, ...)."""
  return [probe_inputs(shape, count, seed + i, vocabulary_of(graph, node.name))
          for i, (node, shape) in enumerate(zip(graph.inputs, graph.input_shapes))]


def _run(K, model, tensors: list, values: list) -> list[np.ndarray]:
  """`tensors` of `model`'s graph, computed from its inputs' `values`."""
  inputs = list(model.inputs)
  distinct = []
  for t in tensors:
    if all(t is not d for d in distinct + inputs):
      distinct.append(t)
  computed = []
  if distinct:
    probe = K.Model(inputs if len(inputs) > 1 else inputs[0], distinct)
    outs = probe(values if len(inputs) > 1 else values[0], training=False)
    computed = [np.asarray(o) for o in (outs if isinstance(outs, (list, tuple))
                                        else [outs])]
  known = list(zip(inputs, values)) + list(zip(distinct, computed))
  return [next(np.asarray(v) for t2, v in known if t2 is t) for t in tensors]


def keras_outputs(traced: Traced, wanted, x: list[np.ndarray]
                  ) -> list[np.ndarray]:
  """Keras's values, in inference mode, of `wanted`: (scope, tensor) pairs,
  from `x`, one array per model input.

  Each model (the traced one, then each nested one) is run on its own graph:
  a nested model's inputs are the values Keras computed, in the model it is
  called in, for the tensors it is called on.
  """
  K = keras_compat.keras_module(traced.framework)
  scopes = traced.scopes
  by_scope: dict[int, list[int]] = {}
  for i, (scope, _) in enumerate(wanted):
    by_scope.setdefault(scope, []).append(i)
  children: dict[int, list[int]] = {}
  for i, scope in enumerate(scopes):
    if scope.parent is not None:
      children.setdefault(scope.parent, []).append(i)
  values, inputs = [None] * len(wanted), {0: list(x)}
  for i, scope in enumerate(scopes):  # a nested model after its parent
    own = by_scope.get(i, [])
    feeds = [t for c in children.get(i, []) for t in scopes[c].feeds]
    outs = _run(K, scope.model, [wanted[j][1] for j in own] + feeds, inputs[i])
    for j, out in zip(own, outs):
      values[j] = out
    rest = iter(outs[len(own):])
    for c in children.get(i, []):
      inputs[c] = [next(rest) for _ in scopes[c].feeds]
  return values


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


def verify(model, traced: Traced, data=None) -> None:
  """Refuses `traced` unless it computes `model`'s outputs at every layer.

  Args:
    model: the Keras model that was traced.
    traced: its trace.
    data: optional user examples, shaped like the model's input (for
      several inputs, a list or dict as `evaluator.input_arrays` takes).

  Raises:
    TfpruneError: naming the first layer (in graph order) whose output
      differs from Keras's, or the output when only it differs.
  """
  graph = traced.graph
  x = probes(graph)
  if data is not None and len(data):
    if len(graph.inputs) == 1 and not isinstance(data, (list, tuple, dict)) and (
        tuple(np.shape(data)[1:]) != graph.input_shape):
      raise TfpruneError(
          f'examples of shape {tuple(np.shape(data)[1:])} but the model takes '
          f'{graph.input_shape}: store the inputs as the model reads them')
    given = evaluator.input_arrays(graph, data)
    x = [np.concatenate([a, g[:DEFAULT_EXAMPLES]]) for a, g in zip(x, given)]
  order = {n.name: i for i, n in enumerate(graph.nodes)}
  # (node, scope, tensor, nested model): every layer in its own model, then
  # each nested model's output as its caller sees it; in graph order.
  checks = sorted([(name, traced.scope_of.get(name, 0), tensor, None)
                   for name, tensor in traced.tensors.items()]
                  + list(traced.calls), key=lambda c: order[c[0]])
  names = list(dict.fromkeys(c[0] for c in checks))
  theirs = keras_outputs(traced, [(c[1], c[2]) for c in checks], x)
  ours = evaluator.node_outputs(graph, x, names)
  for (name, _, _, nested), expected in zip(checks, theirs):
    problem = first_mismatch(ours[name], expected, RTOL, ATOL)
    if problem:
      node = graph.node(name)
      what = (f'the output of nested model {nested} (layer {name}, {node.op})'
              if nested else f'layer {name} ({node.op})')
      raise TfpruneError(
          f'model {model.name}: the imported graph does not compute {what} '
          f'as Keras does: {problem}; refusing to use it')
