"""Walking a dense chain on calibration inputs: the checks and the forward steps.

Shared by the data-aware criteria (`reconstruction`: Wanda, OBS) and bias
correction (`bias_correction`): which layers a call prunes (and at which
level each), the calibration batch flattened to the network's inputs, and a
layer's pre-activation and output in float64.
"""

import numbers
from typing import Mapping, Sequence

import numpy as np

from tfprune.criteria import pruning
from tfprune.errors import TfpruneError
from tfprune.graph.network import Network

# Calibration examples that reach the targets on the prebuilt MNIST MLP.
DEFAULT_CALIBRATION_SIZE = 2048


def pre_activation(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray,
                    use_bias: bool) -> np.ndarray:
  """x @ kernel (+ bias), in float64."""
  out = x @ np.asarray(kernel, dtype=np.float64)
  return out + bias if use_bias else out


def layer(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, use_bias: bool,
           relu: bool) -> np.ndarray:
  """A dense layer's output on `x` (ReLU if `relu`), in float64."""
  out = pre_activation(x, kernel, bias, use_bias)
  return np.maximum(out, 0.0) if relu else out


def last_needed(chosen: set[int]) -> int:
  """Layers to walk through: up to and including the last chosen one."""
  return max(chosen) + 1 if chosen else 0


def levels(k, chosen: set[int]) -> dict[int, float]:
  """Each chosen layer's checked level: `k`, or `k[i]` for per-layer levels."""
  if not isinstance(k, Mapping):
    k = pruning.check_level(k)
  return {i: pruning.check_level(pruning.layer_level(k, i)) for i in chosen}


def check_layers(network: Network, layers: Sequence[int]) -> set[int]:
  """The chosen 0-based layers as a set, refusing indices outside the network."""
  chosen = set()
  for i in layers:
    if (isinstance(i, bool) or not isinstance(i, numbers.Integral)
        or not 0 <= i < network.num_layers):
      raise TfpruneError(
          f'layer index {i!r} is not a layer of this {network.num_layers}-layer '
          f'network: pass 0-based indices in 0..{network.num_layers - 1}')
    chosen.add(int(i))
  return chosen


def check_calibration(network: Network, calibration: np.ndarray) -> np.ndarray:
  """The calibration batch flattened to (n, network inputs), checked."""
  x = np.asarray(calibration)
  if x.ndim < 1 or not len(x):
    raise TfpruneError(
        'the calibration data is empty: pass some training examples, e.g. '
        f'{DEFAULT_CALIBRATION_SIZE} of them')
  if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
    raise TfpruneError(
        f'the calibration data holds {x.dtype} values: pass float images')
  x = x.reshape(len(x), -1).astype(np.float64)
  if x.shape[1] != network.input_dim:
    raise TfpruneError(
        f'the network takes {network.input_dim} inputs but the calibration '
        f'examples have {x.shape[1]} values: calibrate on the dataset the '
        'network was trained on')
  if not np.all(np.isfinite(x)):
    raise TfpruneError(
        'the calibration data holds NaN/Inf values: pass finite training '
        'examples')
  return x


def check_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  """A current mask as booleans of the kernel's shape, checked."""
  mask = np.asarray(mask)
  if mask.shape != shape:
    raise TfpruneError(
        f'mask has shape {mask.shape} but the kernel has {shape}: pass the '
        'mask of this kernel')
  return mask.astype(bool)
