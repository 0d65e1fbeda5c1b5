"""Structured pruning: silence whole units (filters, neurons), then remove them.

`prune_units` zeroes, for every pruned unit, its kernel slice, its bias and
its batch-norm gamma and beta, so the unit outputs exactly 0 after ReLU (and
after max-pooling) for every input: this is the masked network.

`compact` then physically removes every such silent unit of a hidden layer
together with the matching input channels of the next layer: the next conv
kernel's input-channel slice, or, after a flatten, the rows of the next dense
kernel that read that channel at every position. The compact network computes
the same logits as the masked one, with smaller kernels. The output layer's
units are never removed, and a hidden layer keeps at least one unit.

In a network with residual adds (ResNet-18) a layer's output may feed
several layers (all of them lose the matching input channels) but not a
residual add: a filter whose output is added to a shortcut, or that adds a
shortcut itself, never outputs 0, and removing it would change the sum's
channels. Such layers are refused by `unit_keep` and `prune_units` with a
one-line error naming the layer, and `compact` leaves them whole;
`prunable_layers` lists the layers that can be pruned (in ResNet-18 the first
conv of each basic block, whose filters feed only the block's second conv).
"""

import dataclasses
from typing import Sequence

import numpy as np

from tfprune.criteria import pruning
from tfprune.errors import TfpruneError
from tfprune.graph import layers as layers_lib
from tfprune.graph.network import Network


def prunable_layers(network: Network) -> list[int]:
  """0-based hidden layers whose units `compact` can remove.

  Every hidden layer of a chain; in a network with residual adds, those that
  neither add a residual nor feed one.
  """
  return [i for i in range(network.num_layers - 1)
          if _residual_reason(network, i) is None]


def _residual_reason(network: Network, i: int) -> str | None:
  """Why 0-based layer `i`'s units cannot be removed, or None."""
  if network.specs is None:
    return None
  spec = network.specs[i]
  if spec.residual is not None:
    return (f'it adds the output of layer {spec.residual} (a residual) before '
            'its ReLU, so a pruned filter would still output the shortcut')
  users = layers_lib.residual_users(network.specs, i + 1)
  if users:
    return (f'its output feeds the residual add of layer {users[0] + 1}, '
            'whose channels must stay aligned')
  return None


def _check_layers(network: Network, layers) -> None:
  for i in layers:
    reason = _residual_reason(network, i)
    if reason is not None:
      raise TfpruneError(
          f'layer {i + 1} cannot be pruned structurally: {reason}; prune only '
          f'structured.prunable_layers ({[j + 1 for j in prunable_layers(network)]}'
          ' as 1-based layers)')


def unit_keep(network: Network, k: float, layers: Sequence[int]
              ) -> list[np.ndarray | None]:
  """Per layer, the units kept by L1-norm structured pruning at level k.

  Returns:
    For each layer in `layers`, a boolean vector over its units (False:
    pruned); None for the other layers.

  Raises:
    TfpruneError: k = 100 (it would remove every unit of a layer), or a
      layer in `layers` adds or feeds a residual.
  """
  _check_layers(network, layers)
  out = []
  for i, kernel in enumerate(network.kernels):
    if i in layers:
      mask = pruning.unit_l1_mask(kernel, k)
      out.append(mask.reshape(-1, kernel.shape[-1]).any(axis=0))
    else:
      out.append(None)
  return out


def prune_units(network: Network, keep: Sequence[np.ndarray | None]) -> Network:
  """The masked network: pruned units' kernel, bias, gamma and beta set to 0.

  Raises:
    TfpruneError: a mask is given for a layer that adds or feeds a residual.
  """
  if len(keep) != network.num_layers:
    raise TfpruneError(
        f'{len(keep)} unit masks for {network.num_layers} layers: give one per layer')
  _check_layers(network, [i for i, units in enumerate(keep)
                          if units is not None and not np.all(units)])
  kernels, biases = list(network.kernels), list(network.biases)
  norms = list(network.norms or (None,) * network.num_layers)
  for i, units in enumerate(keep):
    if units is None:
      continue
    drop = ~np.asarray(units, dtype=bool)
    kernels[i] = np.where(drop, np.float32(0), kernels[i])
    biases[i] = np.where(drop, np.float32(0), biases[i])
    if norms[i] is not None:
      norm = np.array(norms[i])
      norm[:2, drop] = 0.0  # gamma and beta: the normalised output is 0
      norms[i] = norm
  if network.specs is None:
    return Network(tuple(kernels), tuple(biases))
  return dataclasses.replace(network, kernels=tuple(kernels),
                             biases=tuple(biases), norms=tuple(norms))


def silent_units(kernel: np.ndarray, bias: np.ndarray,
                 norm: np.ndarray | None, epsilon: float | None,
                 relu: bool = True) -> np.ndarray:
  """Units whose output (after ReLU, if `relu`) is exactly 0 for every input.

  A unit with an all-zero kernel slice outputs the constant relu(bn(bias));
  it is silent when that constant is 0: bias <= 0 without batch norm, gamma
  and beta both 0, or a normalised constant safely below 0. Without ReLU
  only an exact 0 (zero bias, or gamma and beta 0) is silent.
  """
  dead = ~kernel.reshape(-1, kernel.shape[-1]).any(axis=0)
  if norm is None:
    return dead & ((bias <= 0) if relu else (bias == 0))
  gamma, beta, mean, variance = np.asarray(norm, dtype=np.float64)
  value = (bias - mean) * gamma / np.sqrt(variance + epsilon) + beta
  # A margin, so that float32 rounding in the forward pass cannot make it > 0.
  negative = (value < -1e-3) if relu else np.zeros_like(dead)
  return dead & (((gamma == 0) & (beta == 0)) | negative)


def compact(network: Network) -> Network:
  """Removes the silent units of the hidden layers (see the module docstring).

  Args:
    network: a network with layer specs, e.g. from `prune_units`.

  Returns:
    An equivalent network with fewer units; biases are kept. Layers that add
    or feed a residual keep all their units.
  """
  if network.specs is None:
    raise TfpruneError('structured.compact needs a network with layer specs: '
                       'use tfprune.transforms.compaction for dense chains')
  kernels, biases = list(network.kernels), list(network.biases)
  norms = list(network.norms)
  shapes = layers_lib.output_shapes(network.specs, [k.shape for k in kernels],
                                    network.input_shape)
  for i in prunable_layers(network):
    spec = network.specs[i]
    keep = ~silent_units(kernels[i], biases[i], norms[i], spec.norm_epsilon,
                         spec.relu)
    if not keep.any():
      keep[0] = True  # a layer cannot have zero width; this unit outputs 0
    kernels[i] = kernels[i][..., keep]
    biases[i] = biases[i][keep]
    if norms[i] is not None:
      norms[i] = norms[i][:, keep]
    for j in layers_lib.consumers(network.specs, i + 1):
      kernels[j] = _drop_inputs(kernels[j], network.specs[j], shapes[i], keep)
  return dataclasses.replace(network, kernels=tuple(kernels),
                             biases=tuple(biases), norms=tuple(norms))


def _drop_inputs(kernel: np.ndarray, spec: layers_lib.LayerSpec,
                 input_shape: tuple[int, ...], keep: np.ndarray) -> np.ndarray:
  if spec.kind == 'conv':
    return kernel[:, :, keep, :]
  if spec.flatten and len(input_shape) == 3:
    # Flattening (h, w, c) channels-last puts channel j at rows p * c + j.
    positions = input_shape[0] * input_shape[1]
    rows = kernel.reshape(positions, input_shape[2], -1)[:, keep, :]
    return rows.reshape(-1, kernel.shape[-1])
  return kernel[keep, :]
