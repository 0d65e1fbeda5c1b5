"""The timing probe that calibrates the dense/CSR rule (`sparse_kernels.MAX_CSR_DENSITY`).

`crossover_density(inputs, units, rows)` measures, for one Dense kernel
shape, the density below which a CSR layer takes at most `REQUIRED_GAIN` of
the dense layer's time, on the graph evaluator's kernels: calls of `rows`
examples (default `sparse_kernels.GRAPH_CHUNK_ROWS`, 128) in row layout,
each layer inside a `tf.function`, the CSR one through
`sparse_kernels.csr_dense` (transposes included).

The dense layer is timed against the CSR layer at two densities, 1% and 5%
(the crossover lies below 5% at 128 rows; a fit from higher densities would
only extrapolate there), fitted linearly in the density. The fixed cost of
a call (an empty call, timed alike) is taken out of both kernels, as a layer
inside a graph does not pay it. The exact shape is probed, as 3136x128 and
its power-of-two class 4096x128 measured apart (0.76-1.10 against 0.71-0.88
of the dense time at 1-2% density, 128 rows). Only
`experiments/calibrate_kernels.py` calls it: the rule itself never times
anything, so its choice never depends on the load of the machine.
"""

import numpy as np
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.graph import sparse_kernels
from tfprune.runtime import timers

PROBE_DENSITIES = (0.01, 0.05)
PROBE_ROUNDS = 5
PROBE_SECONDS = 0.2
REQUIRED_GAIN = 0.8


def _runs(kernel, probes, rows):
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


def crossover_density(inputs: int, units: int,
                      rows: int = sparse_kernels.GRAPH_CHUNK_ROWS) -> float:
  """Measures the density below which CSR takes at most `REQUIRED_GAIN` of dense.

  For an (inputs, units) kernel applied to calls of `rows` examples, afresh
  on every call.

  Raises:
    TfpruneError: `rows` is below 1.
  """
  if rows < 1:
    raise TfpruneError(f'rows {rows} must be at least 1: give the examples '
                       'per call, e.g. 128')
  rng = np.random.default_rng(0)
  batch = tf.constant(rng.random((rows, inputs), dtype=np.float32))
  kernel = rng.standard_normal((inputs, units), dtype=np.float32)
  uniform = rng.random(kernel.shape, dtype=np.float32)
  probes = [np.where(uniform < d, kernel, 0) for d in PROBE_DENSITIES]
  runs = _runs(kernel, probes, batch)
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
  # Both kernels pay the cost of a call (timed on an empty one) in the probe,
  # and neither does inside a graph: compare the per-example work only.
  t_dense, t0, t1 = t_dense - t_call, t0 - t_call, t1 - t_call
  (d0, d1), target = PROBE_DENSITIES, REQUIRED_GAIN * t_dense
  slope = (t1 - t0) / (d1 - d0)
  if slope <= 0:
    return d0 if t0 <= target else 0.0
  return float(np.clip(d0 + (target - t0) / slope, 0.0, 1.0))
