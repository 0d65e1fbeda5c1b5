"""Compaction: remove the units a pruned network no longer needs.

A hidden unit whose incoming column is all zero outputs the constant
relu(b) (0 without biases); compaction folds that constant into the next
layer's bias (b_next += relu(b) * W_next[unit]) and removes the unit: its
column, its bias and the matching row of the next kernel. A hidden unit whose
outgoing row is all zero affects nothing and is removed too. The result is a
smaller dense network that computes the same function (up to float rounding).
Output units are never removed; a hidden layer with no unit left keeps one
that outputs 0. Only dense chains (no layer specs) are compacted here; conv,
batch-norm and residual networks are refused (see `structured.compact`).
"""

import numpy as np

from tfprune.errors import TfpruneError
from tfprune.graph.network import Network


def compact(network: Network, use_biases: bool = True) -> Network:
  """Returns the smallest network equivalent to `network` by removing units.

  Args:
    network: a (pruned) network; it is not modified.
    use_biases: whether the forward pass adds biases. Without them a dead unit
      outputs 0 and nothing is folded; the returned biases are then zero.

  Returns:
    An equivalent network whose hidden layers keep only live, used units
    (`network` itself when it has no unit to remove and uses its biases).

  Raises:
    TfpruneError: the network has layer specs (conv, batch norm, residuals).
  """
  check_dense_chain(network, 'compaction.compact')
  if use_biases and not _removable_units(network):
    return network
  kernels = [np.array(k, dtype=np.float64) for k in network.kernels]
  biases = [np.array(b, dtype=np.float64) if use_biases else np.zeros(b.shape)
            for b in network.biases]
  for i in range(network.num_layers - 1):
    dead = ~kernels[i].any(axis=0)
    # A dead unit outputs relu(b), a constant the next layer absorbs.
    constant = np.where(dead, np.maximum(biases[i], 0.0), 0.0)
    biases[i + 1] = biases[i + 1] + constant @ kernels[i + 1]
    keep = ~dead & kernels[i + 1].any(axis=1)
    if not keep.any():
      # A layer cannot have zero width: keep one unit that contributes nothing
      # (its constant, if any, is already folded into the next bias).
      keep[0] = True
      kernels[i][:, 0] = 0.0
      biases[i][0] = 0.0
      kernels[i + 1][0, :] = 0.0
    kernels[i] = kernels[i][:, keep]
    biases[i] = biases[i][keep]
    kernels[i + 1] = kernels[i + 1][keep, :]
  return Network(tuple(k.astype(np.float32) for k in kernels),
                 tuple(b.astype(np.float32) for b in biases))


def _removable_units(network: Network) -> bool:
  """Whether some hidden unit has an all-zero incoming column or outgoing row."""
  return any(not kernel.any(axis=0).all() or not following.any(axis=1).all()
             for kernel, following in zip(network.kernels, network.kernels[1:]))


def check_dense_chain(network: Network, what: str) -> None:
  """Refuses a network with layer specs, which `what` would silently misread.

  Raises:
    TfpruneError: the network has layer specs.
  """
  if network.specs is not None:
    raise TfpruneError(
        f'{what} handles dense chains only, this network has layer specs '
        '(conv, batch norm, pooling or residual adds): evaluate it with '
        'tfprune.runtime.evaluate and compact filters with tfprune.transforms.structured.compact')
