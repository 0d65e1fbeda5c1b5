"""The dense/CSR kernel rule of the graph evaluator, and TensorFlow's CSR matmul.

A Dense layer (a 2-D kernel applied to (batch, features) rows) runs through
TensorFlow's `CSRSparseMatrix` matmul where it has at least
`MIN_CSR_WEIGHTS` weights and a density (share of non-zero weights) below
`max_csr_density(rows)`, and through a dense matmul elsewhere
(`kernel_kind`). `rows` is the number of examples one kernel call takes: the
CSR matmul gains from many rows per call, so the threshold is calibrated at
the rows the graph evaluator runs, `GRAPH_CHUNK_ROWS`, in `MAX_CSR_DENSITY`
(the data file of `csr_calibration`). The rule does not time
anything, so the same network at the same rows per call always gets the
same kernels and the results files are byte-reproducible. Convolutions
always run through TensorFlow's own kernels.

For a graph, `graph_kinds` names each weighted node's kernel in graph order,
the vocabulary of the sweep's `kernels` column: `dense`, `csr`, `conv`
(conv2d) and `depthwise` (depthwise_conv2d). A CSR kernel is stored
transposed, (units, inputs), as the CSR matmul takes its sparse operand on
the left.
"""

import numpy as np
import tensorflow as tf
# TensorFlow's CSR kernels have no public API; tensorflow==2.21 is pinned.
# pylint: disable=g-direct-tensorflow-import
from tensorflow.python.ops import handle_data_util
from tensorflow.python.ops.linalg.sparse import gen_sparse_csr_matrix_ops as csr_gen
from tensorflow.python.ops.linalg.sparse import sparse_csr_matrix_ops as csr_ops
# pylint: enable=g-direct-tensorflow-import

from tfprune.graph import csr_calibration
from tfprune.graph.ir import Graph
from tfprune.graph.ir import Node

# Examples per CSR call: the graph evaluator's chunks for conv graphs
# (`graph.evaluator.CONV_BATCH_SIZE`), at most the rows its rule reads.
GRAPH_CHUNK_ROWS = 128
# The density below which a Dense layer goes CSR, by rows per call: a
# measurement of one machine, read from csr_calibration.json (where the notes
# say how each entry was measured); experiments/calibrate_kernels.py writes it.
MAX_CSR_DENSITY = csr_calibration.load()
MIN_CSR_WEIGHTS = 65_536
DENSE, CSR = 'dense', 'csr'
# The `kernels` name of each weighted op that always runs its TF kernel.
OP_KERNELS = {'conv2d': 'conv', 'depthwise_conv2d': 'depthwise'}


def max_csr_density(rows: int) -> float:
  """The density below which CSR is used for calls of `rows` examples.

  The entry of `MAX_CSR_DENSITY` for the largest calibrated row count not
  above `rows`; 0 (always dense) for fewer rows than any entry, e.g. one
  example, which no entry calibrates.
  """
  fitting = [r for r in MAX_CSR_DENSITY if r <= rows]
  return MAX_CSR_DENSITY[max(fitting)] if fitting else 0.0


def kernel_kind(kernel: np.ndarray, rows: int) -> str:
  """'csr' or 'dense' for a Dense layer's 2-D kernel, by a fixed rule.

  CSR for a kernel of at least `MIN_CSR_WEIGHTS` weights with a density below
  `max_csr_density(rows)`, for calls of `rows` examples, else dense. The same
  kernel at the same rows always gets the same kind, whatever the load of
  the machine.
  """
  density = np.count_nonzero(kernel != 0) / kernel.size if kernel.size else 1.0
  sparse = kernel.size >= MIN_CSR_WEIGHTS and density < max_csr_density(rows)
  return CSR if sparse else DENSE


def csr_matrix(matrix: np.ndarray) -> csr_ops.CSRSparseMatrix:
  """A `CSRSparseMatrix` of the non-zeros of the 2-D `matrix`."""
  rows, cols = np.nonzero(matrix)
  return csr_ops.CSRSparseMatrix(tf.SparseTensor(
      np.stack([rows, cols], axis=1).astype(np.int64), matrix[rows, cols],
      matrix.shape))


def node_kind(graph: Graph, node: Node, rows: int,
              allow_sparse: bool = True) -> str:
  """The kernel of one weighted node of `graph` for calls of `rows` examples.

  Only a Dense node on 2-D inputs (batch, features) may go CSR; a Dense node
  applied to every position of a feature map stays a dense contraction.
  """
  if node.op in OP_KERNELS:
    return OP_KERNELS[node.op]
  if not allow_sparse or len(graph.shapes[node.inputs[0]]) != 1:
    return DENSE
  return kernel_kind(node.params['kernel'], rows)


def graph_kinds(graph: Graph, rows: int,
                allow_sparse: bool = True) -> tuple[str, ...]:
  """The kernel of each weighted node of `graph`, in graph order, for calls
  of `rows` examples."""
  return tuple(node_kind(graph, n, rows, allow_sparse) for n in graph.weighted())


def csr_operands(graph: Graph, kinds: tuple[str, ...]) -> dict[str, tf.Tensor]:
  """The transposed CSR kernel of each node planned `csr`, by node name.

  Each is the matrix's variant tensor, an argument a traced function takes
  without retracing (`csr_dense` gives it back its shape inside).
  """
  return {node.name: operand(np.ascontiguousarray(node.params['kernel'].T))
          for node, kind in zip(graph.weighted(), kinds) if kind == CSR}


def operand_spec() -> tf.TensorSpec:
  """The `tf.function` input signature of one `csr_operands` value."""
  return tf.TensorSpec([], tf.variant)


def operand(matrix: np.ndarray) -> tf.Tensor:
  """The CSR operand of the 2-D `matrix`: its `CSRSparseMatrix`'s variant
  tensor, an argument a traced function takes without retracing."""
  return csr_matrix(matrix)._matrix  # pylint: disable=protected-access


def csr_matmul(matrix: tf.Tensor, x: tf.Tensor,
               units: int | None = None) -> tf.Tensor:
  """matrix @ x for a CSR operand `matrix` (units, inputs), `x` (inputs, batch).

  `matrix` crosses a `tf.function` boundary as a bare variant tensor, so its
  dense shape (`units` unknown if None) and dtype are set again for the
  kernel's shape inference.
  """
  shape = tf.TensorShape([units, x.shape[0]])
  handle = csr_ops._create_handle_data_proto(  # pylint: disable=protected-access
      shape.as_proto(), tf.float32.as_datatype_enum)
  handle_data_util.set_handle_data(matrix, handle)
  return csr_gen.sparse_matrix_mat_mul(matrix, x)


def csr_dense(x: tf.Tensor, matrix: tf.Tensor, units: int) -> tf.Tensor:
  """x @ kernel for rows `x` (batch, inputs), from the kernel's CSR operand.

  The activations are transposed to (inputs, batch) for the CSR matmul
  (`csr_matmul`) and back.
  """
  return tf.transpose(csr_matmul(matrix, tf.transpose(x), units))
