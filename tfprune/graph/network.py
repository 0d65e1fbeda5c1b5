"""A feed-forward network of dense or conv layers held as plain numpy arrays.

This is what the `.npy` weight folder stores and what the pruning functions
and the pure-tensor evaluator work on. Without `specs`, layer `i` (1-based, as
in the file names `weight-i.npy`) computes `x @ kernels[i-1] + biases[i-1]`,
followed by ReLU on every layer but the last. With `specs` (see `layers`), a
layer may instead be a conv layer, with batch norm, max-pooling, a flatten or
a global average pool, and may read an earlier layer than the previous one
and add a residual (a DAG such as ResNet-18).
"""

import dataclasses
from typing import Sequence

import numpy as np

from tfprune.errors import TfpruneError
from tfprune.graph import folder_layers
from tfprune.graph import layers as layers_lib


@dataclasses.dataclass(frozen=True)
class Network:
  """Kernels and biases of a chain (or, with specs, a DAG) of layers.

  The arrays are read-only float32 copies: pruning returns new networks.

  Attributes:
    kernels: (in, out) dense or (h, w, in, out) conv kernels.
    biases: (out,) per layer.
    specs: one `layers.LayerSpec` per layer, or None for a dense chain; a
      `source` naming the previous layer is stored as None (the default).
    norms: per layer, None or the (4, out) batch-norm parameters (see
      `layers`); only with `specs`.
    input_shape: shape of one input example; required with `specs`.
  """
  kernels: tuple[np.ndarray, ...]
  biases: tuple[np.ndarray, ...]
  specs: tuple[layers_lib.LayerSpec, ...] | None = None
  norms: tuple[np.ndarray | None, ...] | None = None
  input_shape: tuple[int, ...] | None = None

  def __post_init__(self):
    if not self.kernels:
      raise TfpruneError('a network needs at least one layer')
    if len(self.kernels) != len(self.biases):
      raise TfpruneError(
          f'{len(self.kernels)} kernels but {len(self.biases)} biases: '
          'give one bias per layer')
    object.__setattr__(self, 'kernels', _frozen(self.kernels))
    object.__setattr__(self, 'biases', _frozen(self.biases))
    if self.specs is None:
      if self.norms is not None or self.input_shape is not None:
        raise TfpruneError('norms and input_shape need specs: give one '
                           'layers.LayerSpec per layer')
      check_shapes([k.shape for k in self.kernels],
                   [b.shape for b in self.biases])
    else:
      self._check_specs()

  def _check_specs(self) -> None:
    specs = layers_lib.normalized(self.specs)
    norms = tuple(self.norms) if self.norms is not None else (None,) * len(specs)
    if len(specs) != self.num_layers or len(norms) != self.num_layers:
      raise TfpruneError(
          f'{len(specs)} specs and {len(norms)} norms for {self.num_layers} '
          'layers: give one of each per layer')
    if self.input_shape is None:
      raise TfpruneError('a network with specs needs input_shape, e.g. (28, 28, 1)')
    object.__setattr__(self, 'specs', specs)
    object.__setattr__(self, 'input_shape', tuple(int(d) for d in self.input_shape))
    layers_lib.output_shapes(specs, [k.shape for k in self.kernels],
                             self.input_shape)
    for i, (spec, kernel, bias, norm) in enumerate(
        zip(specs, self.kernels, self.biases, norms), start=1):
      units = kernel.shape[-1]
      if bias.shape != (units,):
        raise TfpruneError(
            f'layer {i}: bias shape {bias.shape} does not match the kernel\'s '
            f'{units} units: expected ({units},)')
      expected = None if spec.norm_epsilon is None else (4, units)
      if (None if norm is None else np.shape(norm)) != expected:
        raise TfpruneError(
            f'layer {i}: batch-norm parameters of shape '
            f'{None if norm is None else np.shape(norm)}, expected {expected}: '
            'the files come from different networks')
    object.__setattr__(self, 'norms', tuple(
        None if n is None else _frozen([n])[0] for n in norms))

  @property
  def num_layers(self) -> int:
    return len(self.kernels)

  @property
  def is_dense_chain(self) -> bool:
    """True for a plain chain of dense layers (no specs)."""
    return self.specs is None

  @property
  def input_dim(self) -> int:
    if self.specs is None:
      return self.kernels[0].shape[0]
    return int(np.prod(self.input_shape))

  @property
  def output_dim(self) -> int:
    return self.kernels[-1].shape[-1]

  @property
  def num_params(self) -> int:
    """Kernel, bias and batch-norm entries (moving statistics included)."""
    norms = sum(n.size for n in self.norms or () if n is not None)
    return norms + sum(k.size + b.size for k, b in zip(self.kernels, self.biases))

  def masked(self, masks: Sequence[np.ndarray | None]) -> 'Network':
    """Returns a copy whose kernel `i` is multiplied by `masks[i]` (None: kept)."""
    if len(masks) != self.num_layers:
      raise TfpruneError(
          f'{len(masks)} masks for {self.num_layers} layers: give one per layer')
    kernels = tuple(k if m is None else np.where(m, k, np.float32(0))
                    for k, m in zip(self.kernels, masks))
    return dataclasses.replace(self, kernels=kernels)


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


# The bridge of the modules not yet on graphs (deleted with `Network`).
def to_graph(network: Network, use_biases: bool = True):
  """The graph computing `network` (biases left out if not `use_biases`)."""
  return folder_layers.layers_graph(
      network.kernels,
      network.biases if use_biases else (None,) * network.num_layers,
      network.specs, network.norms, network.input_shape)


def from_graph(graph) -> tuple[Network, list[tuple[str, str | None]]]:
  """The `Network` of a graph a weight folder can hold, and each layer's node names."""
  layers = folder_layers.read(graph)
  names = [(l.weight_node, l.norm_node) for l in layers]
  kernels = tuple(l.kernel for l in layers)
  biases = tuple(l.bias for l in layers)
  if layers[0].spec is None:
    return Network(kernels, biases), names
  return Network(kernels, biases, tuple(l.spec for l in layers),
                 tuple(l.norm for l in layers), graph.input_shape), names
