"""Write files and folders so that a crash never leaves half-written results.

Everything is first written to a temporary name beside its destination and
then renamed into place (a rename within one folder is atomic on POSIX).
Files and folders end up with the permissions the user's umask gives new
ones (not the 0600/0700 of Python's temporary files).
"""

import contextlib
import csv
import os
import pathlib
import shutil
import signal
import tempfile
from typing import Any, Iterable, Iterator, Mapping, Sequence

from tfprune.errors import TfpruneError
from tfprune.errors import shorten

STAGING_PREFIX = '.tfprune-staging.'


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def _as_if_created(path: pathlib.Path, folder: bool = False) -> None:
  """Gives a temporary file or folder the mode a normal one would get."""
  os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def _nearest_existing(path: pathlib.Path) -> pathlib.Path:
  path = path.absolute()
  while not path.exists():
    path = path.parent
  return path


def check_writable(path: str | os.PathLike,
                   flag: str = '--out_dir') -> pathlib.Path:
  """Checks, creating nothing, that the folder `path` can be made or written.

  Raises:
    TfpruneError: `path` or its nearest existing ancestor is not a writable
      folder.
  """
  folder = pathlib.Path(path)
  try:
    existing = _nearest_existing(folder)
  except OSError as e:  # a name or path too long, a loop of links
    raise TfpruneError(
        f'output folder {shorten(str(folder), 80)} cannot be used '
        f'({e.strerror or e}): choose a shorter or valid path with {flag}'
        ) from None
  problem = None
  if not existing.is_dir():
    problem = 'Not a directory'
  elif not os.access(existing, os.W_OK | os.X_OK):
    problem = 'Permission denied'
  if problem:
    raise TfpruneError(
        f'output folder {folder} is not writable ({problem}): '
        f'choose a writable folder with {flag}')
  return folder


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

  Raises:
    TfpruneError: `path` is an existing folder (a file cannot replace it).
  """
  target = pathlib.Path(path)
  if target.is_dir():
    raise TfpruneError(f'{target} is an existing folder, not a file: pass the '
                       'path of a file to write (e.g. inside that folder)')
  fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f'.{target.name}.',
                                  suffix='.tmp')
  os.close(fd)
  tmp = pathlib.Path(tmp_name)
  try:
    yield tmp
    if tmp.exists():
      _as_if_created(tmp)
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
  try:
    target.exists()
  except OSError as e:  # a name or path too long
    raise TfpruneError(f'{shorten(str(target), 80)} cannot be used '
                       f'({e.strerror or e}): choose a shorter or valid path'
                       ) from None
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
    _as_if_created(tmp, folder=True)
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


@contextlib.contextmanager
def staging(out_dir: str | os.PathLike,
            flag: str = '--out_dir') -> Iterator[pathlib.Path]:
  """Yields a fresh folder whose entries move into `out_dir` when the block succeeds.

  A run writes all its outputs (CSV, config, plots, sub-folders) into the
  yielded folder. Only when the block ends without an exception is each entry
  moved into `out_dir` (created then), replacing an earlier entry of the same
  name; other earlier files stay. On an exception or Ctrl-C the staging folder
  is removed, so `out_dir` holds the earlier run's outputs, whole, and no new
  empty folder is left behind.

  The staging folder is made at once (inside `out_dir` if it exists, else in
  its nearest existing ancestor, so the moves stay on one file system): an
  unwritable location fails before any long work. A Ctrl-C during the final
  moves is ignored (`_ctrl_c_ignored`).

  Raises:
    TfpruneError: `out_dir` cannot be created or written to, or an earlier
      file is where the run writes a folder of the same name (or the
      reverse).
  """
  target = check_writable(out_dir, flag)
  existing = _nearest_existing(target)
  remove_stale_staging(existing)
  try:
    tmp = pathlib.Path(tempfile.mkdtemp(
        dir=existing, prefix=f'{STAGING_PREFIX}{os.getpid()}.'))
  except OSError as e:
    raise TfpruneError(
        f'output folder {target} is not writable ({e.strerror or e}): '
        f'choose a writable folder with {flag}') from None
  try:
    yield tmp
    try:
      target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
      raise TfpruneError(
          f'output folder {shorten(str(target), 80)} cannot be made '
          f'({e.strerror or e}): choose a shorter or valid path with {flag}'
          ) from None
    entries = sorted(tmp.iterdir())
    for entry in entries:
      destination = target / entry.name
      if destination.exists() and destination.is_dir() != entry.is_dir():
        raise TfpruneError(
            f'{destination} is in the way of the new '
            f'{"folder" if entry.is_dir() else "file"} of that name: move it '
            f'away or choose another {flag}')
    with _ctrl_c_ignored():
      _move_all(entries, target)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_staging(folder: pathlib.Path) -> list[pathlib.Path]:
  """Removes the staging folders in `folder` of runs that no longer exist.

  A run killed outright (SIGKILL, power loss) cannot clean up its
  `.tfprune-staging.<pid>.*` folder; the next run into the same folder
  removes it, once no process with that id is alive. (A folder of an older
  tfprune, without a process id in its name, is removed too.)

  Returns:
    The folders removed.
  """
  removed = []
  try:
    entries = list(folder.iterdir())
  except OSError:
    return removed
  for entry in entries:
    if not entry.name.startswith(STAGING_PREFIX) or not entry.is_dir():
      continue
    pid = entry.name[len(STAGING_PREFIX):].split('.', 1)[0]
    if pid.isdigit() and _alive(int(pid)):
      continue
    shutil.rmtree(entry, ignore_errors=True)
    removed.append(entry)
  return removed


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # someone else's process
    return True
  return True


@contextlib.contextmanager
def _ctrl_c_ignored() -> Iterator[None]:
  """Ignores Ctrl-C during the block (main thread only).

  The moves of `staging` take milliseconds; interrupted halfway they would
  leave a mix of new and earlier outputs. The run has finished by then, so a
  Ctrl-C in that window is dropped and the outputs arrive whole.
  """
  try:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
  except ValueError:  # not the main thread: signals cannot arrive here
    yield
    return
  try:
    yield
  finally:
    signal.signal(signal.SIGINT, previous)


def _move_all(entries: list[pathlib.Path], target: pathlib.Path) -> None:
  for entry in entries:
    _as_if_created(entry, folder=entry.is_dir())
    destination = target / entry.name
    if destination.is_dir() and not destination.is_symlink():
      old = entry.parent / f'.{entry.name}.old'
      os.replace(destination, old)
      os.replace(entry, destination)
    else:
      os.replace(entry, destination)
