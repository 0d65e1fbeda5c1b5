"""The validation .npz: held-out training images never in a calibration draw."""

import numpy as np
import pytest

from tfprune.criteria import reconstruction
from tfprune.data import holdout
from tfprune.data import user_data
from tfprune.data.datasets import Split
from tfprune.errors import TfpruneError


def _train(n=100):
  images = np.arange(n * 4, dtype=np.float32).reshape(n, 2, 2, 1)
  return Split(images, np.arange(n) % 10)


@pytest.mark.parametrize('seed', [0, 3])
@pytest.mark.parametrize('calibration_size', [1, 40, 70])
def test_held_out_examples_are_never_calibration_examples(seed, calibration_size):
  train = _train()
  held = holdout.holdout(train, 30, 70, seed)
  drawn = reconstruction.calibration_inputs(train.images, calibration_size, seed)
  held_rows = {row.tobytes() for row in held.images.reshape(30, -1)}
  assert len(held_rows) == 30
  assert not held_rows & {row.tobytes() for row in drawn}
  # Labels travel with their images, in the split's order.
  index = (held.images[:, 0, 0, 0] // 4).astype(int)
  assert np.all(np.diff(index) > 0)
  np.testing.assert_array_equal(held.labels, train.labels[index])


def test_npz_serves_as_user_data_with_the_whole_training_split(tmp_path):
  train = _train()
  held = holdout.holdout(train, 30, 70)
  holdout.save_npz(tmp_path / 'h.npz', train, held)
  test, loaded_train = user_data.load(tmp_path / 'h.npz')
  np.testing.assert_array_equal(loaded_train.images, train.images)
  np.testing.assert_array_equal(loaded_train.labels, train.labels)
  np.testing.assert_array_equal(test.images, held.images)
  np.testing.assert_array_equal(test.labels, held.labels)


@pytest.mark.parametrize('size, calibration_size, match', [
    (0, 10, 'holdout size must be a positive integer, got 0'),
    (31, 70, '31 held-out and 70 calibration examples exceed the 100 '
     'training examples: hold out at most 30 or draw fewer calibration examples'),
])
def test_bad_sizes_refused(size, calibration_size, match):
  with pytest.raises(TfpruneError, match=match):
    holdout.holdout(_train(), size, calibration_size)
