"""Bias correction: shift each pruned layer's bias by its mean pre-activation error.

Leaves the kernels (and so the sparsity) untouched; runs after any method
(`methods.prune(..., bias_correction=True)`), on calibration inputs pushed
through the dense and the pruned dense chain layer after layer, with the
helpers of `reconstruction`.
"""

from typing import Sequence

import numpy as np

from tfprune.criteria import calibrated
from tfprune.errors import TfpruneError
from tfprune.graph.network import Network



def correct_biases(dense: Network, pruned: Network, layers: Sequence[int],
                   calibration: np.ndarray, active_only: bool = False) -> Network:
  """Shifts the biases of `layers` by the mean pre-activation error.

  Layer after layer, with X the layer's inputs through the corrected pruned
  network so far, each chosen layer's bias becomes
  b + mean over the calibration examples of (dense pre-activation - pruned
  pre-activation), so the pruned layer's mean pre-activation matches the dense
  one's. Kernels, and so the sparsity, are unchanged.

  On ReLU layers whose units are mostly inactive (the prebuilt MNIST MLP's are
  active on 13-36% of examples) that mean is dominated by negative
  pre-activations the ReLU discards, and matching it can cost accuracy;
  `active_only` averages only over the examples where the dense unit is
  active instead (on the output layer, which has no ReLU, over all examples).

  Args:
    dense: the weights before pruning.
    pruned: the pruned weights, of the same shapes.
    layers: 0-based indices of the layers whose bias to correct.
    calibration: (n, ...) calibration inputs (training data), flattened to
      (n, dense.input_dim).
    active_only: average each unit's error over the examples where its dense
      pre-activation is > 0 (a unit never active keeps its bias).

  Returns:
    `pruned` with corrected biases.
  """
  if [k.shape for k in dense.kernels] != [k.shape for k in pruned.kernels]:
    raise TfpruneError(
        'the dense and pruned networks have different shapes: pass the pruned '
        'copy of the same network')
  chosen = calibrated.check_layers(pruned, layers)
  x = calibrated.check_calibration(dense, calibration)
  dense_x = x
  biases = list(pruned.biases)
  last = calibrated.last_needed(chosen)
  for i in range(last):
    if i in chosen:
      y = calibrated.pre_activation(dense_x, dense.kernels[i], dense.biases[i], True)
      error = y - calibrated.pre_activation(x, pruned.kernels[i], pruned.biases[i], True)
      if active_only and i < dense.num_layers - 1:
        active = y > 0
        shift = (np.where(active, error, 0.0).sum(axis=0)
                 / np.maximum(active.sum(axis=0), 1))
      else:
        shift = np.mean(error, axis=0)
      biases[i] = (pruned.biases[i] + shift).astype(np.float32)
    if i + 1 < last:
      dense_x = calibrated.layer(dense_x, dense.kernels[i], dense.biases[i], True,
                       relu=True)
      x = calibrated.layer(x, pruned.kernels[i], biases[i], True, relu=True)
  return Network(pruned.kernels, tuple(biases))
