"""Optimal Brain Surgeon for one layer, from its moments AᵀA and AᵀY.

`obs_from_moments` re-fits a layer by ridge least squares towards its dense
weights (`refit`) and prunes it: exact greedy OBS (`obc`, Optimal Brain
Compression) where one H⁻¹ per output fits in `OBC_MAX_ENTRIES` floats,
SparseGPT's blocked pass otherwise, or SparseGPT's N:M mode for a pattern.
Used by `reconstruction` (dense chains) and `graph_reconstruction` (any
graph, with moments accumulated over conv patches).

Both passes are vectorised, with no Python loop per weight or per input row:
`sparsegpt` solves each block's row-by-row updates as one batch of
triangular systems (one per output, since the outputs' masks differ), and
`obc` traces the greedy steps of many outputs at once, applying their H⁻¹
updates lazily, a panel of `PANEL` steps at a time, as one batched matrix
product (a pivoted Cholesky factorisation of H⁻¹ whose pivot is the lowest
saliency). The factorisations run in float64.
"""

import heapq

import numpy as np
import tensorflow as tf

from tfprune.criteria import patterns
from tfprune.errors import TfpruneError

# Exact greedy OBS (`obc`) keeps one H⁻¹ per output: out · rows² floats. Up to
# this many (256 MB) it runs; larger layers (every hidden layer of the MNIST
# MLP) take SparseGPT's blocked pass. On LeNet-5's first conv at k = 90,
# alone: 98.51% (obc) against 89.46% (sparsegpt).
OBC_MAX_ENTRIES = 1 << 25
# `obc` traces together the outputs whose H⁻¹ fit in this many floats (32 MB).
BATCH_ENTRIES = 1 << 22
# `obc` greedy steps between two (lazy, batched) updates of the H⁻¹.
PANEL = 64
# `sparsegpt` solves at once the outputs whose triangular systems fit in this
# many floats (16 MB).
SOLVE_ENTRIES = 1 << 21
_SINGULAR = ('the calibration inputs give a singular least-squares system: '
             'raise damping')


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
  w, u = refit(ata, aty, w0, damping)
  return prune_refit(w, u, rows, count, block_size, pattern)


def refit(ata: np.ndarray, aty: np.ndarray, w0: np.ndarray,
          damping: float) -> tuple[np.ndarray, np.ndarray]:
  """W = H⁻¹(AᵀY + ridge · W₀) with H = AᵀA + ridge · I.

  Returns W and U, the upper triangular factor with H⁻¹ = UᵀU (from one
  Cholesky factorisation of H, rows reversed, and a triangular inverse).
  """
  h = np.array(ata, dtype=np.float64)
  ridge = damping * (float(np.mean(np.diag(h))) or 1.0)
  h[np.diag_indices_from(h)] += ridge
  u = _inverse_factor(h)
  # The ridge pulls towards the dense weights, not towards 0: inputs that are
  # always 0 on the calibration set (MNIST's border pixels) keep their weights
  # instead of becoming stray zeros, and at k=0 an unpruned input gives back
  # the dense layer. Solved as W₀ + H⁻¹(AᵀY − AᵀA·W₀): the correction is
  # small, and exactly 0 when Y = A·W₀.
  w0 = np.asarray(w0, np.float64)
  return w0 + u.T @ (u @ (aty - ata @ w0)), u


def saliency(w: np.ndarray, u: np.ndarray, rows: int) -> np.ndarray:
  """OBS saliency w² / [H⁻¹]_ii of the first `rows` rows of a `refit`."""
  return w[:rows] ** 2 / np.sum(u[:, :rows] ** 2, axis=0)[:, None]


def prune_refit(w: np.ndarray, u: np.ndarray, rows: int, count: int,
                block_size: int, pattern: patterns.Pattern | None = None
                ) -> np.ndarray:
  """Prunes `count` kernel weights of a `refit`: `obc` if it fits, else `sparsegpt`.

  An N:M `pattern` always takes SparseGPT's pass (its N:M mode).
  """
  if pattern is None and w.shape[1] * w.shape[0] ** 2 <= OBC_MAX_ENTRIES:
    return obc(w, u.T @ u, rows, count)
  return sparsegpt(w, u, rows, count, block_size, pattern)


def obc(w: np.ndarray, h_inv: np.ndarray, rows: int, count: int) -> np.ndarray:
  """Exact greedy OBS (OBC): `count` times, prunes the weight of lowest saliency.

  Each output column keeps its own H⁻¹ of its remaining inputs; the pruned
  weight's column is re-solved by the OBS update and its H⁻¹ loses that row
  and column (Frantar & Alistarh, *Optimal Brain Compression*, NeurIPS 2022).
  Returns a new array; ties go to the lower row, then the lower column.

  The columns never interact: a column's pruning order and states do not
  depend on when the global greedy pass visits it. So every column's greedy
  trajectory is computed on its own, batched over as many columns as keep
  their H⁻¹ within `BATCH_ENTRIES` floats (`_trajectories`), and the global
  pass only merges their saliencies in order (`_merge`), taking each column's
  state after its share of the `count`.
  """
  w = np.array(w, dtype=np.float64)
  steps = min(rows, count)
  if not steps:
    return w
  r, out = w.shape
  batch = max(1, BATCH_ENTRIES // r ** 2)
  heads, picks = np.empty((steps, out)), np.empty((steps, out), dtype=np.int64)
  batches = []
  for start in range(0, out, batch):
    columns = slice(start, min(start + batch, out))
    heads[:, columns], picks[:, columns], states = _trajectories(
        w[:, columns].T, h_inv, rows, steps)
    batches.append((start, states))
  taken = _merge(heads, picks, count)
  pruned = np.zeros_like(w)
  for start, states in batches:
    for c in range(states[0][0].shape[0]):
      j, n = start + c, taken[start + c]
      if not n:
        pruned[:, j] = w[:, j]
        continue
      values, index = states[n - 1]
      pruned[index[c], j] = values[c]
      pruned[picks[:n, j], j] = 0.0
  return pruned


def _trajectories(w: np.ndarray, h_inv: np.ndarray, rows: int, steps: int
                  ) -> tuple[np.ndarray, np.ndarray, list]:
  """Greedy OBS of every column of `w` (out, r) alone, `steps` weights each.

  Returns the saliency pruned at each step (steps, out), the row it pruned
  (steps, out), and after each step the columns' (values, rows) of their
  still-tracked entries.

  A step needs only the current H⁻¹'s diagonal and its column at the pruned
  entry: the column is the panel-start H⁻¹'s minus the panel's earlier
  rank-one updates (`factors`), and the whole H⁻¹ takes the panel's updates
  at its end in one batched product. Pruned entries are then dropped from
  the H⁻¹ whenever a quarter of its width has gone, so the work shrinks as
  the columns empty (a pruned entry never influences the kept ones).
  """
  out, r = w.shape
  every = np.arange(out)
  w = w.copy()
  index = np.tile(np.arange(r), (out, 1))  # the original row of each entry
  inverses = np.repeat(h_inv[None], out, axis=0)
  alive = np.ones((out, r), dtype=bool)
  heads, picks = np.empty((steps, out)), np.empty((steps, out), dtype=np.int64)
  states = []
  for start in range(0, steps, PANEL):
    if not start or (r - start) * 4 <= 3 * alive.shape[1]:
      width = int(alive[0].sum())
      w = w[alive].reshape(out, width)
      index = index[alive].reshape(out, width)
      inverses = inverses[alive[:, :, None] & alive[:, None, :]].reshape(
          out, width, width)
      alive = np.ones_like(w, dtype=bool)
      prunable = index < rows
    diagonal = np.diagonal(inverses, axis1=1, axis2=2).copy()
    panel = min(PANEL, steps - start)
    factors = np.zeros((out, panel, w.shape[1]))
    for k in range(panel):
      scores = np.full(w.shape, np.inf)
      np.divide(w ** 2, diagonal, out=scores, where=alive & prunable)
      i = np.argmin(scores, axis=1)  # ties: the lower row (index is sorted)
      heads[start + k], picks[start + k] = scores[every, i], index[every, i]
      # H⁻¹'s row i (it is symmetric) less this panel's earlier updates.
      column = inverses[every, i, :] - np.matmul(
          factors[every, :k, i][:, None, :], factors[:, :k, :])[:, 0, :]
      pivot = column[every, i]
      w -= column * (w[every, i] / pivot)[:, None]
      w[every, i] = 0.0
      diagonal -= column ** 2 / pivot[:, None]
      factors[:, k, :] = column / np.sqrt(pivot)[:, None]
      alive[every, i] = False
      states.append((w.copy(), index))
    inverses -= tf.linalg.matmul(factors, factors, transpose_a=True).numpy()
  return heads, picks, states


def _merge(heads: np.ndarray, picks: np.ndarray, count: int) -> list[int]:
  """How many weights each column loses in the global greedy pass.

  `count` times, the column whose next saliency is lowest (ties: the lower
  row, then the lower column) loses its next weight.
  """
  steps, out = heads.shape
  heads, picks = heads.T.tolist(), picks.T.tolist()  # per column
  taken = [0] * out
  queue = [(heads[j][0], picks[j][0], j) for j in range(out)]
  heapq.heapify(queue)
  for _ in range(count):
    _, _, j = heapq.heappop(queue)
    taken[j] += 1
    if taken[j] < steps:
      heapq.heappush(queue, (heads[j][taken[j]], picks[j][taken[j]], j))
  return taken


def sparsegpt(w: np.ndarray, u: np.ndarray, rows: int, count: int,
              block_size: int, pattern: patterns.Pattern | None = None
              ) -> np.ndarray:
  """SparseGPT's pass: prunes `count` of the first `rows` rows' weights of `w`.

  With U the upper Cholesky factor of H⁻¹ (`refit`), in blocks of
  `block_size` rows, the weights of lowest w² / U_ii² in the block go, each
  pruned row's error spread over the rows after it (a bias row last) by the
  OBS update: within the block at once (`_block_errors`), after it lazily,
  by one matrix product. Each block prunes its share of the `count` lowest
  of the whole `w`, so exactly `count` weights go. With an N:M `pattern`
  instead, blocks are rounded up to a multiple of M and each keeps, in every
  group of M rows, the N weights of highest saliency per output. Returns a
  new array.
  """
  if pattern is not None:
    block_size = -(-block_size // pattern.m) * pattern.m
  w = np.array(w, dtype=np.float64)
  diag = np.diag(u)
  counts = _block_counts((w[:rows] / diag[:rows, None]) ** 2, count, block_size)
  for start, count in zip(range(0, rows, block_size), counts):
    stop = min(start + block_size, rows)
    w1, u1 = w[start:stop], u[start:stop, start:stop]
    salient = (w1 / diag[start:stop, None]) ** 2
    if pattern is not None:
      keep = patterns.nm_mask(salient, pattern)
    else:
      keep = np.ones(w1.size, dtype=bool)
      keep[np.argsort(salient.ravel(), kind='stable')[:count]] = False
      keep = keep.reshape(w1.shape)
    errors = _block_errors(w1, u1, keep)
    w[start:stop] = np.where(keep, w1 - u1.T @ errors, 0.0)
    w[stop:] -= u[start:stop, stop:].T @ errors
  return w


def _block_errors(w1: np.ndarray, u1: np.ndarray, keep: np.ndarray
                  ) -> np.ndarray:
  """The OBS errors e of one block's pruned weights, 0 where kept.

  Row by row, a pruned weight's error is (its weight after the earlier rows'
  updates) / U_jj: e_j = (w_j − Σ_{i<j} U_ij e_i) / U_jj. Per output, with
  its pruned rows P, that is the lower triangular system
  (diag(U) + diag(1_P) · strict_lower(Uᵀ)) e = 1_P · w, solved for a batch
  of outputs at once.
  """
  size, out = w1.shape
  pruned = (~keep).T.astype(np.float64)  # (out, size)
  lower, diag = np.tril(u1.T, -1), np.diag(np.diag(u1))
  errors = np.zeros((out, size))
  losing = np.flatnonzero(pruned.any(axis=1))
  batch = max(1, SOLVE_ENTRIES // size ** 2)
  for start in range(0, len(losing), batch):
    c = losing[start:start + batch]
    systems = pruned[c, :, None] * lower + diag
    errors[c] = tf.linalg.triangular_solve(
        systems, (pruned[c] * w1[:, c].T)[:, :, None], lower=True).numpy()[..., 0]
  return errors.T


def _block_counts(saliencies: np.ndarray, total: int,
                  block_size: int) -> list[int]:
  """Weights to prune per block of rows: its share of the lowest saliencies."""
  lowest = np.argsort(saliencies.ravel(), kind='stable')[:total]
  rows = lowest // saliencies.shape[1]
  return np.bincount(rows // block_size,
                     minlength=-(-saliencies.shape[0] // block_size)).tolist()


def _inverse_factor(h: np.ndarray) -> np.ndarray:
  """U upper with H⁻¹ = UᵀU, for a symmetric positive definite H.

  With H reversed (J H J, J the reversal) = L Lᵀ, H = R Rᵀ for the upper
  R = J L J, so H⁻¹ = (R⁻¹)ᵀ R⁻¹ and U = R⁻¹ = J L⁻¹ J.
  """
  try:
    lower = tf.linalg.cholesky(h[::-1, ::-1].copy())
    u = tf.linalg.triangular_solve(
        lower, tf.eye(len(h), dtype=tf.float64), lower=True).numpy()[::-1, ::-1]
  except tf.errors.InvalidArgumentError:
    raise TfpruneError(_SINGULAR) from None
  if not np.all(np.isfinite(u)):
    raise TfpruneError(_SINGULAR)
  return np.ascontiguousarray(u)
