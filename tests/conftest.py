"""Fixtures: the real data folder (required under CI=true) and the prebuilt weights."""

import gzip
import os
import pathlib
import signal
import sys

# The suite runs in two xdist workers on two cores: numpy's OpenBLAS threads in
# each worker spin against the other's (Cholesky and inverses measured up to
# 10x slower). One BLAS thread per worker; TensorFlow keeps its own pools.
# It takes effect only before numpy is first imported.
assert 'numpy' not in sys.modules, 'conftest must set OpenBLAS threads first'
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import pytest

from tests import helpers
from tfprune.data import datasets
from tfprune.graph import weights


@pytest.fixture(autouse=True)
def _signal_handlers_restored():
  """`cli.run` leaves its end-of-process Ctrl-C handler installed (a command's
  process ends next); a test calling it in-process gets the runner's back."""
  handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
  yield
  for signum, handler in handlers.items():
    signal.signal(signum, handler)


@pytest.fixture(scope='session')
def data_dir() -> str:
  """`$TFPRUNE_DATA_DIR`, absolute; tests needing real data fail under CI=true without it."""
  folder = datasets.resolve_data_dir(None)  # as the library reads it: absolute
  if folder and pathlib.Path(folder).is_dir():
    return folder
  message = f'{datasets.DATA_DIR_ENV} is not set to the shared datasets folder'
  if os.environ.get('CI') == 'true':
    pytest.fail(message)
  pytest.skip(message)


@pytest.fixture(scope='session')
def mnist_test(data_dir) -> datasets.Split:
  return datasets.load('mnist', 'test', data_dir)


@pytest.fixture(scope='session')
def prebuilt() -> weights.WeightFolder:
  return weights.load(helpers.PREBUILT)


@pytest.fixture(scope='session')
def mnist_slice_dir(data_dir, tmp_path_factory) -> str:
  """A data folder with the first 512 MNIST training and 1,000 test images.

  Real data for tests whose subject is not the accuracy on the full test set
  (bit-exact resume, benchmark bookkeeping, the study's outputs): each of
  their evaluations on 1,000 images instead of 10,000.
  """
  folder = tmp_path_factory.mktemp('mnist_slice')
  source = pathlib.Path(data_dir) / 'mnist'
  for idx, n in (('train', 512), ('t10k', 1000)):
    for kind, magic, dims in (('images-idx3', 2051, (n, 28, 28)),
                              ('labels-idx1', 2049, (n,))):
      name = f'{idx}-{kind}-ubyte.gz'
      header = 4 * (1 + len(dims))
      with gzip.open(source / name, 'rb') as f:  # only the first n records
        payload = f.read(header + int(np.prod(dims)))[header:]
      helpers.write_idx(folder / 'mnist' / name, magic, dims, payload)
  # The slice is the real data's first images, as the loader reads them.
  full, part = (datasets.load('mnist', 'test', d) for d in (data_dir, folder))
  np.testing.assert_array_equal(part.images, full.images[:1000])
  np.testing.assert_array_equal(part.labels, full.labels[:1000])
  return str(folder)
