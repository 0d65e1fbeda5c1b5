"""Fast inference for pruned networks: compaction plus sparse kernels where they pay.

`plan(network)` compacts the network (see `compaction`) and, for each layer,
picks a dense or a CSR sparse matmul (TensorFlow's `CSRSparseMatrix` kernel)
by a fixed rule (`sparse_kernels.kernel_kind` at `CHUNK` rows per call):
CSR where the layer has at least `MIN_CSR_WEIGHTS` weights (below that there
is too little time to gain, and a CSR layer between dense ones costs two
layout conversions) and a density below `MAX_CSR_DENSITY`, dense elsewhere.
The rule does not time anything, so the same network always gets the same
kernels and the sweep's results files are byte-reproducible. `MAX_CSR_DENSITY` was calibrated once, with
`experiments/calibrate_kernels.py`, from the timing probe
`kernel_calibration.crossover_density`.
`tf.sparse.sparse_dense_matmul` is not used: on a 2-core CPU it never beat
dense (measured 5x slower at 90% sparsity).

The two kernels run in the layout that suits each (measured on this machine):

- consecutive dense layers take the whole batch as (batch, features) rows in
  one `tf.function` call, where TensorFlow fuses matmul, bias and ReLU;
- CSR layers take the activations transposed, (features, batch), as the CSR
  kernel needs its sparse operand on the left, in chunks of `CHUNK` examples:
  a chunk stays in cache while the kernel gathers from it (3x faster than one
  whole-batch CSR matmul at 80-98% sparsity); consecutive CSR layers run
  in one `tf.function` call too, each chunk through all of them. A CSR
  matrix enters that call as a variant tensor (`sparse_kernels.operand`), so
  one trace serves every plan with the same kinds and number of chunks.

`prepare` makes both layouts of the inputs once; the forward pass converts
between them only where the kernel kind changes.
"""

import dataclasses
import functools
from typing import Sequence

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import sparse_kernels
from tfprune.graph.network import Network
from tfprune.transforms import compaction

CHUNK = sparse_kernels.MLP_CHUNK_ROWS
KINDS = ('dense', 'csr')
# The kernel rule of `plan`, shared with the graph evaluator (calibration in
# `graph.sparse_kernels`).
MAX_CSR_DENSITY = sparse_kernels.max_csr_density(CHUNK)
MIN_CSR_WEIGHTS = sparse_kernels.MIN_CSR_WEIGHTS


@dataclasses.dataclass(frozen=True)
class PlannedLayer:
  """One layer ready to run.

  Attributes:
    kind: 'dense' or 'csr'.
    weights: dense: the (inputs, units) kernel tensor; csr: the CSR operand
      (`sparse_kernels.operand`, a variant tensor) of the transposed
      (units, inputs) kernel.
    bias: dense: a (units,) tensor; csr: a (units, 1) tensor. Zero when the
      plan does not use biases.
    nonzeros: non-zero kernel weights.
  """
  kind: str
  weights: object
  bias: tf.Tensor
  nonzeros: int


@dataclasses.dataclass(frozen=True)
class Plan:
  """A compacted network with a kernel chosen per layer."""
  network: Network
  layers: tuple[PlannedLayer, ...]

  @property
  def kinds(self) -> tuple[str, ...]:
    return tuple(l.kind for l in self.layers)


@dataclasses.dataclass(frozen=True)
class Inputs:
  """Inputs in both layouts of the forward pass (see the module docstring).

  Attributes:
    rows: (n, features) float32 tensor.
    chunks: the same values transposed, (features, <= CHUNK) per chunk.
  """
  rows: tf.Tensor
  chunks: tuple[tf.Tensor, ...]

  def __len__(self) -> int:
    return int(self.rows.shape[0])


@functools.lru_cache(maxsize=None)
def _dense_segment(num_layers: int, relu_last: bool):
  """A `tf.function` of `num_layers` consecutive dense layers.

  One function per segment structure: a sweep plans networks whose segments
  differ in length and in their last ReLU, and one function for all of them
  retraced for each (TensorFlow warned about it). Within a structure only the
  shapes change, and the signature leaves them open: one trace each.
  """
  matrix, vector = tf.TensorSpec([None, None]), tf.TensorSpec([None])

  @tf.function(autograph=False,
               input_signature=[matrix, (matrix,) * num_layers,
                                (vector,) * num_layers])
  def segment(rows, kernels, biases):
    h = rows
    for i in range(num_layers):
      h = tf.matmul(h, kernels[i]) + biases[i]
      if relu_last or i < num_layers - 1:
        h = tf.nn.relu(h)
    return h

  return segment


def _dense_layers(layers: Sequence[PlannedLayer], rows: tf.Tensor,
                  relu_last: bool) -> tf.Tensor:
  return _dense_segment(len(layers), bool(relu_last))(
      rows, tuple(l.weights for l in layers), tuple(l.bias for l in layers))


@functools.lru_cache(maxsize=None)
def _csr_segment(num_layers: int, relu_last: bool, num_chunks: int):
  """A `tf.function` of `num_layers` consecutive CSR layers over chunks.

  Each chunk goes through all the layers while it is in cache. Run eagerly,
  the per-op dispatch of (chunks x layers) small calls cost more than the
  sparse arithmetic itself at 97-99% sparsity (measured 3x slower at 1%
  density). The CSR matrices are variant tensors and the signature leaves
  every shape open: one trace per structure and number of chunks, whatever
  the plan (`reduce_retracing` traced twice, first for the shapes it saw).
  """
  matrix, variant = tf.TensorSpec([None, None]), sparse_kernels.operand_spec()

  @tf.function(autograph=False, input_signature=[
      (matrix,) * num_chunks, (variant,) * num_layers, (matrix,) * num_layers])
  def segment(chunks, matrices, biases):
    out = []
    for chunk in chunks:
      h = chunk
      for i in range(num_layers):
        h = sparse_kernels.csr_matmul(matrices[i], h) + biases[i]
        if relu_last or i < num_layers - 1:
          h = tf.nn.relu(h)
      out.append(h)
    return out

  return segment


def _csr_layers(layers: Sequence[PlannedLayer], chunks: Sequence[tf.Tensor],
                relu_last: bool) -> list[tf.Tensor]:
  """Consecutive CSR layers: one `tf.function` call for several chunks.

  A single chunk (a batch of at most `CHUNK`, e.g. one example) runs eagerly:
  there the call's signature matching on the sparse matrices costs more than
  the dispatch it saves (measured 0.5-0.8x of dense at batch 1, against
  0.8-1.1x eagerly).
  """
  if len(chunks) == 1:
    for i, layer in enumerate(layers):
      chunks = _csr_layer(layer, chunks, relu_last or i < len(layers) - 1)
    return chunks
  return _csr_segment(len(layers), bool(relu_last), len(chunks))(
      tuple(chunks), tuple(l.weights for l in layers),
      tuple(l.bias for l in layers))


def _csr_layer(layer: PlannedLayer, chunks: Sequence[tf.Tensor],
               relu: bool) -> list[tf.Tensor]:
  out = []
  for chunk in chunks:
    h = sparse_kernels.csr_matmul(layer.weights, chunk) + layer.bias
    out.append(tf.nn.relu(h) if relu else h)
  return out


def _to_chunks(rows: tf.Tensor) -> list[tf.Tensor]:
  return [tf.transpose(rows[i:i + CHUNK]) for i in range(0, rows.shape[0], CHUNK)]


def _to_rows(chunks: Sequence[tf.Tensor]) -> tf.Tensor:
  return tf.transpose(tf.concat(chunks, axis=1))


def _planned(kind: str, kernel: np.ndarray, bias: np.ndarray) -> PlannedLayer:
  nonzeros = int(np.count_nonzero(kernel != 0))
  if kind == 'csr':
    return PlannedLayer(
        'csr', sparse_kernels.operand(np.ascontiguousarray(kernel.T)),
        tf.constant(bias[:, None]), nonzeros)
  return PlannedLayer('dense', tf.constant(kernel), tf.constant(bias), nonzeros)


def plan(network: Network, use_biases: bool = True, allow_sparse: bool = True,
         kinds: Sequence[str] | None = None) -> Plan:
  """Compacts `network` and picks dense or CSR for each layer.

  Args:
    network: a (pruned) dense-chain network.
    use_biases: add biases in the forward pass.
    allow_sparse: False forces dense kernels (compaction still applies).
    kinds: force these kernels, one of `KINDS` per layer, instead of the
      rule of `sparse_kernels.kernel_kind`.

  Raises:
    TfpruneError: `kinds` has the wrong length or an unknown kind.
  """
  compact = compaction.compact(network, use_biases)
  if kinds is not None:
    kinds = tuple(kinds)
    if len(kinds) != compact.num_layers or set(kinds) - set(KINDS):
      raise TfpruneError(
          f'kinds {kinds} must give one of {KINDS} for each of the '
          f'{compact.num_layers} layers')
  layers = []
  for i, (kernel, bias) in enumerate(zip(compact.kernels, compact.biases)):
    if kinds is not None:
      kind = kinds[i]
    else:
      kind = (sparse_kernels.kernel_kind(kernel, CHUNK) if allow_sparse
              else 'dense')
    layers.append(_planned(kind, kernel, bias if use_biases else np.zeros_like(bias)))
  return Plan(compact, tuple(layers))


def prepare(images: np.ndarray, input_dim: int) -> Inputs:
  """Images in both layouts of the forward pass, as float32 tensors.

  Prepare once and reuse across plans: the transpose is not free.

  Raises:
    TfpruneError: the images do not have `input_dim` values each.
  """
  x = np.asarray(images, dtype=np.float32).reshape(len(images), -1)
  if x.shape[1] != input_dim:
    raise TfpruneError(
        f'the network takes {input_dim} inputs but the images have '
        f'{x.shape[1]} values: use weights trained on this dataset')
  return Inputs(tf.constant(x), tuple(
      tf.constant(np.ascontiguousarray(x[i:i + CHUNK].T))
      for i in range(0, len(x), CHUNK)))


def _segments(kinds: Sequence[str]) -> list[tuple[str, int, int]]:
  """Runs of equal kinds as (kind, start, stop) layer ranges."""
  segments = []
  for i, kind in enumerate(kinds):
    if segments and segments[-1][0] == kind:
      segments[-1] = (kind, segments[-1][1], i + 1)
    else:
      segments.append((kind, i, i + 1))
  return segments


def _forward(p: Plan, inputs: Inputs) -> tf.Tensor:
  rows, chunks = inputs.rows, inputs.chunks
  last = len(p.layers)
  for kind, start, stop in _segments(p.kinds):
    if kind == 'dense':
      rows = _dense_layers(p.layers[start:stop],
                           _to_rows(chunks) if rows is None else rows,
                           relu_last=stop < last)
      chunks = None
    else:
      chunks = chunks if chunks is not None else _to_chunks(rows)
      chunks = _csr_layers(p.layers[start:stop], chunks,
                           relu_last=stop < last)
      rows = None
  return _to_rows(chunks) if rows is None else rows


def run(p: Plan, inputs: Inputs) -> np.ndarray:
  """Logits (n, classes) of inputs prepared by `prepare`."""
  return _forward(p, inputs).numpy()


def logits(p: Plan, images: np.ndarray) -> np.ndarray:
  """Logits (n, classes) of `images` through the plan."""
  return run(p, prepare(images, p.network.input_dim))


def accuracy(p: Plan, inputs: Inputs, labels: np.ndarray) -> float:
  """Fraction of the prepared inputs whose arg-max output equals `labels`."""
  labels = np.asarray(labels)
  return float(np.mean(run(p, inputs).argmax(axis=1) == labels))
