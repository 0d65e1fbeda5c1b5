"""Network-level pruning methods by name, as used by the sweep.

A method turns a dense network into a pruned one at level k on the given
layers. `weight` and `unit` apply the mask criteria of `pruning`; `wanda` and
`obs` also look at a calibration set of training inputs (see
`reconstruction`). Any method can be followed by bias correction.
"""

import dataclasses
from typing import Callable, Sequence

import numpy as np

from tfprune import registry
from tfprune.criteria import pruning
from tfprune.criteria import bias_correction as bias_correction_lib
from tfprune.criteria import reconstruction
from tfprune.errors import TfpruneError
from tfprune.graph.network import Network

PruneFn = Callable[[Network, float, Sequence[int], np.ndarray | None, bool], Network]


@dataclasses.dataclass(frozen=True)
class Method:
  """A pruning method.

  Attributes:
    prune: (network, k, layers, calibration, use_biases) -> pruned network.
    needs_calibration: whether `prune` reads calibration inputs.
    summary: one line for `--help` and the README.
  """
  prune: PruneFn
  needs_calibration: bool
  summary: str


def _masking(criterion: str) -> PruneFn:
  def prune(network, k, layers, calibration, use_biases):
    del calibration, use_biases  # magnitude criteria look at weights only
    return network.masked(pruning.network_masks(network, criterion, k, layers))
  return prune


METHODS: dict[str, Method] = {
    'weight': Method(_masking('weight'), False,
                     'smallest |w| of each layer (magnitude)'),
    'unit': Method(_masking('unit'), False,
                   'columns (neurons) of smallest L2 norm'),
    'random': Method(_masking('random'), False,
                     'weights chosen at random (seeded): the baseline'),
    'wanda': Method(
        lambda n, k, l, c, b: reconstruction.prune_wanda(n, k, l, c, use_biases=b),
        True, 'smallest |w| * ||x|| on calibration inputs (Wanda)'),
    'obs': Method(
        lambda n, k, l, c, b: reconstruction.prune_obs(n, k, l, c, use_biases=b),
        True, 'OBS saliency + layer-wise least-squares reconstruction (SparseGPT)'),
}


def get(name: str) -> Method:
  """Returns the method called `name`.

  Raises:
    ValueError: `name` is not in `METHODS`.
  """
  return registry.lookup(METHODS, name, 'pruning method')


def needs_calibration(names: Sequence[str], bias_correction: bool) -> bool:
  """Whether running `names` (with or without bias correction) needs calibration."""
  return bias_correction or any(get(n).needs_calibration for n in names)


def prune(name: str, network: Network, k: float, layers: Sequence[int],
          calibration: np.ndarray | None = None, use_biases: bool = True,
          bias_correction: bool = False) -> Network:
  """Prunes `network` with method `name` at level k on `layers`.

  Args:
    name: a key of `METHODS`.
    network: the dense network (not modified).
    k: level in percent.
    layers: 0-based indices of the layers to prune.
    calibration: (n, inputs) training inputs, for methods that need them.
    use_biases: whether the forward pass adds biases.
    bias_correction: afterwards, shift each pruned layer's bias so its mean
      pre-activation, over the calibration examples where the dense unit is
      active, matches the dense network's.

  Raises:
    TfpruneError: the method or bias correction needs calibration data and
      none was given.
  """
  method = get(name)
  if needs_calibration([name], bias_correction) and calibration is None:
    raise TfpruneError(
        f'method {name!r}{" with bias correction" if bias_correction else ""} '
        'needs calibration data: set --calibration_size to a positive number')
  pruned = method.prune(network, k, layers, calibration, use_biases)
  if bias_correction:
    # Averaging over all examples lets the negative pre-activations that ReLU
    # discards dominate (measured: 75.3% -> 10.3% at k=90); only the examples
    # where the dense unit is active count (75.3% -> 96.4%).
    pruned = bias_correction_lib.correct_biases(network, pruned, layers, calibration,
                                           active_only=True)
  return pruned
