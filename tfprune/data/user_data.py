"""A user's own data as one `.npz` file: `x_test`, `y_test`, optionally `x_train`, `y_train`.

The arrays are used as they are: inputs already in the shape the model takes
(after its own preprocessing layers), labels as integer class indices. Every
array passes `checks` at load (finite real inputs, integer labels that fit
int64). A file without a training split serves every tool but calibration
and fine-tuning, which then say that they need `x_train`/`y_train`.

`read` also returns the sha256 of the arrays (names, dtypes, shapes and
bytes; not of the file, whose zip entries carry the time they were written),
which is how model files record that they were made or scored on this data
(`provenance`).
"""

import dataclasses
import hashlib
import pathlib
import zipfile

import numpy as np

from tfprune.data import checks
from tfprune.data.datasets import Split
from tfprune.errors import TfpruneError

KEYS = ('x_test', 'y_test', 'x_train', 'y_train')


@dataclasses.dataclass(frozen=True)
class UserData:
  """A loaded `.npz`.

  Attributes:
    test: the test split.
    train: the training split, or None.
    sha256: digest of the arrays (`fingerprint`).
  """
  test: Split
  train: Split | None
  sha256: str


def _split(arrays, path: pathlib.Path, which: str) -> Split | None:
  x_key, y_key = f'x_{which}', f'y_{which}'
  if x_key not in arrays and y_key not in arrays:
    return None
  if (x_key in arrays) != (y_key in arrays):
    missing = y_key if x_key in arrays else x_key
    raise TfpruneError(f'{path} has {x_key if missing == y_key else y_key} but '
                       f'no {missing}: store both')
  x = checks.inputs(arrays[x_key], x_key, str(path))
  labels = checks.labels(arrays[y_key], y_key, str(path))
  if len(labels) != len(x):
    raise TfpruneError(f'{path}: {len(x)} examples in {x_key} but {len(labels)} '
                       f'labels in {y_key}: store one label per example')
  if len(labels) == 0:
    raise TfpruneError(f'{path}: {x_key} is empty: store at least one example')
  return Split(x, labels)


def fingerprint(arrays: dict[str, np.ndarray]) -> str:
  """sha256 of the arrays of `KEYS` present: name, dtype, shape, bytes."""
  digest = hashlib.sha256()
  for key in KEYS:
    if key in arrays:
      array = np.ascontiguousarray(arrays[key])
      digest.update(f'{key}:{array.dtype.str}:{array.shape};'.encode())
      digest.update(array.tobytes())
  return digest.hexdigest()


def read(path: str | pathlib.Path) -> UserData:
  """The checked splits of a `.npz` file and the sha256 of its arrays.

  Raises:
    TfpruneError: the file is missing or unreadable, is a single `.npy`
      array, lacks `x_test`/`y_test`, or holds arrays of the wrong kind,
      length or values (`checks`).
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise TfpruneError(f'data file {path} does not exist: pass an .npz with '
                       'x_test and y_test (np.savez)')
  try:
    with path.open('rb') as f:
      is_npy = f.read(6) == b'\x93NUMPY'
    if is_npy:
      raise TfpruneError(f'{path} is a single .npy array, not an .npz of named '
                         'arrays: write it with np.savez(path, x_test=..., '
                         'y_test=...)')
    with np.load(path, allow_pickle=False) as archive:
      arrays = {k: archive[k] for k in archive.files if k in KEYS}
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    if isinstance(e, TfpruneError):
      raise
    raise TfpruneError(f'{path} is not a readable .npz file ({e}): write it with '
                       'np.savez(path, x_test=..., y_test=...)') from None
  test = _split(arrays, path, 'test')
  if test is None:
    raise TfpruneError(f'{path} has no x_test/y_test: store them with '
                       'np.savez(path, x_test=..., y_test=...)')
  return UserData(test, _split(arrays, path, 'train'), fingerprint(arrays))


def load(path: str | pathlib.Path) -> tuple[Split, Split | None]:
  """The test split and the training split (None if absent) of a `.npz` file.

  Raises:
    TfpruneError: as `read`.
  """
  data = read(path)
  return data.test, data.train


def check_fits(split: Split, input_shape, num_outputs: int, path,
               which: str = 'test') -> None:
  """Refuses a split whose examples or labels do not fit the model (`checks.fits`).

  Args:
    split: the split.
    input_shape: the shape of one example the model takes.
    num_outputs: the model's classes.
    path: the data's file or dataset name, for messages.
    which: 'test' or 'train', naming the arrays in messages.

  Raises:
    TfpruneError: shapes or label range differ from the model's.
  """
  checks.fits(split.images, split.labels, input_shape, num_outputs,
              (f'x_{which}', f'y_{which}'), str(path))
