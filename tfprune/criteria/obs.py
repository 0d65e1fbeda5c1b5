"""Optimal Brain Surgeon for one layer, from its moments AᵀA and AᵀY.

`obs_from_moments` re-fits a layer by ridge least squares towards its dense
weights (`refit`) and prunes it: exact greedy OBS (`obc`, Optimal Brain
Compression) where one H⁻¹ per output fits in `OBC_MAX_ENTRIES` floats,
SparseGPT's blocked pass otherwise, or SparseGPT's N:M mode for a pattern.
Used by `reconstruction` (dense chains) and `graph_reconstruction` (any
graph, with moments accumulated over conv patches).
"""

import numpy as np

from tfprune.criteria import patterns
from tfprune.errors import TfpruneError

# Exact greedy OBS (`obc`) keeps one H⁻¹ per output: out · rows² floats. Up to
# this many (256 MB) it runs; larger layers (every hidden layer of the MNIST
# MLP) take SparseGPT's blocked pass. On LeNet-5's first conv at k = 90,
# alone: 98.51% (obc) against 89.46% (sparsegpt).
OBC_MAX_ENTRIES = 1 << 25


def obs_from_moments(ata: np.ndarray, aty: np.ndarray, w0: np.ndarray,
                     rows: int, count: int, damping: float,
                     block_size: int, pattern: patterns.Pattern | None = None
                     ) -> np.ndarray:
  """OBS of one layer from its moments: `refit`, then `prune_refit`.

  Args:
    ata: AᵀA of the layer's inputs A (n, r) through the pruned network, with a
      last column of ones when the layer has a bias.
    aty: AᵀY, Y (n, out) the dense network's pre-activations.
    w0: the dense weights (r, out): kernel rows, then the bias row if any.
    rows: the kernel rows of w0 (r, or r - 1 with a bias); only they lose
      weights.
    count: kernel weights to prune.
    damping: ridge term, relative to the mean diagonal of AᵀA.
    block_size: rows whose mask is chosen together (SparseGPT).
    pattern: an N:M pattern instead of `count` (SparseGPT's N:M mode).

  Returns:
    The re-fitted weights (r, out), float64, exactly `count` kernel zeros.
  """
  w, h_inv = refit(ata, aty, w0, damping)
  return prune_refit(w, h_inv, rows, count, block_size, pattern)


def refit(ata: np.ndarray, aty: np.ndarray, w0: np.ndarray,
          damping: float) -> tuple[np.ndarray, np.ndarray]:
  """W = H⁻¹(AᵀY + ridge · W₀) with H = AᵀA + ridge · I; returns W and H⁻¹."""
  h = np.array(ata, dtype=np.float64)
  ridge = damping * (float(np.mean(np.diag(h))) or 1.0)
  h[np.diag_indices_from(h)] += ridge
  h_inv = _inverse(h)
  # The ridge pulls towards the dense weights, not towards 0: inputs that are
  # always 0 on the calibration set (MNIST's border pixels) keep their weights
  # instead of becoming stray zeros, and at k=0 an unpruned input gives back
  # the dense layer.
  return h_inv @ (aty + ridge * np.asarray(w0, np.float64)), h_inv


def saliency(w: np.ndarray, h_inv: np.ndarray, rows: int) -> np.ndarray:
  """OBS saliency w² / [H⁻¹]_ii of the first `rows` rows of a `refit`."""
  return w[:rows] ** 2 / np.diag(h_inv)[:rows, None]


def prune_refit(w: np.ndarray, h_inv: np.ndarray, rows: int, count: int,
                block_size: int, pattern: patterns.Pattern | None = None
                ) -> np.ndarray:
  """Prunes `count` kernel weights of a `refit`: `obc` if it fits, else `sparsegpt`.

  An N:M `pattern` always takes SparseGPT's pass (its N:M mode).
  """
  if pattern is None and w.shape[1] * w.shape[0] ** 2 <= OBC_MAX_ENTRIES:
    return obc(w, h_inv, rows, count)
  return sparsegpt(w, h_inv, rows, count, block_size, pattern)


def obc(w: np.ndarray, h_inv: np.ndarray, rows: int, count: int) -> np.ndarray:
  """Exact greedy OBS (OBC): `count` times, prunes the weight of lowest saliency.

  Each output column keeps its own H⁻¹ of its remaining inputs; the pruned
  weight's column is re-solved by the OBS update and its H⁻¹ loses that row
  and column (Frantar & Alistarh, *Optimal Brain Compression*, NeurIPS 2022).
  Returns a new array; ties go to the lower flat index.
  """
  w = np.array(w, dtype=np.float64).T.copy()  # (out, r): one column per row
  inverses = np.repeat(h_inv[None], len(w), axis=0)
  alive = np.ones((len(w), rows), dtype=bool)

  def scores(j):  # pruned inputs: inf (their H⁻¹ row and column are 0)
    out = np.full(rows, np.inf)
    return np.divide(w[j, :rows] ** 2, np.diag(inverses[j])[:rows], out=out,
                     where=alive[j])
  best = np.stack([scores(j) for j in range(len(w))])  # (out, rows)
  lowest = best.min(axis=1)
  for _ in range(count):
    # Lowest saliency, ties to the lower flat index of the (rows, out) kernel.
    candidates = np.flatnonzero(best == lowest.min())  # flat (out, rows)
    j, i = min(((c // rows, c % rows) for c in candidates),
               key=lambda ji: (ji[1], ji[0]))
    inverse = inverses[j]
    w[j] -= inverse[:, i] * (w[j, i] / inverse[i, i])
    w[j, i] = 0.0
    inverse -= np.outer(inverse[:, i], inverse[i]) / inverse[i, i]
    alive[j, i] = False
    best[j] = scores(j)
    lowest[j] = best[j].min()
  w[:, :rows][~alive] = 0.0
  return w.T


def sparsegpt(w: np.ndarray, h_inv: np.ndarray, rows: int, count: int,
              block_size: int, pattern: patterns.Pattern | None = None
              ) -> np.ndarray:
  """SparseGPT's pass: prunes `count` of the first `rows` rows' weights of `w`.

  With U the upper Cholesky factor of H⁻¹, in blocks of `block_size` rows, the
  weights of lowest w² / U_ii² in the block go, each pruned row's error
  spread over the rows after it (a bias row last) by the OBS update. Each
  block prunes its share of the `count` lowest of the whole `w`, so exactly
  `count` weights go. With an N:M `pattern` instead, blocks are rounded up to
  a multiple of M and each keeps, in every group of M rows, the N weights of
  highest saliency per output. Returns a new array.
  """
  if pattern is not None:
    block_size = -(-block_size // pattern.m) * pattern.m
  u = _factor(h_inv)
  w = np.array(w, dtype=np.float64)
  d = rows
  diag = np.diag(u)
  counts = _block_counts((w[:d] / diag[:d, None]) ** 2, count, block_size)
  for start, count in zip(range(0, d, block_size), counts):
    stop = min(start + block_size, d)
    w1, u1 = w[start:stop].copy(), u[start:stop, start:stop]
    salient = (w1 / diag[start:stop, None]) ** 2
    if pattern is not None:
      keep = patterns.nm_mask(salient, pattern)
    else:
      keep = np.ones(w1.size, dtype=bool)
      keep[np.argsort(salient.ravel(), kind='stable')[:count]] = False
      keep = keep.reshape(w1.shape)
    errors = np.zeros_like(w1)
    for r in np.flatnonzero(~keep.all(axis=1)):  # rows losing weights
      pruned_row = np.where(keep[r], w1[r], 0.0)
      errors[r] = (w1[r] - pruned_row) / u1[r, r]
      w1[r:] -= np.outer(u1[r, r:], errors[r])
      w1[r] = pruned_row
    w[start:stop] = w1
    w[stop:] -= u[start:stop, stop:].T @ errors
  return w


def _block_counts(saliencies: np.ndarray, total: int,
                  block_size: int) -> list[int]:
  """Weights to prune per block of rows: its share of the lowest saliencies."""
  lowest = np.argsort(saliencies.ravel(), kind='stable')[:total]
  rows = lowest // saliencies.shape[1]
  return np.bincount(rows // block_size,
                     minlength=-(-saliencies.shape[0] // block_size)).tolist()


def _inverse(h: np.ndarray) -> np.ndarray:
  """H⁻¹ of a symmetric positive definite H, through its Cholesky factor."""
  try:
    l_inv = np.linalg.inv(np.linalg.cholesky(h))
  except np.linalg.LinAlgError:
    raise TfpruneError(
        'the calibration inputs give a singular least-squares system: raise '
        'damping') from None
  return l_inv.T @ l_inv


def _factor(h_inv: np.ndarray) -> np.ndarray:
  """U upper with H⁻¹ = UᵀU."""
  try:
    return np.linalg.cholesky(h_inv).T
  except np.linalg.LinAlgError:
    raise TfpruneError(
        'the calibration inputs give a singular least-squares system: raise '
        'damping') from None
