"""tfprune.keras: the Keras 3 pruning callback and step, on the TensorFlow and JAX backends.

The backend-independent checks live in `keras3_checks` and run here on the
TensorFlow backend (this process) and, all in one fresh process, on JAX.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests import keras3_checks
from tfprune import keras as tfk
from tfprune.errors import TfpruneError


@pytest.mark.parametrize('name', list(keras3_checks.CHECKS))
def test_tensorflow_backend(name, tmp_path):
  assert keras.backend.backend() == 'tensorflow'
  keras3_checks.CHECKS[name](tmp_path)


def test_jax_backend(tmp_path):
  pytest.importorskip('jax')
  env = dict(os.environ, KERAS_BACKEND='jax')
  out = subprocess.run([sys.executable, '-m', 'tests.keras3_checks',
                        str(tmp_path)], capture_output=True, text=True, env=env,
                       cwd=keras3_checks.REPO, timeout=900, check=False)
  assert out.returncode == 0, out.stderr[-4000:]
  report = json.loads(out.stdout.strip().splitlines()[-1])
  assert report == {'backend': 'jax', 'passed': list(keras3_checks.CHECKS)}
