"""A feed-forward network of dense layers held as plain numpy arrays.

This is what the `.npy` weight folder stores and what the pruning functions
and the pure-tensor evaluator work on. Layer `i` (1-based, as in the file
names `weight-i.npy`) computes `x @ kernels[i-1] + biases[i-1]`, followed by
ReLU on every layer but the last.
"""

import dataclasses
from typing import Sequence

import numpy as np

from tfprune.errors import TfpruneError


@dataclasses.dataclass(frozen=True)
class Network:
  """Kernels (in, out) and biases (out,) of a chain of dense layers.

  The arrays are read-only float32 copies: pruning returns new networks.
  """
  kernels: tuple[np.ndarray, ...]
  biases: tuple[np.ndarray, ...]

  def __post_init__(self):
    if not self.kernels:
      raise TfpruneError('a network needs at least one layer')
    if len(self.kernels) != len(self.biases):
      raise TfpruneError(
          f'{len(self.kernels)} kernels but {len(self.biases)} biases: '
          'give one bias per layer')
    object.__setattr__(self, 'kernels', _frozen(self.kernels))
    object.__setattr__(self, 'biases', _frozen(self.biases))
    check_shapes([k.shape for k in self.kernels], [b.shape for b in self.biases])

  @property
  def num_layers(self) -> int:
    return len(self.kernels)

  @property
  def input_dim(self) -> int:
    return self.kernels[0].shape[0]

  @property
  def output_dim(self) -> int:
    return self.kernels[-1].shape[1]

  @property
  def num_params(self) -> int:
    return sum(k.size + b.size for k, b in zip(self.kernels, self.biases))

  def masked(self, masks: Sequence[np.ndarray | None]) -> 'Network':
    """Returns a copy whose kernel `i` is multiplied by `masks[i]` (None: kept)."""
    if len(masks) != self.num_layers:
      raise TfpruneError(
          f'{len(masks)} masks for {self.num_layers} layers: give one per layer')
    kernels = tuple(k if m is None else np.where(m, k, np.float32(0))
                    for k, m in zip(self.kernels, masks))
    return Network(kernels, self.biases)


def check_shapes(kernel_shapes: Sequence[tuple[int, ...]],
                 bias_shapes: Sequence[tuple[int, ...]]) -> None:
  """Checks that the layers chain: each kernel is 2-D and feeds the next.

  Raises:
    TfpruneError: naming the first layer (1-based) whose shape is wrong.
  """
  for i, (ks, bs) in enumerate(zip(kernel_shapes, bias_shapes), start=1):
    if len(ks) != 2 or min(ks) < 1:
      raise TfpruneError(
          f'layer {i}: kernel shape {tuple(ks)} is not (inputs, units): '
          'a dense kernel is a non-empty 2-D array')
    if tuple(bs) != (ks[1],):
      raise TfpruneError(
          f'layer {i}: bias shape {tuple(bs)} does not match the kernel\'s '
          f'{ks[1]} units: expected ({ks[1]},)')
    if i > 1 and ks[0] != kernel_shapes[i - 2][1]:
      raise TfpruneError(
          f'layer {i}: kernel {tuple(ks)} takes {ks[0]} inputs but layer {i - 1} '
          f'has {kernel_shapes[i - 2][1]} units: the files come from different '
          'networks')


def _frozen(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
  out = []
  for a in arrays:
    a = np.array(a, dtype=np.float32, copy=True)
    a.setflags(write=False)
    out.append(a)
  return tuple(out)
