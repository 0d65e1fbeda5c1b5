"""Datasets: real MNIST/Fashion-MNIST from the local folder, tfds, and bad files."""

import gzip
import pathlib

import numpy as np
import pytest

from tests import helpers
from tfprune.data import datasets
from tfprune.errors import TfpruneError


@pytest.mark.parametrize('name,split,count,first_labels', [
    ('mnist', 'test', 10_000, [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]),
    ('fashion_mnist', 'train', 60_000, [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]),
])
def test_local_official_files_load_as_floats_in_unit_range(
    data_dir, name, split, count, first_labels):
  s = datasets.load(name, split, data_dir)
  assert s.images.shape == (count, 28, 28, 1)
  assert s.images.dtype == np.float32 and s.labels.dtype == np.int64
  assert 0.0 == s.images.min() and s.images.max() == 1.0
  assert s.labels[:10].tolist() == first_labels


def test_pixels_become_each_value_over_255_in_float32():
  pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
  floats = datasets.to_unit_interval(pixels)
  assert floats.dtype == np.float32 and floats.shape == (16, 16)
  # Bit for bit the float32 division the loaders always did.
  assert floats.tobytes() == (pixels.astype(np.float32) / np.float32(255)).tobytes()
  assert floats[0, 0] == 0.0 and floats[-1, -1] == 1.0


def test_loaded_images_are_the_idx_bytes_over_255(data_dir):
  raw = datasets.read_idx(
      pathlib.Path(data_dir) / 'mnist' / 't10k-images-idx3-ubyte.gz',
      2051)
  s = datasets.load('mnist', 'test', data_dir, limit=100)
  assert s.images.tobytes() == (raw[:100].astype(np.float32) / 255.0).tobytes()


def test_environment_variable_is_the_fallback_folder(data_dir, monkeypatch):
  monkeypatch.setenv(datasets.DATA_DIR_ENV, data_dir)
  assert len(datasets.load('mnist', 'test', limit=5)) == 5


def test_tfds_is_used_without_a_local_folder(monkeypatch):
  tfds = pytest.importorskip('tensorflow_datasets')
  monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)
  monkeypatch.setattr(datasets, 'tfds_reachable', lambda: None)  # mock data: no download
  with tfds.testing.mock_data(num_examples=12):
    s = datasets.load('fashion_mnist', 'test')
  assert s.images.shape == (12, 28, 28, 1) and s.labels.shape == (12,)
  assert s.images.dtype == np.float32 and 0 <= s.images.min() <= s.images.max() <= 1


def test_no_local_data_and_no_tfds_download_names_the_fix(monkeypatch, tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)
  root = tmp_path / 'tensorflow_datasets'
  (root / 'downloads').mkdir(parents=True)
  (root / 'downloads' / 'other.zip').write_text('kept')
  monkeypatch.setattr(tfds.core.constants, 'DATA_DIR', str(root))
  monkeypatch.setattr(datasets, 'tfds_reachable', lambda: None)

  def offline(*args, **kwargs):
    # What tfds leaves behind when its download fails.
    (root / 'downloads' / 'mnist' / 'x.gz.tmp.123').mkdir(parents=True)
    (root / 'downloads' / 'extracted').mkdir()
    (root / 'mnist').mkdir()
    raise ConnectionError('Failed to establish a new connection\nmore detail')

  monkeypatch.setattr(tfds, 'load', offline)
  with pytest.raises(TfpruneError, match=r'could not get mnist from tensorflow-'
                     r'datasets \(ConnectionError.*--data_dir') as info:
    datasets.load('mnist', 'test')
  assert '\n' not in str(info.value)
  assert sorted(str(p.relative_to(root)) for p in root.rglob('*')) == [
      'downloads', 'downloads/other.zip']


def test_tfds_fails_in_seconds_without_network(monkeypatch, tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)
  monkeypatch.setattr(tfds.core.constants, 'DATA_DIR', str(tmp_path / 'tfds'))

  def no_network(address, timeout):
    assert timeout <= 5
    raise OSError(101, 'Network is unreachable')

  def must_not_download(*args, **kwargs):
    raise AssertionError('tfds.load must not be tried offline')

  monkeypatch.setattr(datasets.socket, 'create_connection', no_network)
  monkeypatch.setattr(tfds, 'load', must_not_download)
  with pytest.raises(TfpruneError, match=(
      r'^mnist is not in .*/tfds and tensorflow-datasets cannot download it '
      r'\(storage.googleapis.com unreachable: Network is unreachable\); without '
      'network, pass --data_dir')):
    datasets.load('mnist', 'test')
  assert not (tmp_path / 'tfds').exists()


def test_tiny_generated_folder_loads(tmp_path):
  helpers.write_dataset(tmp_path, n=20)
  s = datasets.load('mnist', 'test', str(tmp_path))
  assert s.images.shape == (20, 28, 28, 1)


def _images(folder):
  return folder / 'mnist' / 't10k-images-idx3-ubyte.gz'


def _labels(folder):
  return folder / 'mnist' / 't10k-labels-idx1-ubyte.gz'


BAD = {
    'bad-magic': (lambda f: helpers.write_idx(_images(f), 2049, (20, 28, 28)),
                  'has magic number 2049, expected 2051'),
    'truncated-gzip': (lambda f: _images(f).write_bytes(_images(f).read_bytes()[:500]),
                       'corrupt or truncated data file'),
    'not-gzip': (lambda f: helpers.write_idx(_images(f), 2051, (20, 28, 28),
                                             compress=False),
                 'corrupt or truncated data file'),
    'count-larger-than-data': (
        lambda f: _images(f).write_bytes(gzip.compress(
            gzip.decompress(_images(f).read_bytes())[:-784])),
        r'holds 14896 data bytes but its header announces \(20, 28, 28\)'),
    'image-label-counts-differ': (
        lambda f: helpers.write_idx(_labels(f), 2049, (19,)),
        'holds 20 images but the labels file holds 19'),
    'wrong-image-size': (lambda f: helpers.write_idx(_images(f), 2051, (20, 32, 32)),
                         r'images of shape \(32, 32\)'),
    'label-out-of-range': (lambda f: helpers.write_idx(_labels(f), 2049, (20,),
                                                       bytes([12] * 20)),
                           'holds label 12'),
    'missing-file': (lambda f: _labels(f).unlink(), 'missing data file'),
    'header-only': (lambda f: _images(f).write_bytes(gzip.compress(b'\x00\x00')),
                    'too short for an IDX header'),
}


@pytest.mark.parametrize('name', sorted(BAD))
def test_bad_idx_files_give_one_line_errors(tmp_path, name):
  helpers.write_dataset(tmp_path, n=20)
  breaker, pattern = BAD[name]
  breaker(tmp_path)
  with pytest.raises(TfpruneError, match=pattern) as info:
    datasets.load('mnist', 'test', str(tmp_path))
  assert '\n' not in str(info.value)


def test_missing_data_folder_is_refused(tmp_path):
  with pytest.raises(TfpruneError, match='data folder .* does not exist'):
    datasets.load('mnist', 'test', str(tmp_path / 'nope'))


def test_unknown_dataset_lists_the_valid_names():
  with pytest.raises(ValueError, match="unknown dataset 'cifar': choose one of mnist, fashion_mnist"):
    datasets.get('cifar')
