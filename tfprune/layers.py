"""Layer kinds of a `Network` beyond a dense chain: conv, pooling, flatten, batch norm.

A `LayerSpec` says how one weight layer (a kernel and its bias) computes:

  [flatten the input] -> conv2d or matmul, + bias -> [batch norm] ->
  ReLU (every layer but the last) -> [max-pool]

Conv kernels are (height, width, in_channels, filters) as in Keras, images
are channels last. Batch-norm parameters are stored per layer as one (4, units)
array with rows gamma, beta, moving mean and moving variance; the spec holds
its epsilon (None: the layer has no batch norm). A network without specs is a
dense chain, exactly as before.
"""

import dataclasses
import math
from typing import Sequence

from tfprune.errors import TfpruneError

KINDS = ('dense', 'conv')
PADDINGS = ('valid', 'same')
NORM_ROWS = ('gamma', 'beta', 'moving_mean', 'moving_variance')


@dataclasses.dataclass(frozen=True)
class LayerSpec:
  """How one weight layer computes (see the module docstring).

  Attributes:
    kind: 'dense' or 'conv'.
    strides: conv stride (both axes).
    padding: conv padding, 'valid' or 'same'.
    pool: max-pool size and stride after the activation (1: none).
    flatten: flatten the input before this (dense) layer.
    norm_epsilon: batch-norm epsilon, or None when there is no batch norm.
  """
  kind: str = 'dense'
  strides: int = 1
  padding: str = 'valid'
  pool: int = 1
  flatten: bool = False
  norm_epsilon: float | None = None

  def __post_init__(self):
    if self.kind not in KINDS:
      raise TfpruneError(f'unknown layer kind {self.kind!r}: choose one of {KINDS}')
    if self.padding not in PADDINGS:
      raise TfpruneError(
          f'unknown padding {self.padding!r}: choose one of {PADDINGS}')
    if self.strides < 1 or self.pool < 1:
      raise TfpruneError(
          f'strides and pool must be at least 1, got {self.strides}, {self.pool}')
    if self.kind == 'dense' and (self.strides != 1 or self.pool != 1):
      raise TfpruneError('a dense layer has no stride or pooling: set them to 1')

  def to_json(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, entry: dict) -> 'LayerSpec':
    """The spec saved by `to_json`; unknown keys are refused."""
    try:
      return cls(**entry)
    except TypeError as e:
      raise TfpruneError(f'bad layer spec {entry}: {e}') from None


def _conv_size(size: int, kernel: int, strides: int, padding: str) -> int:
  if padding == 'same':
    return math.ceil(size / strides)
  return (size - kernel) // strides + 1


def output_shapes(specs: Sequence[LayerSpec],
                  kernel_shapes: Sequence[tuple[int, ...]],
                  input_shape: Sequence[int]) -> list[tuple[int, ...]]:
  """The per-example output shape of every layer, after pooling.

  Args:
    specs: one spec per layer.
    kernel_shapes: (h, w, in, out) for conv layers, (in, out) for dense ones.
    input_shape: shape of one input example, e.g. (28, 28, 1).

  Raises:
    TfpruneError: a kernel does not fit its input, naming the 1-based layer.
  """
  shape = tuple(int(d) for d in input_shape)
  out = []
  for i, (spec, ks) in enumerate(zip(specs, kernel_shapes), start=1):
    ks = tuple(ks)
    if spec.flatten:
      shape = (math.prod(shape),)
    if spec.kind == 'conv':
      if len(ks) != 4 or len(shape) != 3:
        raise TfpruneError(
            f'layer {i}: a conv layer needs a 4-D kernel and an (h, w, c) '
            f'input, got kernel {ks} on input {shape}: the files come from '
            'different networks')
      if ks[2] != shape[2]:
        raise TfpruneError(
            f'layer {i}: conv kernel {ks} takes {ks[2]} channels but its input '
            f'has {shape[2]}: the files come from different networks')
      h, w = (_conv_size(s, k, spec.strides, spec.padding)
              for s, k in zip(shape[:2], ks[:2]))
      if h < 1 or w < 1:
        raise TfpruneError(
            f'layer {i}: kernel {ks} is larger than its input {shape}: use '
            'larger images or weights made for them')
      shape = (h // spec.pool, w // spec.pool, ks[3])
    else:
      if len(ks) != 2 or len(shape) != 1 or ks[0] != shape[0]:
        raise TfpruneError(
            f'layer {i}: dense kernel {ks} does not fit its input of shape '
            f'{shape}: the files come from different networks')
      shape = (ks[1],)
    if min(shape) < 1:
      raise TfpruneError(f'layer {i}: output shape {shape} is empty')
    out.append(shape)
  return out


def positions(specs: Sequence[LayerSpec],
              kernel_shapes: Sequence[tuple[int, ...]],
              input_shape: Sequence[int]) -> list[int]:
  """Where each layer's kernel is applied: h * w (before pooling) or 1 (dense).

  A layer's multiply-adds per example are its kernel size times this.
  """
  output_shapes(specs, kernel_shapes, input_shape)  # validates the chain
  shape = tuple(int(d) for d in input_shape)
  out = []
  for spec, ks in zip(specs, kernel_shapes):
    if spec.flatten:
      shape = (math.prod(shape),)
    if spec.kind == 'conv':
      h, w = (_conv_size(s, k, spec.strides, spec.padding)
              for s, k in zip(shape[:2], ks[:2]))
      out.append(h * w)
      shape = (h // spec.pool, w // spec.pool, ks[3])
    else:
      out.append(1)
      shape = (ks[1],)
  return out
