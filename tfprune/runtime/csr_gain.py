"""Does CSR pay on a graph? Its CSR-capable layers on CSR against all dense, on the same graph.

The graph evaluator picks a Dense layer's kernel by a fixed rule
(`sparse_kernels.kernel_kind`: a calibrated density threshold at the rows of
one call), which times nothing, so results files stay byte-reproducible.
This module measures what the rule decides: `dense_and_csr(graph, x)` gives
the graph's forward pass on `x` with every CSR-capable layer (`csr_kinds`: a
Dense node on (batch, features) inputs with at least `MIN_CSR_WEIGHTS`
weights, whatever its density) on TensorFlow's CSR matmul, and the same
graph all dense, to time against each other (`paired_timing.pair`).
"""

import numpy as np

from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import sparse_kernels
from tfprune.graph.ir import Graph


def csr_kinds(graph: Graph) -> tuple[str, ...] | None:
  """Each weighted node's kernel with every CSR-capable Dense node on CSR,
  in graph order (the `kernels` vocabulary); None if no node is."""
  kinds = []
  for node in graph.weighted():
    kind = sparse_kernels.node_kind(graph, node, 0, allow_sparse=False)
    if (node.op == 'dense' and len(graph.shapes[node.inputs[0]]) == 1
        and node.params['kernel'].size >= sparse_kernels.MIN_CSR_WEIGHTS):
      kind = sparse_kernels.CSR
    kinds.append(kind)
  return tuple(kinds) if sparse_kernels.CSR in kinds else None


class _ForcedKernels(evaluator.Evaluator):
  """An evaluator computing its graph with the kernels `kinds`, whatever the rule."""

  def __init__(self, graph: Graph, kinds: tuple[str, ...]):
    super().__init__(graph)
    self._forced = kinds

  def kinds(self, graph: Graph | None = None,
            rows: int | None = None) -> tuple[str, ...]:
    return self._forced


def dense_and_csr(graph: Graph, x: np.ndarray):
  """Two calls computing `graph` on `x`: all dense, and with `csr_kinds`.

  Raises:
    TfpruneError: `graph` has no CSR-capable node (`csr_kinds` is None).
  """
  kinds = csr_kinds(graph)
  if kinds is None:
    raise TfpruneError('the graph has no Dense layer CSR can compute (one on '
                       f'vectors, of at least {sparse_kernels.MIN_CSR_WEIGHTS:,} '
                       'weights): time it with the graph evaluator alone')
  dense = evaluator.Evaluator(graph, allow_sparse=False)
  csr = _ForcedKernels(graph, kinds)
  return (lambda: dense.predict(x)), (lambda: csr.predict(x))
