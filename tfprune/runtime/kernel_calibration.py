"""The timing probe that calibrates the dense/CSR rule (`sparse_kernels.MAX_CSR_DENSITY`).

`crossover_density(inputs, units, path)` measures, for one kernel shape, the
density below which a CSR layer takes at most `REQUIRED_GAIN` of the dense
layer's time, on the kernels and rows per call of one path:

- `mlp`: the MLP plan (`runtime.inference`): two chunks of `inference.CHUNK`
  (512) examples in the transposed layout, the CSR layer run eagerly chunk
  by chunk, the dense layer in one `tf.function` call on the whole batch;
- `graph`: the graph evaluator (`graph.evaluator`): calls of
  `sparse_kernels.GRAPH_CHUNK_ROWS` (128) examples in row layout, each
  layer inside a `tf.function`, the CSR one through `sparse_kernels.csr_dense`
  (transposes included).

Time of the dense layer against the CSR layer at two densities, fitted
linearly in the density: 5% and 30% for the MLP, 1% and 5% for graphs,
whose crossover lies below 5% (a fit from 5-30% would only extrapolate
there). On the graph path the fixed cost of a call (an empty call, timed
alike) is taken out of both kernels, as a layer inside a graph does not pay
it. The MLP path probes each shape's class (each dimension rounded up to a
power of two); the graph path the exact shape, as 3136x128 and its class
4096x128 measured apart (0.76-1.10 against 0.71-0.88 of the dense time at
1-2% density, 128 rows). Only `experiments/calibrate_kernels.py` calls it:
the rule itself never times anything, so its choice never depends on the
load of the machine.
"""

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import sparse_kernels
from tfprune.runtime import inference
from tfprune.runtime import timers

PATHS = ('mlp', 'graph')
PROBE_DENSITIES = {'mlp': (0.05, 0.3), 'graph': (0.01, 0.05)}
PROBE_CHUNKS = 2
PROBE_ROUNDS = 5
PROBE_SECONDS = 0.2
REQUIRED_GAIN = 0.8


def rows_per_call(path: str) -> int:
  """The examples one kernel call of `path` takes (the rule's table key)."""
  return {'mlp': inference.CHUNK, 'graph': sparse_kernels.GRAPH_CHUNK_ROWS}[path]


def _shape_class(n: int) -> int:
  return max(16, 1 << (int(n) - 1).bit_length())


def _mlp_runs(kernel, probes, rows):
  """Dense on all rows, dense on one row, CSR per chunk for each probe."""
  bias = np.zeros(kernel.shape[1], np.float32)
  # pylint: disable=protected-access
  dense = inference._planned('dense', kernel, bias)
  csr = [inference._planned('csr', p, bias) for p in probes]
  chunks = inference._to_chunks(rows)
  one_row = rows[:1]
  return [lambda: inference._dense_layers([dense], rows, True).numpy(),
          lambda: inference._dense_layers([dense], one_row, True).numpy()] + [
      lambda p=p: [c.numpy() for c in inference._csr_layer(p, chunks, True)]
      for p in csr]
  # pylint: enable=protected-access


def _graph_runs(kernel, probes, rows):
  """Dense, an empty call (its fixed cost), CSR for each probe: one
  graph-evaluator-like call of `rows` per run."""
  units = kernel.shape[1]
  bias = tf.zeros(units)
  matrix = tf.TensorSpec([None, None])

  @tf.function(input_signature=[matrix, matrix])
  def dense(x, k):
    return tf.nn.relu(tf.matmul(x, k) + bias)

  @tf.function(input_signature=[matrix, sparse_kernels.operand_spec()])
  def csr(x, m):
    return tf.nn.relu(sparse_kernels.csr_dense(x, m, units) + bias)

  @tf.function(input_signature=[matrix])
  def empty(x):
    return x[:1, :1]

  k = tf.constant(kernel)
  operands = [sparse_kernels.operand(np.ascontiguousarray(p.T)) for p in probes]
  return [lambda: dense(rows, k).numpy(), lambda: empty(rows).numpy()] + [
      lambda m=m: csr(rows, m).numpy() for m in operands]


def crossover_density(inputs: int, units: int, path: str = 'mlp',
                      rows: int | None = None) -> float:
  """Measures the density below which CSR takes at most `REQUIRED_GAIN` of dense.

  For the layer's shape (on the MLP path its shape class), on `path`'s
  kernels and rows per call (see the module docstring; on the graph path,
  `rows` examples per call if given), afresh on every call.

  Raises:
    TfpruneError: `path` is not one of `PATHS`, or `rows` is given for the
      MLP path (its chunks are `inference.CHUNK`) or is below 1.
  """
  if path not in PATHS:
    raise TfpruneError(f'path {path!r} is not one of {", ".join(PATHS)}: '
                       'choose the kernels to calibrate')
  if rows is not None and (path != 'graph' or rows < 1):
    raise TfpruneError(f'rows {rows} apply to the graph path only and must be '
                       'at least 1: give rows with path graph, or none')
  if path == 'mlp':
    inputs, units = _shape_class(inputs), _shape_class(units)
  rng = np.random.default_rng(0)
  if path == 'mlp':
    n = PROBE_CHUNKS * inference.CHUNK
  else:
    n = rows or rows_per_call(path)
  rows = tf.constant(rng.random((n, inputs), dtype=np.float32))
  kernel = rng.standard_normal((inputs, units), dtype=np.float32)
  uniform = rng.random(kernel.shape, dtype=np.float32)
  probes = [np.where(uniform < d, kernel, 0) for d in PROBE_DENSITIES[path]]
  runs = (_mlp_runs if path == 'mlp' else _graph_runs)(kernel, probes, rows)
  for fn in runs:
    fn()  # warm-up (and tracing)
  # Interleaved rounds, median of each: load changes hit every kernel alike,
  # and one lucky or unlucky run does not decide (the fastest of two rounds
  # did: it once put the crossover of 1000x500 at 95% density). Small shapes
  # run in a millisecond and get more rounds, up to about PROBE_SECONDS.
  seconds = timers.seconds
  first = [seconds(fn) for fn in runs]
  count = int(np.clip(PROBE_SECONDS / max(sum(first), 1e-6), PROBE_ROUNDS, 50))
  rounds = [first] + [[seconds(fn) for fn in runs] for _ in range(count - 1)]
  t_dense, t_call, t0, t1 = np.median(rounds, axis=0)
  # The dense call's fixed cost is a large share of a small probe but not of
  # a real batch: compare the per-example work only. On the graph path both
  # kernels pay the cost of a call (timed on an empty one) in the probe, and
  # neither does inside a graph.
  t_dense -= t_call
  if path == 'graph':
    t0, t1 = t0 - t_call, t1 - t_call
  (d0, d1), target = PROBE_DENSITIES[path], REQUIRED_GAIN * t_dense
  slope = (t1 - t0) / (d1 - d0)
  if slope <= 0:
    return d0 if t0 <= target else 0.0
  return float(np.clip(d0 + (target - t0) / slope, 0.0, 1.0))
