"""Wanda and OBS on any graph: patches, exact counts, k = 0, Wanda's order.

Parameterized over the methods and over dense, conv (strided, 'same'; no
bias, batch norm after) and depthwise (dilated, multiplier 2) kernels of one
small graph (the dense chain's cases: `tests/test_reconstruction.py`).
The batched exact greedy OBS (`obs.obc`) makes the same choices as pruning
one weight at a time, and the blocked SparseGPT pass those of a plain numpy
oracle of row-by-row OBS; the float32 moments match float64 ones.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfprune.criteria import calibration_arrays
from tfprune.criteria import graph_pruning
from tfprune.criteria import graph_reconstruction
from tfprune.criteria import importances
from tfprune.criteria import pruning
from tfprune.criteria import obs
from tfprune.drivers import graph_sweep
from tfprune.errors import TfpruneError
from tfprune.graph import ops
from tfprune.graph.evaluator import Evaluator
from tfprune.graph.evaluator import run_nodes
from tfprune.graph.ir import Graph
from tfprune.graph.ir import Node
from tfprune.transforms import channel_pruning

METHODS = sorted(importances.names(needs_calibration=True))
KERNELS = ('conv', 'depthwise', 'conv_no_bias', 'dense')
RELU = ops.activation('relu')


def _conv(name, source, shape, strides, padding, dilation, rng, op='conv2d',
          bias=True, activation=RELU):
  params = {'kernel': rng.normal(0, 0.4, shape)}
  if bias:
    out = shape[3] * (shape[2] if op == 'depthwise_conv2d' else 1)
    params['bias'] = rng.normal(0, 0.1, out)
  return Node(name, op, [source], {'strides': strides, 'padding': padding,
                                   'dilation': dilation, 'activation': activation},
              params)


@pytest.fixture(scope='module')
def graph():
  rng = np.random.default_rng(0)
  nodes = [
      Node('input', 'input'),
      _conv('conv', 'input', (3, 3, 3, 6), (2, 2), 'same', (1, 1), rng),
      _conv('depthwise', 'conv', (3, 3, 6, 2), (1, 1), 'same', (2, 2), rng,
            op='depthwise_conv2d'),
      _conv('conv_no_bias', 'depthwise', (2, 2, 12, 4), (1, 1), 'valid',
            (1, 1), rng, bias=False, activation=ops.LINEAR),
      Node('norm', 'batch_norm', ['conv_no_bias'], {'epsilon': 1e-3},
           {'gamma': [0.5, -2.0, 0.0, 1.0], 'beta': rng.normal(0, 0.1, 4),
            'mean': rng.normal(0, 0.1, 4), 'variance': [1.0, 0.5, 2.0, 0.1]}),
      Node('relu', 'activation', ['norm'], {'activation': RELU}),
      Node('flatten', 'flatten', ['relu']),
      Node('dense', 'dense', ['flatten'], {'activation': RELU},
           {'kernel': rng.normal(0, 0.3, (64, 8)), 'bias': rng.normal(0, 0.1, 8)}),
      Node('out', 'dense', ['dense'], {'activation': ops.LINEAR},
           {'kernel': rng.normal(0, 0.3, (8, 3)), 'bias': np.zeros(3)}),
  ]
  return Graph(nodes, 'out', (10, 10, 3))


def _calibration(n=40, seed=1):
  return np.random.default_rng(seed).random((n, 10, 10, 3)).astype(np.float32)


@pytest.mark.parametrize('name', ['conv', 'depthwise', 'conv_no_bias'])
def test_patch_rows_times_the_kernel_are_the_conv(graph, name):
  node = graph.node(name)
  x = np.random.default_rng(2).random((3, *graph.shapes[node.inputs[0]]))
  (a,) = graph_reconstruction._rows(node, iter([tf.constant(x)]))  # pylint: disable=protected-access
  a = a.numpy()
  kernel = np.asarray(node.params['kernel'], np.float64)
  linear = node.replace(attrs={**node.attrs, 'activation': ops.LINEAR},
                        params={'bias': np.zeros(graph.shapes[name][-1])})
  expected = _node_output(linear, x)
  if node.op == 'depthwise_conv2d':  # a: (rows, h·w, c); kernel (h, w, c, m)
    kh, kw, c, m = kernel.shape
    got = np.einsum('nic,icm->ncm', a, kernel.reshape(kh * kw, c, m))
    got = got.reshape(len(a), c * m)
  else:
    got = a @ kernel.reshape(-1, kernel.shape[-1])
  np.testing.assert_allclose(got, expected.reshape(got.shape), atol=1e-9)


def _node_output(node, x):
  """`node`'s output on `x` through the evaluator's op, in float64."""
  single = Graph([Node('input', 'input'), node.replace(inputs=['input'])],
                 node.name, x.shape[1:])
  params = {node.name: {k: tf.constant(v, tf.float64)
                        for k, v in single.node(node.name).params.items()}}
  (output,), _ = run_nodes(single, tf.constant(x), params)
  return output.numpy()


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('name', KERNELS)
@pytest.mark.parametrize('k', [0, 30, 90, 100])
def test_exact_zero_counts_per_kernel(graph, method, name, k):
  names = graph_pruning.prunable(graph)
  levels = {n: (k if n == name else 50) for n in names}
  pruned = channel_pruning.prune_graph(graph, method, levels, names,
                                      _calibration())
  for n in names:
    kernel = pruned.node(n).params['kernel']
    assert kernel.dtype == np.float32 and kernel.shape == graph.node(n).params['kernel'].shape
    assert kernel.size - np.count_nonzero(kernel) == pruning.prune_count(
        levels[n], kernel.size), n
    for param, value in pruned.node(n).params.items():
      assert np.all(np.isfinite(value))
      if method == 'wanda' and param != 'kernel':
        assert value is graph.node(n).params[param]
  assert pruned.node('out').params['kernel'] is graph.node('out').params['kernel']
  assert 'bias' not in pruned.node('conv_no_bias').params


@pytest.mark.parametrize('k', [0, 30, 90])
def test_obs_sparsegpt_pass_on_graphs_is_exact_too(graph, k, monkeypatch):
  """Large layers take SparseGPT's pass instead of exact greedy OBS."""
  monkeypatch.setattr(obs, 'OBC_MAX_ENTRIES', 0)
  names = graph_pruning.prunable(graph)
  pruned = graph_reconstruction.prune_obs(graph, k, names, _calibration())
  for n in names:
    kernel = pruned.node(n).params['kernel']
    assert kernel.size - np.count_nonzero(kernel) == pruning.prune_count(
        k, kernel.size), n


def test_k0_obs_gives_back_the_dense_graph_and_wanda_changes_nothing(graph):
  names = graph_pruning.prunable(graph)
  wanda = graph_reconstruction.prune_wanda(graph, 0, names, _calibration())
  obs = graph_reconstruction.prune_obs(graph, 0, names, _calibration())
  for n in names:
    for param, value in graph.node(n).params.items():
      np.testing.assert_array_equal(wanda.node(n).params[param], value)
      np.testing.assert_allclose(obs.node(n).params[param], value, rtol=1e-4,
                                 atol=1e-5)


def test_wanda_keeps_the_highest_weight_times_patch_norm(graph):
  """Scores from patches taken independently: a conv with one-hot kernels."""
  x = _calibration()
  node = graph.node('conv')
  kh, kw, cin, _ = node.params['kernel'].shape
  one_hot = np.eye(kh * kw * cin).reshape(kh, kw, cin, kh * kw * cin)
  patches = tf.nn.convolution(x.astype(np.float64), one_hot, strides=[2, 2],
                              padding='SAME').numpy()
  norms = np.sqrt(np.sum(patches.reshape(-1, kh * kw * cin) ** 2, axis=0))
  pruned = graph_reconstruction.prune_wanda(graph, 50, ['conv'], x)
  kernel = node.params['kernel']
  kept = pruned.node('conv').params['kernel'] != 0
  scores = np.abs(kernel) * norms.reshape(kh, kw, cin, 1)
  assert scores[kept].min() >= scores[~kept].max()
  assert (~kept).sum() == pruning.prune_count(50, kernel.size)


def test_obs_refits_better_than_masking(graph):
  """OBS's pruned graph is closer to the dense outputs than magnitude pruning's."""
  names = graph_pruning.prunable(graph)
  x = _calibration(200, seed=3)
  evaluator = Evaluator(graph)
  dense = evaluator.predict(x)
  obs = graph_reconstruction.prune_obs(graph, 70, names, x)
  weight = graph_pruning.prune(graph, 'weight', 70, names)
  assert (np.linalg.norm(evaluator.predict(x, obs) - dense)
          < np.linalg.norm(evaluator.predict(x, weight) - dense))


@pytest.mark.parametrize('bad, match', [
    (np.zeros((0, 10, 10, 3)), 'calibration data is empty'),
    (np.zeros((4, 7)), r'inputs of shape \(10, 10, 3\) but the calibration'),
    (np.full((4, 10, 10, 3), np.nan), 'NaN/Inf'),
])
def test_bad_calibration_refused(graph, bad, match):
  with pytest.raises(TfpruneError, match=match):
    graph_reconstruction.prune_obs(graph, 50, ['conv'], bad)


def test_unknown_method_and_bad_level_refused(graph):
  with pytest.raises(TfpruneError, match='wanda'):
    channel_pruning.prune_graph(graph, 'sparse', 50, ['conv'], _calibration())
  with pytest.raises(TfpruneError, match=r'k must be in \[0, 100\], got 120'):
    graph_reconstruction.prune_wanda(graph, 120, ['conv'], _calibration())


def _obc_one_weight_at_a_time(w, h_inv, rows, count):
  """The exact greedy OBS as first written: the global lowest saliency, once
  per pruned weight (the reference for the batched `obs.obc`)."""
  w = np.array(w, dtype=np.float64).T.copy()
  inverses = np.repeat(h_inv[None], len(w), axis=0)
  alive = np.ones((len(w), rows), dtype=bool)

  def scores(j):
    out = np.full(rows, np.inf)
    return np.divide(w[j, :rows] ** 2, np.diag(inverses[j])[:rows], out=out,
                     where=alive[j])
  best = np.stack([scores(j) for j in range(len(w))])
  lowest = best.min(axis=1)
  for _ in range(count):
    candidates = np.flatnonzero(best == lowest.min())
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


@pytest.mark.parametrize('rows, out, bias', [(10, 4, True), (25, 6, True),
                                             (30, 7, False), (1, 3, True)])
@pytest.mark.parametrize('share', [0, 0.01, 0.3, 0.9, 1.0])
def test_batched_obc_equals_pruning_one_weight_at_a_time(rows, out, bias, share):
  rng = np.random.default_rng(rows)
  a = rng.normal(size=(150, rows))
  if bias:
    a = np.hstack([a, np.ones((len(a), 1))])
  w0 = rng.normal(size=(a.shape[1], out))
  y = a @ w0 + 0.3 * rng.normal(size=(len(a), out))
  w, u = obs.refit(a.T @ a, a.T @ y, w0, 0.01)
  h_inv = u.T @ u
  count = int(share * rows * out)
  expected = _obc_one_weight_at_a_time(w, h_inv, rows, count)
  got = obs.obc(w, h_inv, rows, count)
  assert np.count_nonzero(got[:rows] == 0) == count
  np.testing.assert_array_equal(got == 0, expected == 0)
  # Same choices; the values differ by rounding only (the H⁻¹ updates are
  # applied a panel at a time), so 1e-12 of the weights' scale.
  np.testing.assert_allclose(got, expected, rtol=0,
                             atol=1e-12 * np.abs(expected).max())


@pytest.mark.parametrize('count', [0, 5, 18, 35, 36])
def test_batched_obc_breaks_ties_like_one_weight_at_a_time(count):
  """Equal saliencies everywhere: the lower row goes first, then the lower column."""
  w, h_inv = np.ones((9, 4)), np.eye(9)
  expected = _obc_one_weight_at_a_time(w, h_inv, 9, count)
  np.testing.assert_array_equal(obs.obc(w, h_inv, 9, count), expected)


def test_sweep_scores_a_point_whose_kept_layers_differ(graph):
  """Equal pruned kernels are not enough to reuse an earlier point's
  accuracy: here the kept output layer differs."""
  names = graph_pruning.prunable(graph)
  x = _calibration(60, seed=4)
  labels = np.arange(60) % 3
  obs_only = graph_reconstruction.prune_obs(graph, 50, names, x)
  bias = np.array([100.0, 0.0, 0.0], np.float32)  # every example to class 0
  shifted = obs_only.with_params({'out': {'bias': bias}})
  rows = graph_sweep.sweep_graph(
      graph, (), (), names, x, labels, dict,
      points=[('obs', 50, obs_only, 'obs'), ('shifted', 50, shifted, 'obs')])
  evaluator = Evaluator(graph)
  assert [r['accuracy'] for r in rows] == [
      evaluator.accuracy(x, labels, obs_only), evaluator.accuracy(x, labels, shifted)]
  assert rows[1]['accuracy'] == pytest.approx(1 / 3)


def _sequential_obs_oracle(a, y, w0, damping, rows, count):
  """SparseGPT's semantics written plainly, without Cholesky factors: the
  ridge re-fit by an explicit inverse; each row's saliency w² / d_i with d_i
  the diagonal of H⁻¹ once the rows before it are eliminated; the `count`
  lowest pruned at once; then row after row, each pruned weight removed by
  the exact OBS update through the H⁻¹ of the rows not yet visited."""
  h = a.T @ a
  ridge = damping * np.mean(np.diag(h))
  h += ridge * np.eye(len(h))
  h_inv = np.linalg.inv(h)
  w = h_inv @ (a.T @ y + ridge * w0)
  remaining, diagonal = h_inv.copy(), []
  for i in range(len(h)):
    diagonal.append(remaining[i, i])
    remaining -= np.outer(remaining[:, i], remaining[i]) / remaining[i, i]
  saliency = w[:rows] ** 2 / np.array(diagonal[:rows])[:, None]
  pruned = np.zeros(w.shape, dtype=bool)
  pruned.flat[np.argsort(saliency.ravel(), kind='stable')[:count]] = True
  remaining = h_inv.copy()
  for i in range(rows):
    for o in np.flatnonzero(pruned[i]):
      w[i:, o] -= remaining[i:, i] * (w[i, o] / remaining[i, i])
      w[i, o] = 0.0
    remaining -= np.outer(remaining[:, i], remaining[i]) / remaining[i, i]
  return w


@pytest.mark.parametrize('rows, out, bias', [(12, 5, True), (40, 3, False),
                                             (7, 9, True)])
@pytest.mark.parametrize('share', [0, 0.2, 0.6, 0.95])
def test_blocked_sparsegpt_equals_sequential_obs_oracle(rows, out, bias, share):
  """One block (block size >= rows) of the vectorised pass is the row-by-row
  OBS of the oracle: same mask, kept weights updated, pruned exactly 0."""
  rng = np.random.default_rng(rows + out)
  a = rng.normal(size=(120, rows))
  if bias:
    a = np.hstack([a, np.ones((len(a), 1))])
  w0 = rng.normal(size=(a.shape[1], out))
  y = a @ w0 + 0.5 * rng.normal(size=(len(a), out))
  count = int(share * rows * out)
  expected = _sequential_obs_oracle(a, y, w0, 0.01, rows, count)
  w, u = obs.refit(a.T @ a, a.T @ y, w0, 0.01)
  got = obs.sparsegpt(w, u, rows, count, block_size=rows)
  assert np.count_nonzero(got[:rows] == 0) == count
  np.testing.assert_array_equal(got[:rows] == 0, expected[:rows] == 0)
  # The oracle inverts H explicitly, the pass factors it: rounding only, so
  # 1e-9 of the weights' scale.
  np.testing.assert_allclose(got, expected, rtol=0,
                             atol=1e-9 * np.abs(expected).max())
  if count:  # the kept weights after a pruned row were updated
    first = np.argmax((got[:rows] == 0).any(axis=1))
    kept = got[first + 1:] != 0
    assert np.any(got[first + 1:][kept] != w[first + 1:][kept])


@pytest.mark.parametrize('block_size', [1, 4, 32])
def test_smaller_blocks_prune_the_same_count_and_refit(block_size):
  """Blocks smaller than the layer: exact count, and the block pass of the
  oracle's first block (its rows only) is the same whatever follows."""
  rng = np.random.default_rng(5)
  a = np.hstack([rng.normal(size=(200, 30)), np.ones((200, 1))])
  w0 = rng.normal(size=(31, 6))
  y = a @ w0 + rng.normal(size=(200, 6))
  w, u = obs.refit(a.T @ a, a.T @ y, w0, 0.01)
  got = obs.sparsegpt(w, u, 30, 100, block_size)
  assert np.count_nonzero(got[:30] == 0) == 100
  assert np.all(np.isfinite(got))


@pytest.mark.parametrize('panel, batch_entries', [(2, 1), (5, 4000), (64, 1 << 22)])
def test_obc_panels_and_batches_do_not_change_the_choices(panel, batch_entries,
                                                          monkeypatch):
  """Lazy H⁻¹ updates every `panel` steps, compaction and column batches:
  the same greedy choices as one weight at a time, on a layer wider than
  a panel."""
  monkeypatch.setattr(obs, 'PANEL', panel)
  monkeypatch.setattr(obs, 'BATCH_ENTRIES', batch_entries)
  rng = np.random.default_rng(7)
  a = np.hstack([np.maximum(rng.normal(size=(300, 45)), 0), np.ones((300, 1))])
  w0 = rng.normal(size=(46, 5))
  y = a @ w0 + 0.3 * rng.normal(size=(300, 5))
  w, u = obs.refit(a.T @ a, a.T @ y, w0, 0.01)
  h_inv = u.T @ u
  count = 170
  expected = _obc_one_weight_at_a_time(w, h_inv, 45, count)
  got = obs.obc(w, h_inv, 45, count)
  assert np.count_nonzero(got[:45] == 0) == count
  np.testing.assert_array_equal(got == 0, expected == 0)
  # Same choices; rounding only (1e-10 of the weights' scale).
  np.testing.assert_allclose(got, expected, rtol=0,
                             atol=1e-10 * np.abs(expected).max())


def test_refit_is_the_ridge_least_squares_solution():
  rng = np.random.default_rng(3)
  a = rng.normal(size=(50, 8))
  w0, y = rng.normal(size=(8, 2)), rng.normal(size=(50, 2))
  h = a.T @ a
  ridge = 0.01 * np.mean(np.diag(h))
  expected = np.linalg.solve(h + ridge * np.eye(8), a.T @ y + ridge * w0)
  w, u = obs.refit(a.T @ a, a.T @ y, w0, 0.01)
  np.testing.assert_allclose(w, expected, rtol=1e-10)
  np.testing.assert_allclose(u.T @ u, np.linalg.inv(h + ridge * np.eye(8)),
                             rtol=1e-10, atol=1e-14)
  assert np.allclose(u, np.triu(u))


@pytest.mark.parametrize('name', ['conv', 'depthwise', 'conv_no_bias', 'dense'])
def test_moments_are_the_float64_moments_of_the_patches(graph, name):
  """The chunked moments (float32 forward passes behind a conv, float64
  products) against float64 products of the whole patch matrix (A through
  a pruned graph, Y the dense node's pre-activation)."""
  # One checked array per graph input, as `_prune` hands them on.
  x = calibration_arrays.check(graph, _calibration(30, seed=5))
  names = graph_pruning.prunable(graph)
  pruned = graph_pruning.prune(graph, 'weight', 60, names)
  node = graph.node(name)
  w0 = np.asarray(node.params['kernel'], np.float64)
  bias = 'bias' in node.params
  depthwise = node.op == 'depthwise_conv2d'
  if depthwise:
    kh, kw, c, m = w0.shape
    w0 = w0.reshape(kh * kw, c, m).transpose(1, 0, 2)
    if bias:
      w0 = np.concatenate([w0, np.reshape(node.params['bias'], (c, 1, m))], 1)
  else:
    w0 = w0.reshape(-1, w0.shape[-1])
    if bias:
      w0 = np.vstack([w0, node.params['bias'][None]])
  ata, aty = graph_reconstruction._moments(node, pruned, graph, x, bias, w0)  # pylint: disable=protected-access

  def rows(g):
    (a,) = graph_reconstruction._rows(node, graph_reconstruction._inputs(g, name, x))  # pylint: disable=protected-access
    a = a.numpy()
    if depthwise:
      a = a.transpose(2, 0, 1)
    if bias:
      a = np.concatenate([a, np.ones(a.shape[:-1] + (1,))], axis=-1)
    return a
  a, a_dense = rows(pruned), rows(graph)
  expected_ata = np.swapaxes(a, -1, -2) @ a
  expected_aty = np.swapaxes(a, -1, -2) @ (a_dense @ w0)
  # Rows from float32 forward passes behind a conv (the expected ones are
  # float64) over a few thousand rows of O(1) values: 1e-5 of the scale.
  np.testing.assert_allclose(ata, expected_ata, rtol=0,
                             atol=1e-5 * np.abs(expected_ata).max())
  np.testing.assert_allclose(aty, expected_aty, rtol=0,
                             atol=1e-5 * np.abs(expected_aty).max())
