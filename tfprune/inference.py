"""Fast inference for pruned networks: compaction plus sparse kernels where they pay.

`plan(network)` compacts the network (see `compaction`) and, for each layer,
picks a dense matmul or a CSR sparse matmul (TensorFlow's `CSRSparseMatrix`
kernel) by a crossover *measured on this machine*: the time of a dense matmul
against CSR matmuls at two densities, fitted linearly in the density, for the
layer's shape class (each dimension rounded up to a power of two, so that the
many slightly different shapes of compacted layers share one measurement).
`tf.sparse.sparse_dense_matmul` is not used: on a 2-core CPU it never beat
dense (measured 5x slower at 90% sparsity).

Activations flow transposed, (features, batch), so that each layer is
`W^T @ h` with the sparse operand on the left as the CSR kernel requires, in
chunks of `CHUNK` examples: a chunk of activations stays in cache while the
CSR kernel gathers from it, which moved the measured crossover at 10,000
examples from about 95% sparsity (one chunk) to about 80% (chunks of 512).
"""

import dataclasses
import functools
import time
from typing import Sequence

import numpy as np
import tensorflow as tf
# TensorFlow's CSR kernels have no public API; tensorflow==2.21 is pinned.
from tensorflow.python.ops.linalg.sparse import sparse_csr_matrix_ops as csr_ops  # pylint: disable=g-direct-tensorflow-import

from tfprune import compaction
from tfprune import evaluate
from tfprune.network import Network

CHUNK = 512
PROBE_DENSITIES = (0.02, 0.2)


@dataclasses.dataclass(frozen=True)
class PlannedLayer:
  """One layer ready to run.

  Attributes:
    kind: 'dense' or 'csr'.
    weights: the (units, inputs) transposed kernel: a dense tensor or a
      `CSRSparseMatrix`.
    bias: (units, 1) tensor, or None when biases are not used.
    nonzeros: non-zero kernel weights.
  """
  kind: str
  weights: object
  bias: tf.Tensor | None
  nonzeros: int


@dataclasses.dataclass(frozen=True)
class Plan:
  """A compacted network with a kernel chosen per layer."""
  network: Network
  layers: tuple[PlannedLayer, ...]

  @property
  def kinds(self) -> tuple[str, ...]:
    return tuple(l.kind for l in self.layers)


def timings(fn, repeats: int) -> list[float]:
  """Seconds of `repeats` calls of `fn`, after one untimed warm-up call."""
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return times


def _time(fn, repeats: int = 2) -> float:
  return min(timings(fn, repeats))


def _csr(kernel_t: np.ndarray):
  rows, cols = np.nonzero(kernel_t)
  return csr_ops.CSRSparseMatrix(tf.SparseTensor(
      np.stack([rows, cols], axis=1).astype(np.int64), kernel_t[rows, cols],
      kernel_t.shape))


def _matmul(kind: str, weights, h: tf.Tensor) -> tf.Tensor:
  if kind == 'csr':
    return csr_ops.matmul(weights, h)
  return tf.matmul(weights, h)


def _shape_class(n: int) -> int:
  return max(16, 1 << (int(n) - 1).bit_length())


def crossover_density(inputs: int, units: int) -> float:
  """Density below which CSR beats dense for an (inputs, units) layer.

  Measured once per shape class in this process (see the module docstring).
  """
  return _measured_crossover(_shape_class(inputs), _shape_class(units))


@functools.lru_cache(maxsize=None)
def _measured_crossover(inputs: int, units: int) -> float:
  batch = CHUNK
  rng = np.random.default_rng(0)
  h = tf.constant(rng.random((inputs, batch), dtype=np.float32))
  dense = tf.constant(rng.normal(size=(units, inputs)).astype(np.float32))
  t_dense = _time(lambda: _matmul('dense', dense, h).numpy())
  times = []
  for density in PROBE_DENSITIES:
    kernel = np.where(rng.random((units, inputs)) < density,
                      rng.normal(size=(units, inputs)), 0).astype(np.float32)
    csr = _csr(kernel)
    times.append(_time(lambda: _matmul('csr', csr, h).numpy()))
  (d0, d1), (t0, t1) = PROBE_DENSITIES, times
  slope = (t1 - t0) / (d1 - d0)
  if slope <= 0:
    return PROBE_DENSITIES[0] if t0 < t_dense else 0.0
  return float(np.clip(d0 + (t_dense - t0) / slope, 0.0, 1.0))


def plan(network: Network, use_biases: bool = True,
         allow_sparse: bool = True) -> Plan:
  """Compacts `network` and picks dense or CSR for each layer.

  Args:
    network: a (pruned) network.
    use_biases: add biases in the forward pass.
    allow_sparse: False forces dense kernels (compaction still applies).
  """
  compact = compaction.compact(network, use_biases)
  layers = []
  for kernel, bias in zip(compact.kernels, compact.biases):
    nonzeros = int(np.count_nonzero(kernel))
    density = nonzeros / kernel.size
    sparse = allow_sparse and density < crossover_density(*kernel.shape)
    kernel_t = np.ascontiguousarray(kernel.T)
    layers.append(PlannedLayer(
        kind='csr' if sparse else 'dense',
        weights=_csr(kernel_t) if sparse else tf.constant(kernel_t),
        bias=tf.constant(bias[:, None]) if use_biases else None,
        nonzeros=nonzeros))
  return Plan(compact, tuple(layers))


def _forward(p: Plan, x_t: tf.Tensor) -> tf.Tensor:
  h = x_t
  last = len(p.layers) - 1
  for i, layer in enumerate(p.layers):
    h = _matmul(layer.kind, layer.weights, h)
    if layer.bias is not None:
      h = h + layer.bias
    if i < last:
      h = tf.nn.relu(h)
  return h


def prepare(images: np.ndarray, input_dim: int) -> tuple[tf.Tensor, ...]:
  """Images as transposed (features, <= CHUNK) float32 tensors for `run`.

  Prepare once and reuse across plans: the transpose is not free.

  Raises:
    TfpruneError: the images do not have `input_dim` values each.
  """
  x = evaluate.flatten_inputs(images, input_dim)
  return tuple(tf.constant(np.ascontiguousarray(x[i:i + CHUNK].T))
               for i in range(0, len(x), CHUNK))


def run(p: Plan, chunks: Sequence[tf.Tensor]) -> np.ndarray:
  """Logits (n, classes) of inputs prepared by `prepare`."""
  return np.concatenate([_forward(p, c).numpy().T for c in chunks])


def logits(p: Plan, images: np.ndarray) -> np.ndarray:
  """Logits (n, classes) of `images` through the plan."""
  return run(p, prepare(images, p.network.input_dim))


def accuracy(p: Plan, chunks: Sequence[tf.Tensor], labels: np.ndarray) -> float:
  """Fraction of the prepared inputs whose arg-max output equals `labels`."""
  labels = np.asarray(labels)
  return float(np.mean(run(p, chunks).argmax(axis=1) == labels))
