"""The `.npy` weight folder: round trip, original layout, and every bad folder."""

import json

import numpy as np
import pytest

from tests import helpers
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.graph import weights
from tfprune.graph.network import Network
from tfprune.transforms import biases as biases_lib


def test_save_then_load_round_trips_with_manifest(tmp_path):
  net = helpers.random_network()
  saved = weights.save(tmp_path / 'w', net, {'model': 'test'})
  loaded = weights.load(tmp_path / 'w')
  for a, b in zip(loaded.network.kernels + loaded.network.biases,
                  net.kernels + net.biases):
    np.testing.assert_array_equal(a, b)
  assert loaded.manifest['model'] == 'test'
  assert loaded.manifest['layers'][1]['kernel_shape'] == [8, 6]
  assert loaded.sha256 == saved.sha256
  assert sorted(p.name for p in (tmp_path / 'w').iterdir()) == [
      'bias-1.npy', 'bias-2.npy', 'bias-3.npy', 'manifest.json',
      'weight-1.npy', 'weight-2.npy', 'weight-3.npy']


def test_original_layout_without_manifest_loads(tmp_path):
  """The original project's folder: weight-1..5 and bias-1..5, nothing else."""
  rng = np.random.default_rng(0)
  for i, shape in enumerate(helpers.MLP_SHAPES, start=1):
    np.save(tmp_path / f'weight-{i}.npy', rng.normal(size=shape).astype(np.float32))
    np.save(tmp_path / f'bias-{i}.npy', np.zeros(shape[1], np.float32))
  folder = weights.load(tmp_path)
  assert folder.manifest is None
  assert [k.shape for k in folder.network.kernels] == list(helpers.MLP_SHAPES)


def test_save_refuses_to_overwrite_existing_weights(tmp_path):
  net = helpers.random_network()
  weights.save(tmp_path / 'w', net)
  before = (tmp_path / 'w' / 'weight-1.npy').read_bytes()
  with pytest.raises(TfpruneError, match='already exists.*--overwrite'):
    weights.save(tmp_path / 'w', helpers.random_network(seed=1))
  assert (tmp_path / 'w' / 'weight-1.npy').read_bytes() == before
  weights.save(tmp_path / 'w', helpers.random_network(seed=1), overwrite=True)
  assert (tmp_path / 'w' / 'weight-1.npy').read_bytes() != before
  assert [p.name for p in tmp_path.iterdir()] == ['w']  # no temporary left


def _break_missing_bias(folder):
  (folder / 'bias-2.npy').unlink()


def _break_gap(folder):
  (folder / 'weight-2.npy').unlink()
  (folder / 'bias-2.npy').unlink()


def _break_corrupt(folder):
  path = folder / 'weight-2.npy'
  path.write_bytes(path.read_bytes()[:60])


def _break_not_npy(folder):
  (folder / 'bias-1.npy').write_text('hello')


def _original(folder):
  (folder / weights.MANIFEST).unlink()


def _break_chain(folder):
  _original(folder)
  np.save(folder / 'weight-2.npy', np.zeros((7, 6), np.float32))


def _break_bias_shape(folder):
  _original(folder)
  np.save(folder / 'bias-3.npy', np.zeros(4, np.float32))


def _break_ndim(folder):
  _original(folder)
  np.save(folder / 'weight-1.npy', np.zeros(96, np.float32))


def _break_nan(folder):
  _original(folder)
  kernel = np.ones((8, 6), np.float32)
  kernel[2, 3] = np.nan
  kernel[4, 1] = np.inf
  np.save(folder / 'weight-2.npy', kernel)


def _break_sha(folder):
  np.save(folder / 'weight-1.npy', np.ones((12, 8), np.float32))


def _break_manifest_json(folder):
  (folder / weights.MANIFEST).write_text('{"layers": [')


def _break_manifest_shape(folder):
  manifest = json.loads((folder / weights.MANIFEST).read_text())
  manifest['layers'][0]['kernel_shape'] = [12, 9]
  (folder / weights.MANIFEST).write_text(json.dumps(manifest))


def _break_int_dtype(folder):
  _original(folder)
  np.save(folder / 'bias-1.npy', np.zeros(8, np.int32))


BROKEN = {
    'missing-bias': (_break_missing_bias, r'missing bias-2\.npy'),
    'missing-layer': (_break_gap, r'missing weight-2\.npy'),
    'truncated-npy': (_break_corrupt, r'corrupt weight file .*weight-2\.npy'),
    'not-npy': (_break_not_npy, r'corrupt weight file .*bias-1\.npy'),
    'shapes-do-not-chain': (_break_chain, r'layer 2: kernel \(7, 6\) takes 7 inputs but layer 1 has 8'),
    'bias-shape': (_break_bias_shape, r'layer 3: bias shape \(4,\)'),
    'kernel-not-2d': (_break_ndim, r'weight-1\.npy has shape \(96,\), expected a 2-D'),
    'nan-inf': (_break_nan, r'weight-2\.npy holds 2 NaN/Inf values'),
    'sha-mismatch': (_break_sha, r'weight-1\.npy does not match the sha256'),
    'corrupt-manifest': (_break_manifest_json, r'corrupt .*manifest\.json'),
    'manifest-shape': (_break_manifest_shape, r'says \(12, 9\)'),
    'integer-values': (_break_int_dtype, r'bias-1\.npy holds int32 values'),
}


@pytest.mark.parametrize('name', sorted(BROKEN))
def test_broken_folder_gives_one_line_error_naming_the_file(tmp_path, name):
  breaker, pattern = BROKEN[name]
  folder = tmp_path / 'w'
  weights.save(folder, helpers.random_network())
  breaker(folder)
  with pytest.raises(TfpruneError, match=pattern) as info:
    weights.load(folder)
  assert '\n' not in str(info.value)


@pytest.mark.parametrize('make', ['missing', 'empty', 'unrelated-files'])
def test_folder_without_weights_is_refused(tmp_path, make):
  folder = tmp_path / 'w'
  if make != 'missing':
    folder.mkdir()
  if make == 'unrelated-files':
    (folder / 'notes.txt').write_text('x')
  pattern = 'does not exist' if make == 'missing' else 'holds no weight-1.npy'
  with pytest.raises(TfpruneError, match=pattern):
    weights.load(folder)


def test_network_arrays_are_read_only_copies():
  kernel = np.ones((3, 2), np.float32)
  net = Network((kernel,), (np.zeros(2, np.float32),))
  kernel[0, 0] = 5
  assert net.kernels[0][0, 0] == 1
  with pytest.raises(ValueError):
    net.kernels[0][0, 0] = 7


@pytest.mark.parametrize('use_biases', [True, False], ids=['biases', 'no-biases'])
def test_a_folder_loads_as_a_graph_biases_off_is_a_transform(tmp_path, use_biases):
  """The folder's graph computes the stored chain; biases off drops them only."""
  rng = np.random.default_rng(3)
  shapes = ((12, 8), (8, 6), (6, 3))
  kernels = [rng.normal(size=s).astype(np.float32) for s in shapes]
  biases = [rng.normal(size=s[1]).astype(np.float32) for s in shapes]
  for i, (k, b) in enumerate(zip(kernels, biases), start=1):
    np.save(tmp_path / f'weight-{i}.npy', k)
    np.save(tmp_path / f'bias-{i}.npy', b)
  graph = weights.load_graph(tmp_path)
  if not use_biases:
    graph = biases_lib.drop_biases(graph)
  assert [n.params['kernel'].shape for n in graph.weighted()] == list(shapes)
  assert all(('bias' in n.params) == use_biases for n in graph.weighted())
  x = rng.normal(size=(20, 12)).astype(np.float32)
  expected = helpers.numpy_chain_logits(kernels, biases if use_biases else [None] * 3, x)
  helpers.assert_same_up_to_rounding(evaluator.predict(graph, x), expected)
  twice = biases_lib.drop_biases(biases_lib.drop_biases(graph))
  assert twice.num_params == sum(k.size for k in kernels)  # kernels only


def test_a_conv_folder_loads_as_the_graph_of_its_layers():
  """LeNet-5's folder: one conv/dense node per stored kernel, batch norm kept."""
  folder = weights.load(helpers.REPO / 'weights' / 'lenet5-mnist')
  graph = folder.graph
  assert graph.input_shape == (28, 28, 1)
  stored = [np.load(helpers.REPO / 'weights' / 'lenet5-mnist' / f'weight-{i}.npy')
            for i in range(1, len(graph.weighted()) + 1)]
  for node, kernel in zip(graph.weighted(), stored):
    np.testing.assert_array_equal(node.params['kernel'], kernel)
  no_biases = biases_lib.drop_biases(graph)
  assert not any('bias' in n.params for n in no_biases.weighted())
  assert no_biases.num_params == graph.num_params - sum(
      n.params['bias'].size for n in graph.weighted())
