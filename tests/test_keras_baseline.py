"""The plain tf_keras loop scores every sweep point exactly as the sweep does."""

import pytest

from tests import helpers
from tfprune.data import datasets
from tfprune.drivers import folder_graph
from tfprune.drivers import keras_baseline
from tfprune.drivers import sweep

LEVELS = (0, 50, 90, 99)


def test_keras_loop_accuracies_equal_the_sweep(prebuilt, mnist_slice_dir):
  # On the first 1,000 test images: the subject is the equality of the two
  # loops, not the accuracy; abs=1e-4 is below one image there, so the two
  # must agree exactly (on 10,000 images it allowed one image).
  test = datasets.load('mnist', 'test', mnist_slice_dir)
  config = sweep.SweepConfig(weights_dir=str(helpers.PREBUILT), out_dir='unused',
                             methods=('weight', 'unit'), levels=LEVELS)
  rows = sweep.sweep(config, folder_graph.to_graph(prebuilt), test)
  loop = keras_baseline.run(str(helpers.PREBUILT), 'mnist', mnist_slice_dir,
                            ('weight', 'unit'), LEVELS)
  assert [(m, k) for m, k, _ in loop] == [(r.method, r.k) for r in rows]
  for (_, _, accuracy), row in zip(loop, rows):
    assert accuracy == pytest.approx(row.accuracy, abs=1e-4)
