"""The sweep on any imported graph: prune at each level, measure like `sweep`.

Used by `sweep.run` for `--model_file` models. Every pruned variant of the
graph has the dense graph's shapes, so one traced `graph.evaluator.Evaluator`
scores them all. The rows have the sweep's columns: the costs are counted on
the graph that `--save_pruned`/`--save_keras` write (`saved_graph`: compacted
where the method removes channels), multiply-adds of dense and conv kernels
at every output position; the size is that graph file's (`graph.io`, sparse
where smaller), `units` is
each weighted node's count of output channels that still have a non-zero
weight, and `kernels` the evaluator's kernel of each weighted node in graph
order (`graph.sparse_kernels`: `conv`, `depthwise`, and `dense` or `csr` by
the MLP's rule), e.g. `conv+conv+csr+dense`. `unit` removes coupled
channels (`transforms.channel_pruning`): residual adds and concatenations
prune their inputs together, so no layer is refused.
"""

import dataclasses
import functools
import time
from typing import Callable, Iterable, Sequence

import numpy as np

from tfprune.criteria import importances
from tfprune.criteria import protocol
from tfprune.drivers import allocated
from tfprune.graph import io as graph_io
from tfprune.graph import ops
from tfprune.graph.evaluator import Evaluator
from tfprune.graph.ir import Graph
from tfprune.runtime import executors
from tfprune.transforms import channel_pruning
from tfprune.transforms import graph_compaction


def positions(graph: Graph, name: str) -> int:
  """Where node `name`'s kernel is applied per example (output positions)."""
  shape = graph.shapes[name]
  return int(np.prod(shape[:-1])) if len(shape) > 1 else 1


def macs(graph: Graph, nonzero_only: bool) -> int:
  """Multiply-adds per example of the weighted nodes (non-zero weights only)."""
  total = 0
  for node in graph.weighted():
    kernel = node.params['kernel']
    count = np.count_nonzero(kernel) if nonzero_only else kernel.size
    total += int(count) * positions(graph, node.name)
  return total


def nonzero_params(graph: Graph) -> int:
  return sum(int(np.count_nonzero(a)) for n in graph.nodes
             for a in n.params.values())


def live_units(graph: Graph) -> str:
  """Per weighted node, the output channels with a non-zero weight: '16-12-5'."""
  counts = []
  for node in graph.weighted():
    kernel = node.params['kernel']
    axis = ops.get(node.op).kernels['kernel']
    moved = np.moveaxis(kernel != 0, axis, -1).reshape(-1, kernel.shape[axis])
    counts.append(str(int(moved.any(axis=0).sum())))
  return '-'.join(counts)


def saved_graph(pruned: Graph, method: 'str | protocol.Importance') -> Graph:
  """The graph a sweep point describes and saves for criterion `method`'s `pruned` graph.

  Compacted (`graph_compaction.compact_zeros`: the removed channels physically
  gone, same outputs) where the method removes channels, so every count of
  the row is the saved file's; the masked graph itself otherwise.
  """
  if importances.get(method).removes_channels:
    return graph_compaction.compact_zeros(pruned)
  return pruned


def sweep_graph(graph: Graph, methods: Sequence[str], levels: Sequence[float],
                names: Sequence[str], x: np.ndarray, labels: np.ndarray,
                make_row: Callable, on_pruned=None,
                points: Sequence | None = None,
                per_layer: bool = False, progress: Callable | None = None,
                allow_sparse: bool = True, prune: Callable | None = None,
                executor: str = 'serial', scored: str | None = None) -> list:
  """Measures every (method, level) on `graph`; writes nothing.

  Each point is one trial (`_trial`: pruned and measured), run by `executor`
  (a key of `runtime.executors.EXECUTORS`); the rows are the same, in the
  same order, whichever runs them.

  Args:
    graph: the dense graph.
    methods: criteria (names of `importances.REGISTRY` or objects) that
      need no calibration data.
    levels: k in percent.
    names: nodes to prune.
    x, labels: test inputs and integer labels (for several inputs or
      outputs, dicts of arrays by input and output name).
    scored: the output whose accuracy is the rows' `accuracy` (default:
      the first); the other outputs' are the rows' `output_accuracies`.
    make_row: builds a row from the keyword arguments of the sweep's columns.
    on_pruned: called as on_pruned(method, k, saved_graph) for each point
      (`saved_graph`: what the row's counts describe).
    points: the `allocated.Point`s to measure, pruned by `prune` (e.g. an
      allocation's), instead of `methods` at `levels` on every node of
      `names`; without `prune`, (row name, k, pruned graph, criterion)
      tuples of graphs pruned already.
    per_layer: also give each row `layer_sparsity`, the measured sparsity of
      each node of `names`.
    progress: called as progress(method, k, accuracy, seconds) as each point
      is measured.
    allow_sparse: False computes every Dense node densely (no CSR).
    prune: (graph, point) -> pruned graph, picklable
      (`allocated.GraphPruner`).
    executor: where the trials run.
  """
  if points is None:
    for method in methods:
      channel_pruning.check(graph, method, names)
    points = [allocated.Point(importances.get(m).name, m, k)
              for m in methods for k in levels]
    prune = functools.partial(_uniform, names=tuple(names))
  elif prune is None:
    # Graphs pruned already: (row name, k, pruned graph, criterion) each.
    given = {(row, k): pruned for row, k, pruned, _ in points}
    points = [allocated.Point(row, criterion, k)
              for row, k, _, criterion in points]
    prune = functools.partial(_given, graphs=given)
  payload = _Payload(graph, tuple(names), x, labels, make_row, per_layer,
                     allow_sparse, prune, keep_pruned=on_pruned is not None,
                     scored=scored or graph.outputs[0])
  return collect(points, executors.map_trials(executor, _prepare, _trial,
                                              payload, points),
                 on_pruned, progress)


def collect(points: Sequence[allocated.Point],
            results: Iterable[tuple[object, float, object]],
            on_pruned=None, progress: Callable | None = None) -> list:
  """The rows of a sweep's trials, as they arrive in point order.

  Args:
    points: each trial's `allocated.Point`.
    results: each trial's (row, accuracy, saved network or None).
    on_pruned: called as on_pruned(method, k, saved) for each point.
    progress: called as progress(method, k, accuracy, seconds) as each row
      arrives (seconds: since the previous one).
  """
  rows = []
  clock = time.perf_counter()
  for point, (row, accuracy, saved) in zip(points, results):
    method, k = point.row, point.k
    rows.append(row)
    if on_pruned is not None:
      on_pruned(method, k, saved)
    if progress is not None:
      now = time.perf_counter()
      progress(method, k, accuracy, now - clock)
      clock = now
  return rows


def _uniform(graph: Graph, point: allocated.Point, names) -> Graph:
  return channel_pruning.prune_graph(graph, point.method, point.k, names)


def _given(graph: Graph, point: allocated.Point, graphs) -> Graph:
  del graph
  return graphs[(point.row, point.k)]


@dataclasses.dataclass(frozen=True)
class _Payload:
  """What every trial of a graph sweep reads."""
  graph: Graph
  names: tuple[str, ...]
  x: np.ndarray
  labels: np.ndarray
  make_row: Callable
  per_layer: bool
  allow_sparse: bool
  prune: Callable
  keep_pruned: bool
  scored: str


@dataclasses.dataclass(frozen=True)
class _Context:
  """A payload, its traced evaluator, dense costs, and the accuracies measured here.

  `seen` maps non-zero kernel counts to (parameter arrays, accuracy of each
  output): equal networks are evaluated once per process.
  """
  payload: _Payload
  evaluator: Evaluator
  dense_macs: int
  seen: dict


def _prepare(payload: _Payload) -> _Context:
  return _Context(payload, Evaluator(payload.graph, payload.allow_sparse),
                  macs(payload.graph, nonzero_only=False), {})


def _trial(context: _Context, point: allocated.Point
           ) -> tuple[object, float, Graph | None]:
  """One point pruned and measured: its row, accuracy (and saved graph if kept)."""
  payload, evaluator = context.payload, context.evaluator
  graph, names = payload.graph, payload.names
  pruned = payload.prune(graph, point)
  method, k = point.row, point.k
  kernels = [pruned.node(n).params['kernel'] for n in names]
  key = tuple(np.count_nonzero(kernel) for kernel in kernels)
  extra = {'layer_sparsity': allocated.layer_sparsity(
      dict(zip(names, kernels)))} if payload.per_layer else {}
  # Every parameter counts, not only the pruned kernels: a method may
  # change biases or kept layers too (`obs` re-fits biases).
  arrays = [a for node in pruned.nodes for a in node.params.values()]
  same = [acc for other, acc in context.seen.get(key, ())
          if all(np.array_equal(a, b) for a, b in zip(other, arrays))]
  scores = same[0] if same else evaluator.accuracies(payload.x, payload.labels,
                                                     pruned)
  context.seen.setdefault(key, []).append((arrays, scores))
  accuracy = scores[payload.scored]
  others = tuple((o, scores[o]) for o in graph.outputs if o != payload.scored)
  if others:
    extra['output_accuracies'] = others
  size = sum(kernel.size for kernel in kernels)
  zeros = sum(kernel.size - np.count_nonzero(kernel) for kernel in kernels)
  # Accuracy and sparsity are the masked graph's; every count and the size
  # are the saved graph's (the same network, its removed channels gone).
  saved = saved_graph(pruned, point.method)
  effective, nonzero = macs(saved, True), nonzero_params(saved)
  dense_macs, params = context.dense_macs, graph.num_params
  row = payload.make_row(
      method=method, k=k, accuracy=accuracy,
      sparsity=zeros / size if size else 0.0, nonzero_params=nonzero,
      flops=effective,
      flops_speedup=dense_macs / effective if effective else float('inf'),
      compression=params / nonzero if nonzero else float('inf'),
      size_bytes=len(graph_io.to_bytes(saved)), units=live_units(saved),
      kernels='+'.join(evaluator.kinds(pruned)), **extra)
  return row, accuracy, saved if payload.keep_pruned else None
