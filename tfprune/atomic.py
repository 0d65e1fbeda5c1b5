"""Write files and folders so that a crash never leaves half-written results.

Everything is first written to a temporary name beside its destination and
then renamed into place (a rename within one folder is atomic on POSIX).
"""

import contextlib
import csv
import os
import pathlib
import shutil
import tempfile
from typing import Any, Iterable, Iterator, Mapping, Sequence

from tfprune.errors import TfpruneError


def ensure_dir(path: str | os.PathLike, flag: str = '--out_dir') -> pathlib.Path:
  """Creates `path` if needed and checks that files can be created in it.

  Args:
    path: the output folder.
    flag: the flag a user changes to pick another folder (for the message).

  Returns:
    The folder as a `pathlib.Path`.

  Raises:
    TfpruneError: the folder cannot be created or written to.
  """
  folder = pathlib.Path(path)
  try:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=folder):
      pass
  except OSError as e:
    raise TfpruneError(
        f'output folder {folder} is not writable ({e.strerror or e}): '
        f'choose a writable folder with {flag}') from None
  return folder


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[pathlib.Path]:
  """Yields a temporary path that replaces `path` when the block succeeds.

  On an exception the temporary file is removed and `path` is untouched.
  """
  target = pathlib.Path(path)
  fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f'.{target.name}.',
                                  suffix='.tmp')
  os.close(fd)
  tmp = pathlib.Path(tmp_name)
  try:
    yield tmp
    os.replace(tmp, target)
  finally:
    tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> pathlib.Path:
  """Writes `text` to `path` atomically and returns the path."""
  with replacing(path) as tmp:
    tmp.write_text(text)
  return pathlib.Path(path)


def write_csv(path: str | os.PathLike, columns: Sequence[str],
              rows: Iterable[Mapping[str, Any]]) -> pathlib.Path:
  """Writes dict `rows` as CSV with a header of `columns`, atomically."""
  with replacing(path) as tmp:
    with tmp.open('w', newline='') as f:
      writer = csv.DictWriter(f, columns, lineterminator='\n')
      writer.writeheader()
      writer.writerows(rows)
  return pathlib.Path(path)


def check_replaceable(path: str | os.PathLike,
                      overwrite: bool) -> pathlib.Path:
  """Returns `path` if it may be (re)written as a folder.

  Raises:
    TfpruneError: it exists, is not an empty folder, and `overwrite` is False.
  """
  target = pathlib.Path(path)
  if target.exists() and not overwrite and (
      not target.is_dir() or any(target.iterdir())):
    raise TfpruneError(
        f'{target} already exists and is not empty: choose another folder or '
        'pass --overwrite to replace it')
  return target


@contextlib.contextmanager
def replacing_dir(path: str | os.PathLike,
                  overwrite: bool = False) -> Iterator[pathlib.Path]:
  """Yields a temporary folder that becomes `path` when the block succeeds.

  Args:
    path: the destination folder.
    overwrite: replace an existing non-empty folder. Without it such a folder
      is refused, so that a user's weights are never lost.

  Raises:
    TfpruneError: `path` exists, is not empty and `overwrite` is False, or its
      parent folder is not writable.
  """
  target = check_replaceable(path, overwrite)
  parent = ensure_dir(target.parent or '.', flag='the output path')
  tmp = pathlib.Path(tempfile.mkdtemp(dir=parent, prefix=f'.{target.name}.'))
  try:
    yield tmp
    if target.exists():
      old = pathlib.Path(tempfile.mkdtemp(dir=parent, prefix=f'.{target.name}.old.'))
      os.replace(target, old / target.name)
      os.replace(tmp, target)
      shutil.rmtree(old)
    else:
      os.replace(tmp, target)
  finally:
    if tmp.exists():
      shutil.rmtree(tmp)
