"""A validation set cut from the training split, never overlapping calibration.

Settings of the data-aware methods (which variant, how many calibration
examples) are chosen on held-out **training** images, so the test set is read
once, for the final numbers. The sweep draws its calibration examples as the
first `calibration_size` of a seeded permutation of the training split
(`reconstruction.calibration_inputs`); the held-out slice here is the *last*
`size` of the same permutation, so the two never share an example as long as
calibration_size + size <= the split's length. Written as a user-data `.npz`
(`x_train`, `y_train`: the whole training split, in its order, so the
sweep's calibration draw is unchanged; `x_test`, `y_test`: the slice), it
serves `sweep.py --data=…` as it is.
"""

import pathlib

import numpy as np

from tfprune import atomic
from tfprune.data.datasets import Split
from tfprune.errors import TfpruneError


def holdout(train: Split, size: int, calibration_size: int,
            seed: int = 0) -> Split:
  """The last `size` examples of the permutation the calibration draw starts.

  Args:
    train: the training split.
    size: examples to hold out.
    calibration_size: the largest calibration draw it must not overlap.
    seed: the calibration seed (the sweep's `--calibration_seed`).

  Raises:
    TfpruneError: `size` is not positive or the two do not fit in the split.
  """
  n = len(train.labels)
  if isinstance(size, bool) or not isinstance(size, int) or size < 1:
    raise TfpruneError(f'holdout size must be a positive integer, got {size!r}: '
                       'pass e.g. 5000')
  if calibration_size + size > n:
    raise TfpruneError(
        f'{size} held-out and {calibration_size} calibration examples exceed '
        f'the {n} training examples: hold out at most {n - calibration_size} '
        'or draw fewer calibration examples')
  chosen = np.sort(np.random.default_rng(seed).permutation(n)[n - size:])
  return Split(train.images[chosen], train.labels[chosen])


def save_npz(path, train: Split, held_out: Split) -> None:
  """Writes the `.npz` of the module docstring atomically."""
  atomic.ensure_dir(pathlib.Path(path).parent, flag='--out')
  with atomic.replacing(path) as tmp, open(tmp, 'wb') as f:
    np.savez(f, x_train=train.images, y_train=train.labels,
             x_test=held_out.images, y_test=held_out.labels)
