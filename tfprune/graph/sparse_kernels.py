"""The dense/CSR kernel rule, shared by the MLP plan and the graph evaluator.

A Dense layer (a 2-D kernel applied to (batch, features) rows) runs through
TensorFlow's `CSRSparseMatrix` matmul where it has at least
`MIN_CSR_WEIGHTS` weights and a density (share of non-zero weights) below
`MAX_CSR_DENSITY`, and through a dense matmul elsewhere (`kernel_kind`).
The rule does not time anything, so the same network always gets the same
kernels and the results files are byte-reproducible. `MAX_CSR_DENSITY` was
calibrated on the MLP's layers with `experiments/calibrate_kernels.py` (see
`runtime.inference`). Convolutions always run through TensorFlow's own
kernels.

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

from tfprune.graph.ir import Graph
from tfprune.graph.ir import Node

# Calibrated on the README's 2-core machine with experiments/calibrate_kernels.py:
# the medians of 5 probes put the crossover of the MLP's 784x1000, 1000x1000
# and 1000x500 layers at densities 0.145, 0.134 and 0.116, so 0.15 puts weight
# pruning at k >= 90 (density <= 0.10) on CSR and k <= 80 (density >= 0.20)
# on dense.
MAX_CSR_DENSITY = 0.15
MIN_CSR_WEIGHTS = 65_536
DENSE, CSR = 'dense', 'csr'
# The `kernels` name of each weighted op that always runs its TF kernel.
OP_KERNELS = {'conv2d': 'conv', 'depthwise_conv2d': 'depthwise'}


def kernel_kind(kernel: np.ndarray) -> str:
  """'csr' or 'dense' for a Dense layer's 2-D kernel, by a fixed rule.

  CSR for a kernel of at least `MIN_CSR_WEIGHTS` weights with a density below
  `MAX_CSR_DENSITY`, else dense. The same kernel always gets the same kind,
  whatever the load of the machine.
  """
  density = np.count_nonzero(kernel != 0) / kernel.size if kernel.size else 1.0
  sparse = kernel.size >= MIN_CSR_WEIGHTS and density < MAX_CSR_DENSITY
  return CSR if sparse else DENSE


def csr_matrix(matrix: np.ndarray) -> csr_ops.CSRSparseMatrix:
  """A `CSRSparseMatrix` of the non-zeros of the 2-D `matrix`."""
  rows, cols = np.nonzero(matrix)
  return csr_ops.CSRSparseMatrix(tf.SparseTensor(
      np.stack([rows, cols], axis=1).astype(np.int64), matrix[rows, cols],
      matrix.shape))


def node_kind(graph: Graph, node: Node, allow_sparse: bool = True) -> str:
  """The kernel of one weighted node of `graph` (see the module docstring).

  Only a Dense node on 2-D inputs (batch, features) may go CSR; a Dense node
  applied to every position of a feature map stays a dense contraction.
  """
  if node.op in OP_KERNELS:
    return OP_KERNELS[node.op]
  if not allow_sparse or len(graph.shapes[node.inputs[0]]) != 1:
    return DENSE
  return kernel_kind(node.params['kernel'])


def graph_kinds(graph: Graph, allow_sparse: bool = True) -> tuple[str, ...]:
  """The kernel of each weighted node of `graph`, in graph order."""
  return tuple(node_kind(graph, n, allow_sparse) for n in graph.weighted())


def csr_operands(graph: Graph, kinds: tuple[str, ...]) -> dict[str, tf.Tensor]:
  """The transposed CSR kernel of each node planned `csr`, by node name.

  Each is the matrix's variant tensor, an argument a traced function takes
  without retracing (`csr_dense` gives it back its shape inside).
  """
  return {node.name: csr_matrix(np.ascontiguousarray(
      node.params['kernel'].T))._matrix  # pylint: disable=protected-access
          for node, kind in zip(graph.weighted(), kinds) if kind == CSR}


def operand_spec() -> tf.TensorSpec:
  """The `tf.function` input signature of one `csr_operands` value."""
  return tf.TensorSpec([], tf.variant)


def csr_dense(x: tf.Tensor, matrix: tf.Tensor, units: int) -> tf.Tensor:
  """x @ kernel for rows `x` (batch, inputs), from the kernel's CSR operand.

  The activations are transposed to (inputs, batch) for the CSR matmul and
  back. `matrix` crosses a `tf.function` boundary as a bare variant tensor,
  so its dense shape and dtype are set again for the kernel's shape
  inference.
  """
  shape = tf.TensorShape([units, x.shape[-1]])
  handle = csr_ops._create_handle_data_proto(  # pylint: disable=protected-access
      shape.as_proto(), tf.float32.as_datatype_enum)
  handle_data_util.set_handle_data(matrix, handle)
  return tf.transpose(csr_gen.sparse_matrix_mat_mul(matrix, tf.transpose(x)))
