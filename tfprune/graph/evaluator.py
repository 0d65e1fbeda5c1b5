"""Computes a `Graph` with TensorFlow ops: the pure-tensor evaluator for any network.

Each node is computed by its op definition's `compute` (`graph.ops`), with the same
TensorFlow kernels Keras uses, so an imported graph reproduces its Keras
model to float32 round-off (checked on every import by `keras_io.verify`).

`Evaluator(graph)` traces one `tf.function` whose arguments are the input
batch and the graph's parameters, so every graph with the same structure and
parameter shapes (every masked variant of a network in a sweep) runs through
the same trace without retracing. Dense nodes on 2-D inputs take the
dense/CSR rule (`sparse_kernels.kernel_kind`) at the rows of one call
(`rule_rows`): the graph's entry, calibrated at `GRAPH_CHUNK_ROWS` = 128
rows in this evaluator's layout (0 on the README's machine: graphs run
dense), for calls of at least 128 examples; dense for smaller calls (one
example), which no entry calibrates. A sparse enough kernel is computed by TensorFlow's CSR matmul,
so the evaluator keeps one trace per tuple of kernel kinds (a few per
structure at most: each large Dense node is dense or CSR), and builds the
CSR operands once per `predict`, not once per chunk (and not again for the
same graph and kinds).
`Evaluator(graph, allow_sparse=False)` computes every Dense node densely,
with the op Keras uses.

A network with several inputs takes a list of arrays (in the order of
`graph.inputs`) or a dict by input name (`input_arrays`); one with several
outputs gives a list of arrays, in the order of `graph.outputs`, as Keras's
`predict` does.
"""

from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import ops
from tfprune.graph import sparse_kernels
from tfprune.graph.ir import Graph

DEFAULT_BATCH_SIZE = 500
# Graphs with convolutions run in smaller chunks: a ResNet-18 (width 0.25) on
# 28x28 images took 2x as long per example in chunks of 500 as in chunks of
# 128 on the 2-core VM, its activations no longer fitting in cache. Each
# example's outputs are bitwise the same whatever the chunk (checked on
# LeNet-5, the Fashion CNN and ResNet-18), so results do not depend on it.
CONV_BATCH_SIZE = sparse_kernels.GRAPH_CHUNK_ROWS
_CONV_OPS = ('conv2d', 'depthwise_conv2d')


def batch_size_for(graph: Graph) -> int:
  """The evaluator's chunk size for `graph`: smaller for conv graphs."""
  if any(node.op in _CONV_OPS for node in graph.nodes):
    return CONV_BATCH_SIZE
  return DEFAULT_BATCH_SIZE


def rule_rows(graph: Graph, n: int | None = None,
              batch_size: int | None = None) -> int:
  """The rows per call at which the kernel rule is read for `graph`.

  The examples of one call (`n` examples in chunks of `batch_size`, default
  a full chunk of `batch_size_for(graph)`), at most `GRAPH_CHUNK_ROWS`: the
  graph path is calibrated there only (larger table entries belong to the
  MLP plan's layout).
  """
  rows = batch_size or batch_size_for(graph)
  if n is not None:
    rows = min(rows, n)
  return min(rows, sparse_kernels.GRAPH_CHUNK_ROWS)


def input_arrays(graph: Graph, x) -> list[np.ndarray]:
  """`x` as one float32 array per input of `graph`, each shape checked.

  Args:
    graph: the graph.
    x: an array (a one-input graph), a list of arrays in the order of
      `graph.inputs`, or a dict of arrays by input name.

  Raises:
    TfpruneError: a missing or extra input, a shape other than the input's,
      or inputs of different lengths.
  """
  names = [n.name for n in graph.inputs]
  if isinstance(x, Mapping):
    missing = [n for n in names if n not in x]
    extra = sorted(set(x) - set(names))
    if missing or extra:
      raise TfpruneError(
          f'inputs {sorted(x)} given but the network reads {names} (missing '
          f'{missing}, extra {extra}): give one array per input name')
    x = [x[n] for n in names]
  elif isinstance(x, (list, tuple)):
    if len(x) != len(names):
      raise TfpruneError(f'{len(x)} input arrays given but the network reads '
                         f'{len(names)} ({", ".join(names)}): give one per input')
  else:
    x = [x] if len(names) == 1 else x
    if len(names) != 1:
      raise TfpruneError(f'one input array given but the network reads '
                         f'{len(names)} ({", ".join(names)}): give a dict by '
                         'input name')
  arrays = [np.asarray(a, dtype=np.float32) for a in x]
  for name, array, shape in zip(names, arrays, graph.input_shapes):
    if array.shape[1:] != shape:
      raise TfpruneError(
          f'inputs of shape {array.shape[1:]} but the network takes {shape}'
          f'{"" if len(names) == 1 else " at input " + name}: reshape the data '
          'to the model\'s input')
  if len({len(a) for a in arrays}) > 1:
    raise TfpruneError(f'input arrays of {[len(a) for a in arrays]} examples: '
                       'give the same examples to every input')
  return arrays


def run_nodes(graph: Graph, x,
              params: Mapping[str, Mapping[str, tf.Tensor]],
              keep: Sequence[str] = (),
              csr: Mapping[str, tf.Tensor] | None = None
              ) -> tuple[tuple[tf.Tensor, ...], dict[str, tf.Tensor]]:
  """Computes `graph` on batch `x` with `params` (by node, then by name).

  Args:
    graph: the graph.
    x: the input batch: a tensor, or one tensor per input node.
    params: the parameters by node, then by name.
    keep: nodes whose outputs to return too.
    csr: the Dense nodes computed by the CSR matmul, their transposed
      kernels as `sparse_kernels.csr_operands` (their `params` need no
      kernel).

  Returns:
    The outputs (one per `graph.outputs`), and the outputs of the nodes
    named in `keep`.
  """
  xs = x if isinstance(x, (list, tuple)) else [x]
  values = {node.name: value for node, value in zip(graph.inputs, xs)}
  kept = {}
  last_use = {}
  for i, node in enumerate(graph.nodes):
    for source in node.inputs:
      last_use[source] = i
  first = len(graph.inputs)
  for i, node in enumerate(graph.nodes[first:], start=first):
    inputs = [values[s] for s in node.inputs]
    if csr and node.name in csr:
      out = ops.activations.finish(node, params[node.name], sparse_kernels.csr_dense(
          inputs[0], csr[node.name], graph.shapes[node.name][-1]))
    else:
      out = ops.get(node.op).compute(node, params.get(node.name, {}), inputs,
                                     graph.shapes[node.name])
    values[node.name] = out
    if node.name in keep:
      kept[node.name] = out
    for source in node.inputs:  # free what no later node reads
      if last_use.get(source) == i and source not in graph.outputs:
        values.pop(source, None)
  return tuple(values[o] for o in graph.outputs), kept


def _param_tensors(graph: Graph) -> dict[str, dict[str, np.ndarray]]:
  return {n.name: dict(n.params) for n in graph.nodes if n.params}


class Evaluator:
  """Runs every graph shaped like `graph` through a few traced `tf.function`s.

  `predict(x, other)` computes `other` (default: `graph`), which must have
  the same nodes and parameter shapes, e.g. a masked copy, with the kernels
  `kinds(other)` names.
  """

  def __init__(self, graph: Graph, allow_sparse: bool = True):
    self.graph = graph
    self.allow_sparse = allow_sparse
    self._fns = {}
    self._last = None

  def kinds(self, graph: Graph | None = None,
            rows: int | None = None) -> tuple[str, ...]:
    """The kernel of each weighted node (`sparse_kernels.graph_kinds`) for
    calls of `rows` examples (default: a full chunk, `rule_rows(graph)`)."""
    graph = self.graph if graph is None else graph
    rows = rule_rows(graph) if rows is None else rows
    return sparse_kernels.graph_kinds(graph, rows, self.allow_sparse)

  def tracing_count(self) -> int:
    """Traces made so far: one per tuple of kinds met, if none retraced."""
    return sum(f.experimental_get_tracing_count() for f in self._fns.values())

  def _fn(self, kinds: tuple[str, ...]):
    """The traced function for one tuple of kernel kinds (made once)."""
    if kinds not in self._fns:
      graph = self.graph
      csr = sorted(n.name for n, kind in zip(graph.weighted(), kinds)
                   if kind == sparse_kernels.CSR)
      signature = (
          [tf.TensorSpec((None, *shape), tf.float32)
           for shape in graph.input_shapes],
          {name: {k: tf.TensorSpec(v.shape, tf.float32) for k, v in p.items()
                  if not (k == 'kernel' and name in csr)}
           for name, p in _param_tensors(graph).items()},
          {name: sparse_kernels.operand_spec() for name in csr})
      self._fns[kinds] = tf.function(
          lambda x, p, m: run_nodes(graph, x, p, csr=m)[0],
          input_signature=signature, autograph=False)
    return self._fns[kinds]

  def _operands(self, graph: Graph, rows: int):
    """`graph`'s kinds for calls of `rows`, parameter tensors and CSR operands.

    Made once per `predict`, not once per chunk, and kept for the last graph
    (graphs are immutable), by rows and by kinds, so repeated calls on one
    graph (a benchmark's, at batch 1 and 256) do not rebuild them.
    """
    if self._last is None or self._last[0] is not graph:
      self._last = (graph, {}, {})
    _, kinds_by_rows, made = self._last
    if rows not in kinds_by_rows:
      kinds_by_rows[rows] = self.kinds(graph, rows)
    kinds = kinds_by_rows[rows]
    if kinds not in made:
      csr = sparse_kernels.csr_operands(graph, kinds)
      made[kinds] = ({name: {k: tf.constant(v) for k, v in p.items()
                             if not (k == 'kernel' and name in csr)}
                      for name, p in _param_tensors(graph).items()}, csr)
    return (kinds, *made[kinds])

  def _check(self, other: Graph) -> None:
    if other is self.graph:
      return
    same = len(other.nodes) == len(self.graph.nodes) and all(
        a.name == b.name and a.op == b.op and a.inputs == b.inputs
        and {k: v.shape for k, v in a.params.items()}
        == {k: v.shape for k, v in b.params.items()}
        for a, b in zip(other.nodes, self.graph.nodes))
    if not same:
      raise TfpruneError('this graph differs in structure or shapes from the '
                         "evaluator's: make an Evaluator for it")

  def predict_outputs(self, x, graph: Graph | None = None,
                      batch_size: int | None = None) -> dict[str, np.ndarray]:
    """The network's outputs on `x` (batched), by output name.

    Args:
      x: the inputs (`input_arrays`).
      graph: the graph to compute (default: the evaluator's).
      batch_size: examples per call (default: `batch_size_for(graph)`).
    """
    graph = self.graph if graph is None else graph
    self._check(graph)
    batch_size = batch_size or batch_size_for(graph)
    xs = input_arrays(graph, x)
    n = len(xs[0])
    kinds, params, csr = self._operands(
        graph, rule_rows(graph, n, batch_size))
    fn = self._fn(kinds)
    chunks = [fn([tf.constant(a[i:i + batch_size]) for a in xs], params, csr)
              for i in range(0, n, batch_size)]
    return {name: np.concatenate([c[j].numpy() for c in chunks]) if chunks
            else np.zeros((0, *graph.shapes[name]), np.float32)
            for j, name in enumerate(graph.outputs)}

  def predict(self, x, graph: Graph | None = None,
              batch_size: int | None = None):
    """The network's output on `x` (batched), as a numpy array; a list
    of arrays (in the order of `graph.outputs`) for several outputs."""
    outputs = list(self.predict_outputs(x, graph, batch_size).values())
    return outputs[0] if len(outputs) == 1 else outputs

  def accuracies(self, x, labels, graph: Graph | None = None,
                 batch_size: int | None = None) -> dict[str, float]:
    """Top-1 accuracy of each output against its integer labels.

    Args:
      x: the inputs (`input_arrays`).
      labels: an array (one output), or a dict of arrays by output name
        (every output).
    """
    graph = self.graph if graph is None else graph
    if not isinstance(labels, Mapping):
      labels = {graph.output: labels}
    if set(labels) != set(graph.outputs):
      raise TfpruneError(
          f'labels for {sorted(labels)} but the network\'s outputs are '
          f'{list(graph.outputs)}: give one label array per output')
    outputs = self.predict_outputs(x, graph, batch_size)
    return {name: float(np.mean(
        np.argmax(out.reshape(len(out), -1), axis=1)
        == np.asarray(labels[name]).reshape(-1)))
            for name, out in outputs.items()}

  def accuracy(self, x, labels: np.ndarray,
               graph: Graph | None = None,
               batch_size: int | None = None) -> float:
    """Top-1 accuracy of the one output against integer `labels`."""
    return self.accuracies(x, labels, graph, batch_size)[
        (self.graph if graph is None else graph).output]


def predict(graph: Graph, x, batch_size: int | None = None,
            allow_sparse: bool = True):
  """`graph`'s outputs on `x` (`Evaluator.predict`)."""
  return Evaluator(graph, allow_sparse).predict(x, batch_size=batch_size)


def node_outputs(graph: Graph, x,
                 names: Sequence[str]) -> dict[str, np.ndarray]:
  """The outputs of the nodes `names` on batch `x` (eagerly, for checking)."""
  params = {n: {k: tf.constant(v) for k, v in p.items()}
            for n, p in _param_tensors(graph).items()}
  _, kept = run_nodes(graph, [tf.constant(a) for a in input_arrays(graph, x)],
                      params, keep=tuple(names))
  return {k: v.numpy() for k, v in kept.items()}
