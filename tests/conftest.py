"""Fixtures: the real data folder (required under CI=true) and the prebuilt weights."""

import os
import pathlib

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
