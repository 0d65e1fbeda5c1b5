"""Fixtures: the real data folder (required under CI=true) and the prebuilt weights."""

import os
import pathlib
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


@pytest.fixture(scope='session')
def data_dir() -> str:
  """`$TFPRUNE_DATA_DIR`; tests needing real data fail under CI=true without it."""
  folder = os.environ.get(datasets.DATA_DIR_ENV)
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
  for split, idx, n in (('train', 'train', 512), ('test', 't10k', 1000)):
    part = datasets.load('mnist', split, data_dir)
    pixels = np.round(part.images[:n] * 255).astype(np.uint8)
    helpers.write_idx(folder / 'mnist' / f'{idx}-images-idx3-ubyte.gz', 2051,
                      (n, 28, 28), pixels.tobytes())
    helpers.write_idx(folder / 'mnist' / f'{idx}-labels-idx1-ubyte.gz', 2049,
                      (n,), part.labels[:n].astype(np.uint8).tobytes())
  return str(folder)
