"""Data-aware pruning of a dense chain: exact counts, purity, Wanda order, OBS fit.

The network-level tests are parameterized over `_METHODS`: Wanda and OBS.
Bias correction runs on graphs (`tests/test_bias_correction.py`).
"""

import numpy as np
import pytest

from tests import helpers
from tfprune.criteria import pruning
from tfprune.criteria import obs
from tfprune.criteria import reconstruction
from tfprune.data import datasets
from tfprune.errors import TfpruneError
from tfprune.graph.network import Network
from tfprune.runtime import evaluate

SHAPES = ((20, 16), (16, 12), (12, 5))
LEVELS = [0, 50, 90, 100]


def _magnitude(network, k, layers):
  return network.masked(pruning.network_masks(network, 'weight', k, layers))


_METHODS = {
    'wanda': reconstruction.prune_wanda,
    'obs': reconstruction.prune_obs,
}
METHODS = sorted(_METHODS)


def _calibration(n=64, width=SHAPES[0][0], seed=1):
  return np.random.default_rng(seed).random((n, width), dtype=np.float32)


def _pre_activations(network, x, use_biases=True):
  """float64 pre-activation of every layer of `network` on inputs `x`."""
  out, h = [], np.asarray(x, dtype=np.float64)
  for kernel, bias in zip(network.kernels, network.biases):
    z = h @ kernel.astype(np.float64) + (bias if use_biases else 0.0)
    out.append(z)
    h = np.maximum(z, 0.0)
  return out


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('k', LEVELS)
@pytest.mark.parametrize('n', [8, 64])  # 8: fewer examples than inputs
def test_prunes_exactly_floor_k_n_over_100_weights(method, k, n):
  net = helpers.random_network(SHAPES, seed=3)
  assert all(np.count_nonzero(w) == w.size for w in net.kernels)
  layers = pruning.prunable_layers(net.num_layers)
  pruned = _METHODS[method](net, k, layers, _calibration(n))
  for i in layers:
    kernel = pruned.kernels[i]
    assert kernel.dtype == np.float32 and kernel.shape == net.kernels[i].shape
    assert kernel.size - np.count_nonzero(kernel) == pruning.prune_count(
        k, kernel.size)
  assert all(np.all(np.isfinite(b)) for b in pruned.biases)


@pytest.mark.parametrize('k', [0.1, 33.3, 97.5])
@pytest.mark.parametrize('block_size', [1, 5, 16, 1000])
@pytest.mark.parametrize('use_biases', [True, False])
@pytest.mark.parametrize('obc', [True, False])  # False: SparseGPT's pass
def test_obs_count_is_exact_for_any_block_size(k, block_size, use_biases, obc,
                                               monkeypatch):
  if not obc:
    monkeypatch.setattr(obs, 'OBC_MAX_ENTRIES', 0)
  net = helpers.random_network(SHAPES, seed=4)
  layers = [0, 1, 2]
  pruned = reconstruction.prune_obs(net, k, layers, _calibration(),
                                    use_biases=use_biases, block_size=block_size)
  for i in layers:
    assert pruned.kernels[i].size - np.count_nonzero(pruned.kernels[i]) == (
        pruning.prune_count(k, pruned.kernels[i].size))
  if not use_biases:
    for b, b0 in zip(pruned.biases, net.biases):
      np.testing.assert_array_equal(b, b0)


@pytest.mark.parametrize('method', METHODS)
def test_layers_not_chosen_are_bit_identical(method):
  net = helpers.random_network(SHAPES, seed=5)
  pruned = _METHODS[method](net, 70, [1], _calibration())
  for i in (0, 2):
    np.testing.assert_array_equal(pruned.kernels[i], net.kernels[i])
    np.testing.assert_array_equal(pruned.biases[i], net.biases[i])
  assert np.count_nonzero(pruned.kernels[1]) < net.kernels[1].size


@pytest.mark.parametrize('method', METHODS)
def test_no_layer_chosen_gives_the_network_back(method):
  net = helpers.random_network(SHAPES, seed=5)
  pruned = _METHODS[method](net, 90, [], _calibration())
  for got, want in zip(pruned.kernels + pruned.biases, net.kernels + net.biases):
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize('method', METHODS)
def test_inputs_are_not_mutated(method):
  net = helpers.random_network(SHAPES, seed=6)
  before = [a.copy() for a in net.kernels + net.biases]
  x = _calibration()
  x_copy = x.copy()
  x.setflags(write=False)
  _METHODS[method](net, 60, [0, 1], x)
  np.testing.assert_array_equal(x, x_copy)
  for got, want in zip(net.kernels + net.biases, before):
    np.testing.assert_array_equal(got, want)


def test_calibration_images_are_flattened():
  net = helpers.random_network(((12, 4), (4, 2)), seed=7)
  x = _calibration(10, 12)
  flat = reconstruction.prune_obs(net, 50, [0], x)
  shaped = reconstruction.prune_obs(net, 50, [0], x.reshape(10, 3, 4, 1))
  np.testing.assert_array_equal(flat.kernels[0], shaped.kernels[0])


# --- wanda_mask ---------------------------------------------------------------


def _wanda_inputs(seed=0):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(300, 40)).astype(np.float32),
          rng.random(300) * 3)


@pytest.mark.parametrize('k', [0, 10, 50, 90, 99, 100])
def test_wanda_keeps_every_higher_score(k):
  w, norms = _wanda_inputs()
  mask = reconstruction.wanda_mask(w, k, norms)
  assert mask.shape == w.shape and mask.dtype == bool
  assert (~mask).sum() == pruning.prune_count(k, w.size)
  scores = np.abs(w.astype(np.float64)) * norms[:, None]
  if 0 < (~mask).sum() < w.size:
    assert scores[mask].min() >= scores[~mask].max()


def test_wanda_prunes_dead_inputs_first():
  w, norms = _wanda_inputs(1)
  norms[[3, 7]] = 0.0
  mask = reconstruction.wanda_mask(w, 1, norms)  # 120 weights; rows 3, 7 hold 80
  assert not mask[[3, 7]].any()
  assert (~mask).sum() == 120


def test_wanda_ties_go_to_the_lowest_flat_index():
  mask = reconstruction.wanda_mask(np.ones((4, 10)), 50, np.ones(4))
  np.testing.assert_array_equal(np.flatnonzero(~mask), np.arange(20))


@pytest.mark.parametrize('steps', [(20, 50, 80), (50, 30), (90, 99, 100)])
def test_wanda_masks_given_back_only_ever_lose_weights(steps):
  w, norms = _wanda_inputs(2)
  w_copy, norms_copy = w.copy(), norms.copy()
  mask = None
  for k in steps:
    new = reconstruction.wanda_mask(w, k, norms, mask=mask)
    if mask is not None:
      assert not (new & ~mask).any()
      assert (~new).sum() == max((~mask).sum(), pruning.prune_count(k, w.size))
    mask = new
  np.testing.assert_array_equal(w, w_copy)
  np.testing.assert_array_equal(norms, norms_copy)


def test_prune_wanda_scores_with_the_pruned_networks_inputs():
  net = helpers.random_network(SHAPES, seed=8)
  x = _calibration()
  pruned = reconstruction.prune_wanda(net, 60, [0, 1], x)
  first = net.masked([pruned.kernels[0] != 0, None, None])
  h = np.maximum(_pre_activations(first, x)[0], 0.0)
  expected = reconstruction.wanda_mask(net.kernels[1], 60,
                                       np.sqrt((h ** 2).sum(axis=0)))
  np.testing.assert_array_equal(pruned.kernels[1] != 0, expected)
  np.testing.assert_array_equal(pruned.biases[1], net.biases[1])


# --- prune_obs ------------------------------------------------------------------


def _layer_error(network, x, y):
  return float(np.sum((_pre_activations(network, x)[0] - y) ** 2))


@pytest.mark.parametrize('use_biases', [True, False])
def test_obs_at_k_0_gives_the_dense_layers_back(use_biases):
  net = helpers.random_network(SHAPES, seed=9)
  pruned = reconstruction.prune_obs(net, 0, [0, 1, 2], _calibration(),
                                    use_biases=use_biases)
  for got, want in zip(pruned.kernels + pruned.biases, net.kernels + net.biases):
    helpers.assert_same_up_to_rounding(got, want)


@pytest.mark.parametrize('k', [30, 60, 90])
def test_obs_fits_the_dense_layer_better_than_masking(k):
  net = helpers.random_network(((30, 10),), seed=10)
  x = _calibration(200, 30)
  y = _pre_activations(net, x)[0]
  obs = reconstruction.prune_obs(net, k, [0], x)
  assert _layer_error(obs, x, y) < _layer_error(_magnitude(net, k, [0]), x, y)
  assert _layer_error(obs, x, y) < _layer_error(
      reconstruction.prune_wanda(net, k, [0], x), x, y)


# --- the prebuilt MNIST MLP -----------------------------------------------------


@pytest.fixture(scope='module')
def mnist_k90(prebuilt, data_dir):
  """Test accuracy (first 2000 test images) of each method at k=90."""
  net = prebuilt.network
  train = datasets.load('mnist', 'train', data_dir, limit=10_000)
  test = datasets.load('mnist', 'test', data_dir, limit=2000)
  calibration = reconstruction.calibration_inputs(train.images, 2048, seed=0)
  layers = pruning.prunable_layers(net.num_layers)
  magnitude = _magnitude(net, 90, layers)
  wanda = reconstruction.prune_wanda(net, 90, layers, calibration)
  pruned = {
      'magnitude': magnitude,
      'wanda': wanda,
      'obs': reconstruction.prune_obs(net, 90, layers, calibration),
  }
  for network in pruned.values():
    for i in layers:
      assert network.kernels[i].size - np.count_nonzero(network.kernels[i]) == (
          pruning.prune_count(90, network.kernels[i].size))
  return {name: evaluate.accuracy(network, test.images, test.labels)
          for name, network in pruned.items()}


@pytest.mark.parametrize('method', ['wanda', 'obs'])
def test_data_aware_methods_beat_magnitude_on_mnist(mnist_k90, method):
  assert mnist_k90[method] > mnist_k90['magnitude'] + 0.05, mnist_k90


def test_obs_keeps_mnist_accuracy_at_k_90(mnist_k90):
  # Dense: 98.7%; magnitude pruning with biases: ~75%.
  assert mnist_k90['obs'] >= 0.97, mnist_k90  # 98.0% here


# --- calibration_inputs ---------------------------------------------------------


def test_calibration_draw_is_seeded_and_flat():
  images = np.arange(50 * 6, dtype=np.uint8).reshape(50, 2, 3, 1)
  a = reconstruction.calibration_inputs(images, 20, seed=3)
  b = reconstruction.calibration_inputs(images, 20, seed=3)
  assert a.shape == (20, 6) and a.dtype == np.float32
  np.testing.assert_array_equal(a, b)
  assert len(np.unique(a[:, 0])) == 20  # without replacement
  assert not np.array_equal(a, reconstruction.calibration_inputs(images, 20, 4))
  assert reconstruction.calibration_inputs(images, 500).shape == (50, 6)


# --- bad inputs -----------------------------------------------------------------

_NET = helpers.random_network(SHAPES, seed=12)


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('calibration, match', [
    (np.zeros((0, 20), np.float32), 'calibration data is empty'),
    (np.zeros((5, 19), np.float32), 'takes 20 inputs but the calibration'),
    (np.full((5, 20), np.nan, np.float32), 'NaN/Inf'),
    (np.array(['a'] * 20).reshape(1, 20), 'holds <U1 values'),
], ids=['empty', 'width', 'nan', 'strings'])
def test_bad_calibration_is_refused(method, calibration, match):
  with pytest.raises(TfpruneError, match=match) as e:
    _METHODS[method](_NET, 50, [0], calibration)
  assert '\n' not in str(e.value)


@pytest.mark.parametrize('method', ['wanda', 'obs'])
@pytest.mark.parametrize('bad', [-1, 100.5, float('nan'), '50', None, True])
def test_bad_level_is_refused(method, bad):
  with pytest.raises(TfpruneError, match=r'k must be .*\[0, 100\]'):
    _METHODS[method](_NET, bad, [0], _calibration())


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('layer', [3, -1, 1.0, True])
def test_bad_layer_index_is_refused(method, layer):
  with pytest.raises(TfpruneError, match='not a layer of this 3-layer network'):
    _METHODS[method](_NET, 50, [layer], _calibration())


@pytest.mark.parametrize('kwargs, match', [
    ({'damping': 0}, 'damping must be a positive'),
    ({'damping': float('inf')}, 'damping must be a positive'),
    ({'block_size': 0}, 'block_size must be a positive integer'),
    ({'block_size': 2.5}, 'block_size must be a positive integer'),
])
def test_bad_obs_settings_are_refused(kwargs, match):
  with pytest.raises(TfpruneError, match=match):
    reconstruction.prune_obs(_NET, 50, [0], _calibration(), **kwargs)


@pytest.mark.parametrize('args, match', [
    ((np.ones((4, 3)), 50, np.ones(3)), r'input_norms has shape \(3,\)'),
    ((np.ones((4, 3)), 50, -np.ones(4)), 'negative or NaN'),
    ((np.ones(4), 50, np.ones(4)), 'dense kernel'),
    ((np.ones((4, 3)), 150, np.ones(4)), r'k must be in \[0, 100\]'),
])
def test_bad_wanda_mask_inputs_are_refused(args, match):
  with pytest.raises(TfpruneError, match=match):
    reconstruction.wanda_mask(*args)


def test_wanda_mask_of_the_wrong_shape_is_refused():
  with pytest.raises(TfpruneError, match='mask has shape'):
    reconstruction.wanda_mask(np.ones((4, 3)), 50, np.ones(4),
                              mask=np.ones((3, 4), bool))


@pytest.mark.parametrize('size', [0, -3, 2.5, True])
def test_bad_calibration_size_is_refused(size):
  with pytest.raises(TfpruneError, match='calibration size must be a positive'):
    reconstruction.calibration_inputs(np.zeros((10, 4)), size)


def test_network_type_is_kept():
  pruned = reconstruction.prune_obs(_NET, 50, [0], _calibration())
  assert isinstance(pruned, Network) and pruned.num_layers == 3
