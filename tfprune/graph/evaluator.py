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


def run_nodes(graph: Graph, x: tf.Tensor,
              params: Mapping[str, Mapping[str, tf.Tensor]],
              keep: Sequence[str] = (),
              csr: Mapping[str, tf.Tensor] | None = None
              ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
  """Computes `graph` on batch `x` with `params` (by node, then by name).

  Args:
    graph: the graph.
    x: the input batch.
    params: the parameters by node, then by name.
    keep: nodes whose outputs to return too.
    csr: the Dense nodes computed by the CSR matmul, their transposed
      kernels as `sparse_kernels.csr_operands` (their `params` need no
      kernel).

  Returns:
    The output, and the outputs of the nodes named in `keep`.
  """
  values = {graph.input.name: x}
  kept = {}
  last_use = {}
  for i, node in enumerate(graph.nodes):
    for source in node.inputs:
      last_use[source] = i
  for i, node in enumerate(graph.nodes[1:], start=1):
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
      if last_use.get(source) == i and source != graph.output:
        values.pop(source, None)
  return values[graph.output], kept


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
          tf.TensorSpec((None, *graph.input_shape), tf.float32),
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

  def predict(self, x: np.ndarray, graph: Graph | None = None,
              batch_size: int | None = None) -> np.ndarray:
    """The network's outputs on `x` (batched), as a numpy array.

    Args:
      x: the inputs.
      graph: the graph to compute (default: the evaluator's).
      batch_size: examples per call (default: `batch_size_for(graph)`).
    """
    graph = self.graph if graph is None else graph
    self._check(graph)
    batch_size = batch_size or batch_size_for(graph)
    x = np.asarray(x, dtype=np.float32)
    if x.shape[1:] != graph.input_shape:
      raise TfpruneError(
          f'inputs of shape {x.shape[1:]} but the network takes '
          f'{graph.input_shape}: reshape the data to the model\'s input')
    kinds, params, csr = self._operands(
        graph, rule_rows(graph, len(x), batch_size))
    fn = self._fn(kinds)
    outs = [fn(tf.constant(x[i:i + batch_size]), params, csr).numpy()
            for i in range(0, len(x), batch_size)]
    return np.concatenate(outs) if outs else np.zeros(
        (0, *graph.output_shape), np.float32)

  def accuracy(self, x: np.ndarray, labels: np.ndarray,
               graph: Graph | None = None,
               batch_size: int | None = None) -> float:
    """Top-1 accuracy against integer `labels`."""
    outputs = self.predict(x, graph, batch_size)
    return float(np.mean(np.argmax(outputs.reshape(len(x), -1), axis=1)
                         == np.asarray(labels).reshape(-1)))


def predict(graph: Graph, x: np.ndarray, batch_size: int | None = None,
            allow_sparse: bool = True) -> np.ndarray:
  """`graph`'s outputs on `x`."""
  return Evaluator(graph, allow_sparse).predict(x, batch_size=batch_size)


def node_outputs(graph: Graph, x: np.ndarray,
                 names: Sequence[str]) -> dict[str, np.ndarray]:
  """The outputs of the nodes `names` on batch `x` (eagerly, for checking)."""
  params = {n: {k: tf.constant(v) for k, v in p.items()}
            for n, p in _param_tensors(graph).items()}
  _, kept = run_nodes(graph, tf.constant(np.asarray(x, np.float32)), params,
                      keep=tuple(names))
  return {k: v.numpy() for k, v in kept.items()}
