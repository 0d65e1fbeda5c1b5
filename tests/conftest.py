"""Fixtures: the real data folder (required under CI=true) and the prebuilt weights."""

import os
import pathlib

import pytest

from tests import helpers
from tfprune import data
from tfprune import weights


@pytest.fixture(scope='session')
def data_dir() -> str:
  """`$TFPRUNE_DATA_DIR`; tests needing real data fail under CI=true without it."""
  folder = os.environ.get(data.DATA_DIR_ENV)
  if folder and pathlib.Path(folder).is_dir():
    return folder
  message = f'{data.DATA_DIR_ENV} is not set to the shared datasets folder'
  if os.environ.get('CI') == 'true':
    pytest.fail(message)
  pytest.skip(message)


@pytest.fixture(scope='session')
def mnist_test(data_dir) -> data.Split:
  return data.load('mnist', 'test', data_dir)


@pytest.fixture(scope='session')
def prebuilt() -> weights.WeightFolder:
  return weights.load(helpers.PREBUILT)
