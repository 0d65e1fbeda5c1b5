"""Erdős–Rényi-kernel (ERK) densities, as in RigL (Evci et al., ICML 2020).

The density of layer l is proportional to (sum of its kernel's dimensions) /
(product of them): small layers and layers with few inputs per output stay
denser. The common factor is chosen so the overall density matches the
target; a layer whose density would exceed 1 is kept dense and the factor is
solved again over the others.
"""

from typing import Mapping, Sequence

import numpy as np

from tfprune.allocation import counts as counts_lib
from tfprune.criteria import pruning


def ratio(shape: Sequence[int]) -> float:
  """ERK's (sum of dims) / (product of dims) of a kernel of `shape`."""
  return float(np.sum(shape)) / float(np.prod(shape))


def densities(shapes: Mapping[str, Sequence[int]], k: float) -> dict[str, float]:
  """ERK's real-valued density per layer for an overall level of k percent.

  Returns:
    {name: density in [0, 1]}; sum(density · size) = (1 - k/100) · total size.
  """
  k = pruning.check_level(k)
  sizes = {n: int(np.prod(s)) for n, s in shapes.items()}
  keep = (1 - k / 100) * sum(sizes.values())
  dense: set[str] = set()
  while True:
    rest = [n for n in shapes if n not in dense]
    budget = keep - sum(sizes[n] for n in dense)
    mass = sum(sizes[n] * ratio(shapes[n]) for n in rest)
    scale = budget / mass if mass else 0.0
    over = {n for n in rest if scale * ratio(shapes[n]) > 1}
    if not over:
      break
    dense |= over
  return {n: 1.0 if n in dense else scale * ratio(shapes[n]) for n in shapes}


def prune_counts(shapes: Mapping[str, Sequence[int]], k: float) -> dict[str, int]:
  """ERK's weights to prune per layer, summing to exactly floor(k·N/100)."""
  sizes = [int(np.prod(s)) for s in shapes.values()]
  real = [size * (1 - d) for size, d in zip(sizes, densities(shapes, k).values())]
  total = pruning.prune_count(k, sum(sizes))
  return dict(zip(shapes, counts_lib.apportion(real, total, sizes)))
