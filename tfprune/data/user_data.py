"""A user's own data as one `.npz` file: `x_test`, `y_test`, optionally `x_train`, `y_train`.

The arrays are used as they are: inputs already in the shape the model takes
(after its own preprocessing layers), labels as integer class indices. A file
without a training split serves every tool but calibration and fine-tuning,
which then say that they need `x_train`/`y_train`.
"""

import pathlib
import zipfile

import numpy as np

from tfprune.data.datasets import Split
from tfprune.errors import TfpruneError

KEYS = ('x_test', 'y_test', 'x_train', 'y_train')


def _split(arrays, path: pathlib.Path, which: str) -> Split | None:
  x_key, y_key = f'x_{which}', f'y_{which}'
  if x_key not in arrays and y_key not in arrays:
    return None
  if (x_key in arrays) != (y_key in arrays):
    missing = y_key if x_key in arrays else x_key
    raise TfpruneError(f'{path} has {x_key if missing == y_key else y_key} but '
                       f'no {missing}: store both')
  x, y = np.asarray(arrays[x_key]), np.asarray(arrays[y_key])
  if not np.issubdtype(x.dtype, np.number) or x.ndim < 2:
    raise TfpruneError(f'{path}: {x_key} has dtype {x.dtype} and shape {x.shape}: '
                       'store numbers, one example per row')
  labels = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise TfpruneError(
        f'{path}: {y_key} has dtype {y.dtype} and shape {y.shape}: store integer '
        'class indices of shape (n,) (not one-hot)')
  if len(labels) != len(x):
    raise TfpruneError(f'{path}: {len(x)} examples in {x_key} but {len(labels)} '
                       f'labels in {y_key}: store one label per example')
  if len(labels) == 0:
    raise TfpruneError(f'{path}: {x_key} is empty: store at least one example')
  if labels.min() < 0:
    raise TfpruneError(f'{path}: {y_key} has negative labels: use class '
                       'indices 0 ... classes - 1')
  return Split(x.astype(np.float32, copy=False), labels.astype(np.int64))


def load(path: str | pathlib.Path) -> tuple[Split, Split | None]:
  """The test split and the training split (None if absent) of a `.npz` file.

  Raises:
    TfpruneError: the file is missing or unreadable, lacks `x_test`/`y_test`,
      or holds arrays of the wrong kind or length.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise TfpruneError(f'data file {path} does not exist: pass an .npz with '
                       'x_test and y_test (np.savez)')
  try:
    with np.load(path, allow_pickle=False) as archive:
      arrays = {k: archive[k] for k in archive.files if k in KEYS}
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    raise TfpruneError(f'{path} is not a readable .npz file ({e}): write it with '
                       'np.savez(path, x_test=..., y_test=...)') from None
  test = _split(arrays, path, 'test')
  if test is None:
    raise TfpruneError(f'{path} has no x_test/y_test: store them with '
                       'np.savez(path, x_test=..., y_test=...)')
  return test, _split(arrays, path, 'train')


def check_fits(split: Split, input_shape, num_outputs: int, path) -> None:
  """Refuses data whose examples or labels do not fit the model.

  Raises:
    TfpruneError: shapes or label range differ from the model's.
  """
  if tuple(split.images.shape[1:]) != tuple(input_shape):
    raise TfpruneError(
        f'{path}: examples of shape {split.images.shape[1:]} but the model takes '
        f'{tuple(input_shape)}: store the inputs as the model reads them')
  if split.labels.max() >= num_outputs:
    raise TfpruneError(
        f'{path}: label {split.labels.max()} but the model has {num_outputs} '
        'outputs: use labels 0 ... outputs - 1, or the model trained on this data')
