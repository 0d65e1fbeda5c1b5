"""Layer kinds of a weight folder beyond a dense chain: conv, pooling, batch norm, DAGs.

A `LayerSpec` says how one weight layer (a kernel and its bias) computes:

  read the output of layer `source` (default: the previous layer; 0: the
  network input) -> [flatten | global average pool] -> conv2d or matmul,
  + bias -> [batch norm] -> [+ the output of layer `residual`] ->
  ReLU (if `relu`; never on the last layer) -> [max-pool]

Conv kernels are (height, width, in_channels, filters) as in Keras, images
are channels last. Batch-norm parameters are stored per layer as one (4, units)
array with rows gamma, beta, moving mean and moving variance; the spec holds
its epsilon (None: the layer has no batch norm). A folder without specs is a
dense chain (the original layout); specs at the defaults of `source`,
`residual`, `relu` and `global_pool` are the sequential chain of conv and
dense layers, whose manifests do not mention these fields.

A ResNet basic block of layers 5 (conv1), 6 (1x1 projection shortcut) and 7
(conv2), reading the output of layer 4, is then: 5 = conv-BN-ReLU (source 4,
the previous layer); 6 = conv-BN with `source=4, relu=False`; 7 =
conv-BN-add-ReLU with `source=5, residual=6` (an identity shortcut has
`residual=4` instead). Layer numbers are 1-based, as in the weight files, and
a layer only reads layers before it. `output_shapes` checks the whole graph.
"""

import dataclasses
import math
from typing import Sequence

from tfprune import registry
from tfprune.errors import TfpruneError

KINDS = ('dense', 'conv')
PADDINGS = ('valid', 'same')
NORM_ROWS = ('gamma', 'beta', 'moving_mean', 'moving_variance')
# The graph fields and their defaults (a sequential chain); `to_json` leaves
# them out at these values, so chain manifests are unchanged.
GRAPH_DEFAULTS = {'source': None, 'residual': None, 'relu': True,
                  'global_pool': False}


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
    source: 1-based layer whose output this layer reads; 0 is the network
      input, None the previous layer (the input for layer 1).
    residual: 1-based layer (0: the network input) whose output is added
      after the batch norm, before the ReLU; None: no residual add.
    relu: apply ReLU (after the residual add). The last layer never does.
    global_pool: average the (h, w, c) input over h and w before this
      (dense) layer.
  """
  kind: str = 'dense'
  strides: int = 1
  padding: str = 'valid'
  pool: int = 1
  flatten: bool = False
  norm_epsilon: float | None = None
  source: int | None = None
  residual: int | None = None
  relu: bool = True
  global_pool: bool = False

  def __post_init__(self):
    registry.check_choice(self.kind, KINDS, 'layer kind')
    registry.check_choice(self.padding, PADDINGS, 'padding')
    if self.strides < 1 or self.pool < 1:
      raise TfpruneError(
          f'strides and pool must be at least 1, got {self.strides}, {self.pool}')
    if self.kind == 'dense' and (self.strides != 1 or self.pool != 1):
      raise TfpruneError('a dense layer has no stride or pooling: set them to 1')
    for name in ('source', 'residual'):
      value = getattr(self, name)
      if value is not None and (isinstance(value, bool)
                                or not isinstance(value, int) or value < 0):
        raise TfpruneError(
            f'{name} must be a layer number >= 0 (0: the network input) or '
            f'None, got {value!r}')
    if not isinstance(self.relu, bool) or not isinstance(self.global_pool, bool):
      raise TfpruneError(
          f'relu and global_pool must be booleans, got {self.relu!r}, '
          f'{self.global_pool!r}')
    if self.global_pool and (self.kind != 'dense' or self.flatten):
      raise TfpruneError(
          'global_pool averages the input of a dense layer: use kind dense '
          'without flatten')

  def to_json(self) -> dict:
    """The spec as a dict; graph fields at their defaults are left out."""
    return {k: v for k, v in dataclasses.asdict(self).items()
            if k not in GRAPH_DEFAULTS or v != GRAPH_DEFAULTS[k]}

  @classmethod
  def from_json(cls, entry: dict) -> 'LayerSpec':
    """The spec saved by `to_json`; unknown keys are refused."""
    try:
      return cls(**entry)
    except TypeError as e:
      raise TfpruneError(f'bad layer spec {entry}: {e}') from None


def normalized(specs: Sequence[LayerSpec]) -> tuple[LayerSpec, ...]:
  """The specs with every `source` naming the previous layer set to None."""
  return tuple(dataclasses.replace(spec, source=None)
               if spec.source is not None and spec.source == i else spec
               for i, spec in enumerate(specs))


def sources(specs: Sequence[LayerSpec]) -> list[int]:
  """The 1-based layer each layer reads (0: the network input)."""
  return [i if spec.source is None else spec.source
          for i, spec in enumerate(specs)]


def consumers(specs: Sequence[LayerSpec], layer: int) -> list[int]:
  """0-based indices of the layers that read 1-based `layer` as their input."""
  return [i for i, source in enumerate(sources(specs)) if source == layer]


def residual_users(specs: Sequence[LayerSpec], layer: int) -> list[int]:
  """0-based indices of the layers that add 1-based `layer` as their residual."""
  return [i for i, spec in enumerate(specs) if spec.residual == layer]


def _conv_size(size: int, kernel: int, strides: int, padding: str) -> int:
  if padding == 'same':
    return math.ceil(size / strides)
  return (size - kernel) // strides + 1


def _check_reference(i: int, name: str, value: int | None) -> None:
  if value is not None and value >= i:
    raise TfpruneError(
        f'layer {i}: {name} {value} is not an earlier layer: a layer reads '
        f'the network input (0) or layers 1..{i - 1}')


def _trace(specs: Sequence[LayerSpec],
           kernel_shapes: Sequence[tuple[int, ...]],
           input_shape: Sequence[int]) -> list[tuple[tuple[int, ...], ...]]:
  """Per layer: (kernel output shape before pooling, output shape).

  Raises:
    TfpruneError: a reference, kernel or residual does not fit, naming the
      1-based layer.
  """
  if len(specs) != len(kernel_shapes):
    raise TfpruneError(
        f'{len(specs)} specs for {len(kernel_shapes)} kernels: give one spec '
        'per layer')
  outputs = [tuple(int(d) for d in input_shape)]  # outputs[j]: layer j's
  out = []
  for i, (spec, ks, source) in enumerate(
      zip(specs, kernel_shapes, sources(specs)), start=1):
    ks = tuple(ks)
    _check_reference(i, 'source', spec.source)
    _check_reference(i, 'residual', spec.residual)
    shape = outputs[source]
    if spec.flatten:
      shape = (math.prod(shape),)
    if spec.global_pool:
      if len(shape) != 3:
        raise TfpruneError(
            f'layer {i}: global_pool needs an (h, w, c) input, got {shape}: '
            'the files come from different networks')
      shape = shape[2:]
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
      before_pool = (h, w, ks[3])
      shape = (h // spec.pool, w // spec.pool, ks[3])
    else:
      if len(ks) != 2 or len(shape) != 1 or ks[0] != shape[0]:
        raise TfpruneError(
            f'layer {i}: dense kernel {ks} does not fit its input of shape '
            f'{shape}: the files come from different networks')
      before_pool = shape = (ks[1],)
    if spec.residual is not None and outputs[spec.residual] != before_pool:
      raise TfpruneError(
          f'layer {i}: its residual (layer {spec.residual}) has shape '
          f'{outputs[spec.residual]} but the layer computes {before_pool}: '
          'the files come from different networks')
    if min(shape) < 1:
      raise TfpruneError(f'layer {i}: output shape {shape} is empty')
    outputs.append(shape)
    out.append((before_pool, shape))
  return out


def output_shapes(specs: Sequence[LayerSpec],
                  kernel_shapes: Sequence[tuple[int, ...]],
                  input_shape: Sequence[int]) -> list[tuple[int, ...]]:
  """The per-example output shape of every layer, after pooling.

  Args:
    specs: one spec per layer.
    kernel_shapes: (h, w, in, out) for conv layers, (in, out) for dense ones.
    input_shape: shape of one input example, e.g. (28, 28, 1).

  Raises:
    TfpruneError: a kernel does not fit its input, a `source` or `residual`
      is not an earlier layer, or a residual's shape differs from the
      layer's, naming the 1-based layer.
  """
  return [shape for _, shape in _trace(specs, kernel_shapes, input_shape)]


def positions(specs: Sequence[LayerSpec],
              kernel_shapes: Sequence[tuple[int, ...]],
              input_shape: Sequence[int]) -> list[int]:
  """Where each layer's kernel is applied: h * w (before pooling) or 1 (dense).

  A layer's multiply-adds per example are its kernel size times this.
  """
  return [before[0] * before[1] if spec.kind == 'conv' else 1
          for spec, (before, _) in zip(
              specs, _trace(specs, kernel_shapes, input_shape))]
