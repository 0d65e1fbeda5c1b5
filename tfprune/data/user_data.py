"""A user's own data as one `.npz` file: `x_test`, `y_test`, optionally `x_train`, `y_train`.

The arrays are used as they are: inputs already in the shape the model takes
(after its own preprocessing layers), labels as integer class indices. A
model with several inputs reads one array per input, `x_test_<input name>`
(a one-input model may be given either form); one with several outputs one
label array per output, `y_test_<output name>` (likewise `x_train_<input>`,
`y_train_<output>`): such a split holds dicts of arrays by name. Every
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


def _named_key(key: str) -> bool:
  """Whether `key` is one array of several, `<one of KEYS>_<name>`."""
  return any(key.startswith(f'{k}_') and len(key) > len(k) + 1 for k in KEYS)


def _arrays(arrays, key: str, path: pathlib.Path):
  """Array `key`, or the arrays `key_<name>` by name, or None if neither."""
  named = {k[len(key) + 1:]: v for k, v in arrays.items()
           if k.startswith(f'{key}_')}
  if key in arrays and named:
    both = ', '.join(sorted(f'{key}_{n}' for n in named))
    raise TfpruneError(f'{path} has both {key} and {both}: store either {key} '
                       f'(one array) or one {key}_<name> per model input or output')
  return arrays[key] if key in arrays else (named or None)


def _checked(value, key: str, path: pathlib.Path, check):
  """`check` of one array, or of each of a dict's (named `key_<name>`)."""
  if isinstance(value, dict):
    return {n: check(v, f'{key}_{n}', str(path)) for n, v in sorted(value.items())}
  return check(value, key, str(path))


def _lengths(value, key: str) -> dict[str, int]:
  if isinstance(value, dict):
    return {f'{key}_{n}': len(v) for n, v in value.items()}
  return {key: len(value)}


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
  x, labels = _arrays(arrays, x_key, path), _arrays(arrays, y_key, path)
  if x is None and labels is None:
    return None
  if (x is None) != (labels is None):
    missing = y_key if labels is None else x_key
    raise TfpruneError(f'{path} has {x_key if missing == y_key else y_key} but '
                       f'no {missing}: store both')
  x = _checked(x, x_key, path, checks.inputs)
  labels = _checked(labels, y_key, path, checks.labels)
  lengths = {**_lengths(x, x_key), **_lengths(labels, y_key)}
  if len(set(lengths.values())) > 1:
    if len(lengths) == 2:
      raise TfpruneError(
          f'{path}: {lengths[x_key]} examples in {x_key} but {lengths[y_key]} '
          f'labels in {y_key}: store one label per example')
    raise TfpruneError(f'{path}: the arrays hold different numbers of '
                       f'examples ({", ".join(f"{k} {n}" for k, n in lengths.items())}'
                       '): store the same examples in each')
  if not next(iter(lengths.values())):
    raise TfpruneError(f'{path}: {next(iter(lengths))} is empty: store at '
                       'least one example')
  return Split(x, labels)


def fingerprint(arrays: dict[str, np.ndarray]) -> str:
  """sha256 of the arrays of `KEYS` present, then of the named ones
  (`x_test_<name>`, ...) in sorted order: name, dtype, shape, bytes."""
  digest = hashlib.sha256()
  for key in [*KEYS, *sorted(k for k in arrays if _named_key(k))]:
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
      arrays = {k: archive[k] for k in archive.files
                if k in KEYS or _named_key(k)}
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    if isinstance(e, TfpruneError):
      raise
    raise TfpruneError(f'{path} is not a readable .npz file ({e}): write it with '
                       'np.savez(path, x_test=..., y_test=...)') from None
  test = _split(arrays, path, 'test')
  if test is None:
    raise TfpruneError(f'{path} has no x_test/y_test: store them with '
                       'np.savez(path, x_test=..., y_test=...) (or '
                       'x_test_<input name>=..., y_test_<output name>=...)')
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
