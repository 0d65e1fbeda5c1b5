"""Silent channels: the channels a pruned graph no longer uses, and the graph without them.

After pruning (and fine-tuning under masks) a pruned unit's producing kernel
slices are all zero, so it outputs a constant; when that constant is exactly
0 where the unit is read (a zero bias, or a non-positive one before a ReLU),
the unit is *silent*: it adds nothing to any consumer. `find` lists the
silent channels of every prunable dependency group (`groups`), keeping at
least one channel per group; `compact` removes them with
`graph_compaction.compact`, which then has nothing to fold, so every other
array keeps its values. A zero-kernel channel with a non-zero constant is
kept: removing it would change the consumers' biases.
"""

import numpy as np

from tfprune.graph import evaluator
from tfprune.graph.ir import Graph
from tfprune.transforms import channel_pruning
from tfprune.transforms import graph_compaction
from tfprune.graph import groups as groups_lib


def _zero_kernels(graph: Graph, group: groups_lib.Group) -> np.ndarray:
  """Channels of `group` whose producing kernel slices are all zero."""
  zero = np.ones(group.size, dtype=bool)
  for s in group.slices:
    if s.role == groups_lib.PRODUCER and s.param == 'kernel':
      zero &= ~np.any(channel_pruning.channel_rows(graph, s) != 0, axis=(1, 2))
  return zero


def find(graph: Graph, analysis: groups_lib.Analysis | None = None
         ) -> dict[str, np.ndarray]:
  """The silent channels of each prunable group: group name -> indices.

  A channel is silent when its producing kernel slices are all zero and its
  value is exactly 0 at the input of every consumer (read on two random
  inputs: with zero kernels the value does not depend on the input). If every
  channel of a group is silent, the first is kept (a layer needs a width).
  """
  analysis = analysis or groups_lib.analyse(graph)
  candidates = {g.name: _zero_kernels(graph, g)
                for g in channel_pruning.chosen(analysis)}
  consumers = [(g.name, s) for g in channel_pruning.chosen(analysis)
               for s in g.slices
               if s.role == groups_lib.CONSUMER and candidates[g.name].any()]
  sources = sorted({graph.node(s.node).inputs[0] for _, s in consumers})
  rng = np.random.default_rng(0)
  x = [rng.standard_normal((2, *shape)).astype(np.float32)
       for shape in graph.input_shapes]
  values = evaluator.node_outputs(graph, x, sources) if sources else {}
  for name, s in consumers:
    tensor = values[graph.node(s.node).inputs[0]]
    # Channel c sits at positions s.indices[c] of the consumer's input.
    at = tensor.reshape(-1, tensor.shape[-1])[:, s.indices]  # (n, C, r)
    candidates[name] &= ~np.any(at != 0, axis=(0, 2))
  out = {}
  for name, silent in candidates.items():
    if silent.all():
      silent[0] = False
    out[name] = np.flatnonzero(silent)
  return out


def compact(graph: Graph) -> Graph:
  """`graph` without its silent channels (`find`); computes the same outputs."""
  analysis = groups_lib.analyse(graph)
  return graph_compaction.compact(graph, analysis, find(graph, analysis))
