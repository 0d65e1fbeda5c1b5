"""Data-aware one-shot pruning: Wanda masks, OBS reconstruction, bias correction.

Plain magnitude pruning ignores what flows into a layer. The functions here
look at a small batch of calibration inputs (training images, never the test
set) pushed through the network, layer after layer:

  wanda_mask      scores each weight by |w_ij| * ||x_i||_2 (Wanda).
  prune_wanda     Wanda masks, chosen sequentially through the network.
  prune_obs       Optimal Brain Surgeon (exact greedy OBC on small layers,
                  SparseGPT's pass on large ones): chooses the mask by OBS
                  saliency and re-solves the kept weights (and the bias) so that
                  the pruned layer reproduces the dense layer's pre-activation.
                  Its core (`obs.obs_from_moments`) takes the moments AᵀA and AᵀY,
                  which `graph_reconstruction` accumulates over patches.

All work is in float64 numpy; networks come back as float32 `Network`s. The
functions are pure: they never modify their inputs. As in `pruning`, a level
`k` prunes exactly floor(k * n / 100) of the n kernel weights of every chosen
layer, and ties are broken towards the lower flat index.
"""

import math
import numbers
from typing import Sequence

import numpy as np

from tfprune.criteria import calibrated
from tfprune.criteria import obs
from tfprune.criteria import patterns
from tfprune.criteria import pruning
from tfprune.errors import TfpruneError
from tfprune.graph.network import Network

DEFAULT_DAMPING = 0.01
# Smaller blocks choose masks on fresher weights: on the prebuilt MNIST MLP,
# 32 beats SparseGPT's 128 by ~0.4 points at k=95, at the same speed.
DEFAULT_BLOCK_SIZE = 32
DEFAULT_CALIBRATION_SIZE = calibrated.DEFAULT_CALIBRATION_SIZE


def calibration_inputs(images: np.ndarray, size: int = DEFAULT_CALIBRATION_SIZE,
                       seed: int = 0) -> np.ndarray:
  """`size` examples of `images` drawn without replacement, flattened to float32.

  Args:
    images: training images (n, ...), never the test split.
    size: examples to draw; all of them (shuffled) when `size` >= n.
    seed: seed of the draw, so that a pruning run is reproducible.

  Returns:
    A float32 array (min(size, n), features).
  """
  if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
    raise TfpruneError(
        f'calibration size must be a positive integer, got {size!r}: pass e.g. '
        f'{DEFAULT_CALIBRATION_SIZE}')
  images = np.asarray(images)
  if images.ndim < 1 or not len(images):
    raise TfpruneError('no images to calibrate on: pass training images')
  rng = np.random.default_rng(seed)
  chosen = rng.permutation(len(images))[:size]
  return np.asarray(images[chosen], dtype=np.float32).reshape(len(chosen), -1)


def wanda_mask(weights: np.ndarray, k: float, input_norms: np.ndarray,
               mask: np.ndarray | None = None) -> np.ndarray:
  """Prunes the floor(k·n/100) weights of smallest |w_ij| · ||x_i||_2 (Wanda).

  Unlike the Wanda paper, which compares weights within each output, the
  scores are compared over the whole layer, so that exactly floor(k·n/100) of
  its n weights are pruned.

  Args:
    weights: a dense kernel (in, out).
    k: percentage of the layer's weights to prune, in [0, 100].
    input_norms: (in,) L2 norm of each input feature over the calibration
      examples.
    mask: current mask; weights it already pruned count first towards the k%
      and are never revived.

  Returns:
    A new boolean mask shaped like `weights`, False where pruned.
  """
  w = np.asarray(weights, dtype=np.float64)
  if w.ndim != 2:
    raise TfpruneError(
        f'Wanda needs a dense kernel (in, out), got shape {w.shape}: pass a '
        '2-D kernel')
  norms = np.asarray(input_norms, dtype=np.float64)
  if norms.shape != (w.shape[0],):
    raise TfpruneError(
        f'input_norms has shape {norms.shape} but the kernel takes '
        f'{w.shape[0]} inputs: give one norm per input, shape ({w.shape[0]},)')
  if not np.all(np.isfinite(norms)) or np.any(norms < 0):
    raise TfpruneError(
        'input_norms holds negative or NaN/Inf values: pass the L2 norms of the '
        'calibration inputs')
  k = pruning.check_level(k)
  scores = (np.abs(w) * norms[:, None]).ravel()
  if mask is not None:
    mask = calibrated.check_mask(mask, w.shape)
    scores = np.where(mask.ravel(), scores, -1.0)
  keep = np.ones(scores.size, dtype=bool)
  keep[np.argsort(scores, kind='stable')[:pruning.prune_count(k, scores.size)]] = False
  keep = keep.reshape(w.shape)
  return keep if mask is None else keep & mask


def prune_wanda(network: Network, k: float, layers: Sequence[int],
                calibration: np.ndarray, use_biases: bool = True,
                pattern: patterns.Pattern | None = None) -> Network:
  """Prunes `layers` with Wanda masks, chosen layer after layer.

  The inputs of each layer are computed through the already pruned earlier
  layers. Kept weights and all biases are unchanged.

  Args:
    network: the dense weights.
    k: percentage of each chosen layer's weights to prune, in [0, 100], or a
      mapping from layer index to that layer's level (an allocation's).
    layers: 0-based indices of the layers to prune (see
      `pruning.prunable_layers`); the others are returned unchanged.
    calibration: (n, ...) calibration inputs (training data), flattened to
      (n, network.input_dim).
    use_biases: add the biases in the forward pass (as the evaluation will).
    pattern: an N:M pattern instead of the level: in every group of M
      consecutive inputs, each unit keeps its N weights of highest
      |w_ij| · ||x_i||_2 (`k` is then ignored).

  Returns:
    The pruned network.
  """
  chosen = calibrated.check_layers(network, layers)
  levels = calibrated.levels(k, chosen)
  x = calibrated.check_calibration(network, calibration)
  kernels = list(network.kernels)
  last = calibrated.last_needed(chosen)
  for i in range(last):
    if i in chosen:
      norms = np.sqrt(np.einsum('ij,ij->j', x, x))
      mask = (wanda_mask(kernels[i], levels[i], norms) if pattern is None else
              patterns.nm_mask(np.abs(kernels[i]) * norms[:, None], pattern))
      kernels[i] = np.where(mask, kernels[i], np.float32(0))
    if i + 1 < last:
      x = calibrated.layer(x, kernels[i], network.biases[i], use_biases, relu=True)
  return Network(tuple(kernels), network.biases)


def prune_obs(network: Network, k: float, layers: Sequence[int],
              calibration: np.ndarray, use_biases: bool = True,
              damping: float = DEFAULT_DAMPING,
              block_size: int = DEFAULT_BLOCK_SIZE,
              pattern: patterns.Pattern | None = None) -> Network:
  """Prunes `layers` and re-fits them to the dense network (SparseGPT / OBS).

  Layer after layer, with X the layer's inputs through the network pruned so
  far and Y the dense network's pre-activation of that layer, on the same
  calibration examples:

  1. A = [X, 1] (the ones column carries the bias, which is never pruned),
     H = AᵀA + damping · mean(diag(AᵀA)) · I.
  2. The kernel and bias are re-fitted to Y on the pruned inputs by least
     squares, with the ridge pulling towards the dense weights W₀:
     W = H⁻¹(AᵀY + damping · mean(diag(AᵀA)) · W₀).
  3. On a layer whose per-output H⁻¹ fit in `OBC_MAX_ENTRIES` floats, exact
     greedy OBS (`obc`): floor(k·n/100) times, the weight of smallest
     saliency w² / [H⁻¹]_ii goes and its output is re-solved. Otherwise (every
     hidden layer of the MNIST MLP) SparseGPT's pass over the input rows of
     W, in blocks of `block_size`: with U the upper Cholesky factor of H⁻¹,
     the weights of smallest w² / U_ii² in the block are pruned, and each
     pruned row's error is spread over the rows after it (the bias last) by
     the OBS update. Block i prunes as many weights as it holds among the
     layer's floor(k·n/100) weights of lowest saliency after step 2, so the
     layer loses exactly floor(k·n/100) weights, allotted where they cost
     least.

  Args:
    network: the dense weights.
    k: percentage of each chosen layer's kernel weights to prune, in [0, 100],
      or a mapping from layer index to that layer's level.
    layers: 0-based indices of the layers to prune; the others are returned
      unchanged.
    calibration: (n, ...) calibration inputs (training data), flattened to
      (n, network.input_dim).
    use_biases: add the biases in the forward pass and re-fit them; with False
      the biases are ignored (and returned unchanged).
    damping: ridge term, relative to the mean diagonal of AᵀA; > 0.
    block_size: input rows whose mask is chosen together (SparseGPT); >= 1.
    pattern: an N:M pattern instead of the level (SparseGPT's N:M mode, on
      every layer): each block's mask keeps, in every group of M consecutive
      input rows, the N weights of highest saliency per unit; blocks are
      rounded up to a multiple of M so that groups never straddle them.

  Returns:
    The pruned network: pruned weights are exactly 0.0.
  """
  chosen = calibrated.check_layers(network, layers)
  levels = calibrated.levels(k, chosen)
  x = calibrated.check_calibration(network, calibration)
  check_obs_args(damping, block_size)
  kernels, biases = list(network.kernels), list(network.biases)
  dense_x = x
  last = calibrated.last_needed(chosen)
  for i in range(last):
    if i in chosen:
      y = calibrated.pre_activation(dense_x, network.kernels[i], network.biases[i],
                          use_biases)
      kernel, bias = _obs_layer(x, y, network.kernels[i], network.biases[i],
                                levels[i], use_biases, float(damping),
                                int(block_size), pattern)
      kernels[i] = kernel.astype(np.float32)
      if use_biases:
        biases[i] = bias.astype(np.float32)
    if i + 1 < last:
      dense_x = calibrated.layer(dense_x, network.kernels[i], network.biases[i],
                       use_biases, relu=True)
      x = calibrated.layer(x, kernels[i], biases[i], use_biases, relu=True)
  return Network(tuple(kernels), tuple(biases))


def check_obs_args(damping: float, block_size: int) -> None:
  """Refuses a damping that is not > 0 or a block size that is not >= 1."""
  if (isinstance(damping, bool) or not isinstance(damping, numbers.Real)
      or not math.isfinite(damping) or damping <= 0):
    raise TfpruneError(
        f'damping must be a positive number, got {damping!r}: pass e.g. '
        f'{DEFAULT_DAMPING}')
  if (isinstance(block_size, bool) or not isinstance(block_size, numbers.Integral)
      or block_size < 1):
    raise TfpruneError(
        f'block_size must be a positive integer, got {block_size!r}: pass e.g. '
        f'{DEFAULT_BLOCK_SIZE}')


def _obs_layer(x: np.ndarray, y: np.ndarray, kernel: np.ndarray,
               bias: np.ndarray, k: float, use_bias: bool, damping: float,
               block_size: int, pattern: patterns.Pattern | None = None
               ) -> tuple[np.ndarray, np.ndarray | None]:
  """Least-squares re-fit then SparseGPT pruning of one layer; float64 out."""
  d = x.shape[1]
  a = np.hstack([x, np.ones((len(x), 1))]) if use_bias else x
  w0 = np.asarray(kernel, dtype=np.float64)
  if use_bias:
    w0 = np.vstack([w0, np.asarray(bias, dtype=np.float64)[None]])
  w = obs.obs_from_moments(a.T @ a, a.T @ y, w0, d,
                           pruning.prune_count(k, w0[:d].size), damping,
                           block_size, pattern)
  return w[:d], (w[d] if use_bias else None)


