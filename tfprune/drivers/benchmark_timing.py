"""The timing half of the benchmark: each pruned network against the dense one, paired.

`time_rows` times every benchmark point in this process, at each batch size:

- a point whose method removes channels: its compacted Keras model against
  the dense Keras model (`keras`), each through one `tf.function`;
- any other point: its masked graph against the dense graph through the
  graph evaluator (`graph`), with the kernels the evaluator's rule picks;
  where the graph has a Dense layer CSR can compute (`runtime.csr_gain`),
  also the same graph with those layers on CSR against all dense (`csr_`
  keys): whether CSR pays there.

Each pair runs in `ROUNDS` alternating blocks per side (`paired_timing.pair`);
speed-ups are ratios of medians, and each side's fastest call is kept too.
The dense network against an identical copy of itself (an A-vs-A control,
once per timed kind and batch size) gives the noise: a speed-up within the
factor that the control's rounds strayed from 1x is `within_noise`.
Nothing here is written to a results file: timings go to `graph_timing.json`.
"""

from typing import Sequence

import numpy as np
import tensorflow as tf

from tfprune.graph import evaluator
from tfprune.graph.ir import Graph
from tfprune.keras_io import build
from tfprune.runtime import csr_gain
from tfprune.runtime import paired_timing

# Alternating blocks per side: one call of a small network is short and the
# shared machine's load changes within seconds (with 2 blocks, one slow block
# decided a ratio; see docs/results/speed-size.md).
ROUNDS = 6


def _keras_fn(graph: Graph, x: np.ndarray):
  model = build.to_keras(graph, 'tf_keras')
  call = tf.function(lambda t: model(t, training=False))
  tensor = tf.constant(x)
  return lambda: call(tensor).numpy()


def _graph_fn(graph: Graph, x: np.ndarray):
  run = evaluator.Evaluator(graph)
  return lambda: run.predict(x)


MAKERS = {'keras': _keras_fn, 'graph': _graph_fn}


def _figures(timed: paired_timing.Pair, noise: float, b: int,
             prefix: str = '') -> dict:
  """One pair's figures at batch `b`, keys prefixed by `prefix`."""
  return {f'{prefix}dense_seconds_{b}': timed.baseline_median,
          f'{prefix}seconds_{b}': timed.candidate_median,
          f'{prefix}speedup_{b}': timed.speedup,
          f'{prefix}dense_min_seconds_{b}': timed.baseline_min,
          f'{prefix}min_seconds_{b}': timed.candidate_min,
          f'{prefix}speedup_of_min_{b}': timed.speedup_of_min,
          f'{prefix}noise_{b}': noise,
          f'{prefix}within_noise_{b}': paired_timing.within_noise(
              timed.speedup, noise)}


def time_rows(graph: Graph, points: Sequence[tuple[str, float, bool, Graph]],
              inputs: dict[int, np.ndarray], runs: int, min_seconds: float
              ) -> tuple[list[dict], list[dict]]:
  """Times each point against the dense `graph`, at each batch size.

  Args:
    graph: the dense network.
    points: (method, k, compacted, graph) per point: `compacted` (the method
      removes channels) times the graph as a Keras model, else through the
      graph evaluator.
    inputs: batch size -> a batch of that many examples.
    runs: timed calls per side, at least.
    min_seconds: each side of a pair runs at least this long.

  Returns:
    One timing entry per point, and the A-vs-A controls.
  """
  dense = {timed: {b: make(graph, x) for b, x in inputs.items()}
           for timed, make in MAKERS.items()}
  controls = {}

  def pair(baseline, candidate) -> paired_timing.Pair:
    return paired_timing.pair(baseline, candidate, runs, min_seconds, ROUNDS)

  def noise(timed: str, b: int) -> float:
    if (timed, b) not in controls:
      controls[timed, b] = pair(dense[timed][b], MAKERS[timed](graph, inputs[b]))
    return controls[timed, b].noise()

  timings = []
  for method, k, compacted, pruned in points:
    timed = 'keras' if compacted else 'graph'
    entry = {'method': method, 'k': k, 'timed': timed}
    csr_kinds = None if compacted else csr_gain.csr_kinds(pruned)
    if csr_kinds:
      entry['csr_kernels'] = '+'.join(csr_kinds)
    for b, x in inputs.items():
      level = noise(timed, b)
      entry.update(_figures(pair(dense[timed][b], MAKERS[timed](pruned, x)),
                            level, b))
      if csr_kinds:
        entry.update(_figures(pair(*csr_gain.dense_and_csr(pruned, x)), level,
                              b, 'csr_'))
    timings.append(entry)
  return timings, [{'timed': timed, 'batch': b, 'speedup': c.speedup,
                    'round_ratios': list(c.round_ratios), 'noise': c.noise()}
                   for (timed, b), c in controls.items()]
