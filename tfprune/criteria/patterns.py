"""N:M semi-structured sparsity: in every group of M consecutive weights, keep N.

A group runs along a kernel's input axis, separately for each output unit: a
dense kernel (in, out) is grouped along `in`; a conv kernel (h, w, in, out)
along its flattened (h, w, in) axis, per output channel. Within a group the N
weights of highest score are kept (ties: the lower index is pruned first, as
in `pruning`). When the input axis is not a multiple of M, its last group of
r < M weights keeps min(N, r).

Pure functions: arrays in, a new boolean mask out (True where kept).
"""

import dataclasses

import numpy as np

from tfprune.errors import TfpruneError


@dataclasses.dataclass(frozen=True)
class Pattern:
  """Keep `n` of every `m` consecutive weights along the input axis."""
  n: int
  m: int

  def __post_init__(self):
    if not 1 <= self.n <= self.m:
      raise TfpruneError(
          f'pattern {self.n}:{self.m} is not N:M with 1 <= N <= M: pass e.g. '
          '--pattern=2:4')

  @property
  def name(self) -> str:
    return f'{self.n}:{self.m}'

  @property
  def level(self) -> float:
    """The percentage pruned when the input axis is a multiple of M."""
    return 100 * (self.m - self.n) / self.m


def parse(text: str) -> Pattern:
  """Reads 'N:M' (e.g. '2:4') into a `Pattern`.

  Raises:
    TfpruneError: not two integers N:M with 1 <= N <= M.
  """
  parts = str(text).split(':')
  try:
    n, m = (int(p) for p in parts)
  except ValueError:
    raise TfpruneError(
        f'pattern {text!r} is not N:M: pass two integers such as --pattern=2:4'
    ) from None
  return Pattern(n, m)


def nm_mask(scores: np.ndarray, pattern: Pattern, unit_axis: int = -1) -> np.ndarray:
  """Keeps the `pattern.n` highest scores of every group of `pattern.m`.

  Args:
    scores: a kernel's scores (e.g. |w|); groups run along the flattened axes
      other than `unit_axis`, separately for each unit.
    pattern: N:M.
    unit_axis: the axis of output units (last for dense and conv kernels).

  Returns:
    A new boolean mask shaped like `scores`, True where kept.
  """
  scores = np.asarray(scores)
  if scores.ndim < 2:
    raise TfpruneError(
        f'an N:M pattern needs a kernel with an input and a units axis, got '
        f'shape {scores.shape}')
  moved = np.moveaxis(scores, unit_axis, -1)
  flat = moved.reshape(-1, moved.shape[-1])  # (inputs, units)
  inputs = flat.shape[0]
  keep = np.zeros(flat.shape, dtype=bool)
  for start in range(0, inputs, pattern.m):
    group = flat[start:start + pattern.m]
    size = len(group)
    kept = min(pattern.n, size)
    # Ascending stable order puts the lowest first, lower indices first among
    # ties: the first size - kept are pruned, exactly `pruning`'s rule.
    order = np.argsort(group, axis=0, kind='stable')[size - kept:]
    keep[start + order, np.arange(flat.shape[1])[None, :]] = True
  return np.moveaxis(keep.reshape(moved.shape), -1, unit_axis)
