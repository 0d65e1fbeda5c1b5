"""A local data folder's `MD5SUMS`, checked when a dataset is read from it."""

import hashlib
import pathlib

from tfprune.errors import TfpruneError

NAME = 'MD5SUMS'


def check(folder: pathlib.Path, paths: list[pathlib.Path]) -> None:
  """Refuses files that differ from the md5 the folder's `MD5SUMS` lists.

  A data folder laid out like `../shared/datasets` may hold an `MD5SUMS`
  (`md5sum` format, paths relative to the folder). When it does, each of
  `paths` it lists must match, so a `mnist/` folder holding Fashion-MNIST
  files is refused instead of scored. Without `MD5SUMS` nothing is checked.

  Raises:
    TfpruneError: a listed file has another md5 (the message names the
      listed file it does match, if any).
  """
  sums_path = folder / NAME
  if not sums_path.is_file():
    return
  listed = {}
  for line in sums_path.read_text(errors='replace').splitlines():
    parts = line.split(maxsplit=1)
    if len(parts) == 2:
      listed[parts[1].lstrip('*').strip()] = parts[0].lower()
  for path in paths:
    relative = path.relative_to(folder).as_posix()
    if relative not in listed or not path.is_file():
      continue
    found = hashlib.md5(path.read_bytes()).hexdigest()
    if found != listed[relative]:
      same_as = [name for name, digest in listed.items() if digest == found]
      what = f'it is the file listed as {same_as[0]}' if same_as else (
          'the file was changed')
      raise TfpruneError(
          f'data file {path} does not match its md5 in {sums_path} ({what}): '
          'put the official file there (see ../shared/datasets/README.md)')
