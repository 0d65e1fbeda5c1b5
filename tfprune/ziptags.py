"""A JSON tag in the comment of a zip-based model file, and fixed zip metadata.

tfprune's `.npz` files (graph files, dense exports) and the `.keras` files of
`--save_keras` are zip archives. The provenance entry of the data a network
was made on (`tfprune.data.provenance`) travels as the archive's comment: one
JSON object, `{"tfprune": {...}}`. Readers of the arrays (numpy, Keras,
tf_keras) ignore the comment, so a tagged `.keras` file still loads in plain
Keras, and the arrays and structure of a file are the same bytes with or
without the tag (a file grows by exactly the comment's length).

`reproducible_keras` also fixes what makes two saves of one model differ:
the zip entries' timestamps, the `date_saved` of Keras's metadata.json and
the memory addresses Keras 3 writes as shared-object ids into config.json.
"""

import io
import json
import os
import pathlib
import zipfile
from typing import Any

_KEY = 'tfprune'
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_KERAS_METADATA = 'metadata.json'
_KERAS_CONFIG = 'config.json'
# Keras 3 marks an object used twice in a config (a shared initializer, a
# layer called twice) with its Python id(): a memory address, new every run.
_SHARED_ID = 'shared_object_id'
_FIXED_DATE = '1980-01-01@00:00:00'


def comment(entry: dict[str, Any] | None) -> bytes:
  """The zip comment carrying `entry` (empty for None)."""
  if entry is None:
    return b''
  return json.dumps({_KEY: entry}, sort_keys=True,
                    separators=(',', ':')).encode()


def tagged(raw: bytes, entry: dict[str, Any] | None) -> bytes:
  """The zip archive `raw` with `entry` as its comment (unchanged for None)."""
  if entry is None:
    return raw
  out = io.BytesIO(raw)
  with zipfile.ZipFile(out, 'a') as archive:
    archive.comment = comment(entry)
  return out.getvalue()


def read(source: str | os.PathLike | bytes) -> dict[str, Any] | None:
  """The entry tagged on a zip archive (a path or its bytes), or None.

  None also for a file that is not a zip or whose comment is not a tag.
  """
  try:
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    with zipfile.ZipFile(handle) as archive:
      text = archive.comment
  except (OSError, zipfile.BadZipFile, ValueError):
    return None
  try:
    value = json.loads(text.decode()) if text else None
  except (ValueError, UnicodeDecodeError):
    return None
  if isinstance(value, dict) and isinstance(value.get(_KEY), dict):
    return value[_KEY]
  return None


def save_keras(model, path: str | os.PathLike,
               entry: dict[str, Any] | None = None) -> pathlib.Path:
  """`model.save(path)` under a temporary name, then `reproducible_keras`, renamed.

  Two saves of the same model give the same bytes; a cut-off save leaves no
  half-written file at `path`.
  """
  path = pathlib.Path(path)
  tmp = path.with_name(f'.{path.stem}.tmp{os.getpid()}{path.suffix}')
  try:
    model.save(tmp)
    reproducible_keras(tmp, entry)
    os.replace(tmp, path)
  finally:
    tmp.unlink(missing_ok=True)
  return path


def _numbered_shared_objects(config: Any) -> Any:
  """`config` with each distinct `shared_object_id` replaced by 1, 2, … in
  order of first appearance (Keras only matches the ids within one file)."""
  numbers: dict[Any, int] = {}

  def renumber(value):
    if isinstance(value, dict):
      return {key: (numbers.setdefault(item, len(numbers) + 1)
                    if key == _SHARED_ID else renumber(item))
              for key, item in value.items()}
    if isinstance(value, list):
      return [renumber(item) for item in value]
    return value

  return renumber(config)


def reproducible_keras(path: str | os.PathLike,
                       entry: dict[str, Any] | None = None) -> pathlib.Path:
  """Rewrites a `.keras` file so that equal models give equal bytes.

  Every entry gets the timestamp 1980-01-01 (as numpy's `.npz` entries have),
  metadata.json's `date_saved` a fixed date, config.json's shared-object ids
  (memory addresses) the numbers 1, 2, … in order, and the archive the comment
  of `entry`. The weights are not touched.
  """
  path = pathlib.Path(path)
  with zipfile.ZipFile(path) as archive:
    members = [(info, archive.read(info)) for info in archive.infolist()]
  out = io.BytesIO()
  with zipfile.ZipFile(out, 'w') as archive:
    for info, data in members:
      if info.filename == _KERAS_METADATA:
        metadata = json.loads(data)
        if 'date_saved' in metadata:
          metadata['date_saved'] = _FIXED_DATE
        data = json.dumps(metadata).encode()
      elif info.filename == _KERAS_CONFIG and _SHARED_ID.encode() in data:
        data = json.dumps(_numbered_shared_objects(json.loads(data))).encode()
      fixed = zipfile.ZipInfo(info.filename, date_time=_FIXED_TIME)
      fixed.compress_type = info.compress_type
      fixed.external_attr = info.external_attr
      archive.writestr(fixed, data)
    archive.comment = comment(entry)
  path.write_bytes(out.getvalue())
  return path
