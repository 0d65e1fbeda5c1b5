"""What data a network was made on, recorded in its files and checked when it is used.

Every file tfprune writes for a network (graph files, dense exports, weight
folders, `.keras` files of `--save_keras`) records a provenance entry:

    {"data": "mnist", "input_shape": [28, 28, 1], "value_range": [0.0, 1.0]}
    {"data": "npz-sha256:<hex>", "data_file": "my.npz", "input_shape": [20],
     "value_range": [-3.1, 2.9]}

`data` is the registry dataset, or the sha256 of the user's `.npz` arrays
(`user_data.fingerprint`; `data_file` is only a reminder for people);
`value_range` is the smallest and largest input value of the data the network
was scored on (older files have none). A tool
given a file with a provenance entry and some data calls `check`, which
refuses another dataset in one line unless the user passes
`--allow_other_data` (then the config of the run records it). Files without
an entry (a user's own Keras model, older files) pass: nothing is known.
"""

import dataclasses
import pathlib
from typing import Any, Mapping, Sequence

import numpy as np

from tfprune.errors import TfpruneError

KEY = 'provenance'
NPZ_PREFIX = 'npz-sha256:'
OVERRIDE = '--allow_other_data'
OVERRIDE_HELP = ('Use the network on other data than the one its files record '
                 '(their provenance: registry dataset or .npz sha256), on '
                 'purpose; the run\'s config records it.')


def record(dataset: str, data: str | None, data_sha256: str | None,
           input_shape: Sequence[int] | Mapping[str, Sequence[int]],
           inputs: np.ndarray | Mapping[str, np.ndarray] | None = None
           ) -> dict[str, Any]:
  """The provenance entry for a network made or scored on this data.

  Args:
    dataset: the registry dataset (used when `data` is None).
    data: the user's `.npz` path, or None.
    data_sha256: the digest of its arrays (`user_data.read(...).sha256`).
    input_shape: the shape of one example the network takes (several
      inputs: a dict of shapes by input name).
    inputs: the examples themselves (several inputs: a dict by name), for
      their value range (None: no range).
  """
  entry: dict[str, Any] = {'data': identity(dataset, data, data_sha256)}
  if data is not None:
    entry['data_file'] = pathlib.Path(data).name
  entry['input_shape'] = _plain(input_shape)
  if isinstance(inputs, Mapping):
    ranges = {str(k): value_range(v) for k, v in inputs.items() if np.size(v)}
    if ranges:
      entry['value_range'] = ranges
  elif inputs is not None and np.size(inputs):
    entry['value_range'] = value_range(inputs)
  return entry


def _plain(shape):
  """A shape (or a dict of shapes) as JSON lists of ints."""
  if isinstance(shape, Mapping):
    return {str(k): _plain(v) for k, v in shape.items()}
  return [int(d) for d in shape]


def value_range(inputs: np.ndarray) -> list[float]:
  """[smallest, largest] value of `inputs`, as JSON keeps it (6 significant digits)."""
  return [float(f'{float(np.min(inputs)):.6g}'),
          float(f'{float(np.max(inputs)):.6g}')]


def _scaled_otherwise(recorded, given) -> bool:
  """True if the range `given` reaches beyond `recorded` by more than half its span.

  Data scaled another way (0..255 for a network made on 0..1, or raw values
  for standardised ones) does; another sample of the same data does not.
  Ranges by input name (several inputs) are not compared.
  """
  if not isinstance(recorded, list) or not isinstance(given, list):
    return False
  low, high = recorded
  slack = (high - low) / 2 or max(abs(low), abs(high), 1.0) / 2
  return given[0] < low - slack or given[1] > high + slack


def identity(dataset: str, data: str | None, data_sha256: str | None) -> str:
  """'mnist' for a registry dataset, 'npz-sha256:<hex>' for a user's file."""
  if data is None:
    return dataset
  if data_sha256 is None:
    raise ValueError('a user .npz needs its sha256')
  return NPZ_PREFIX + data_sha256


def describe(data_id: str, data_file: str | None = None) -> str:
  """`data_id` for people: 'mnist', or 'the .npz my.npz (sha256 1a2b3c4d…)'."""
  if not data_id.startswith(NPZ_PREFIX):
    return data_id
  name = f' {data_file}' if data_file else ''
  return f'the .npz{name} (arrays sha256 {data_id[len(NPZ_PREFIX):][:12]}…)'


def from_manifest(manifest: Mapping[str, Any] | None) -> dict[str, Any] | None:
  """The provenance a weight folder's or export's metadata records, if any.

  An entry under `KEY` wins; older files name only their `dataset`.
  """
  if not isinstance(manifest, Mapping):
    return None
  entry = manifest.get(KEY)
  if isinstance(entry, Mapping) and isinstance(entry.get('data'), str):
    return dict(entry)
  if isinstance(manifest.get('dataset'), str):
    return {'data': manifest['dataset']}
  return None


def check(recorded: Mapping[str, Any] | None, given: Mapping[str, Any],
          source: str, allow_other_data: bool = False) -> bool:
  """Refuses to use a network on other data than it was made on.

  Args:
    recorded: the file's provenance entry, or None (nothing known: passes).
    given: the entry of the data about to be used (`record`).
    source: the network's file or folder, for the message.
    allow_other_data: the user said, on purpose, that other data is fine.

  Returns:
    True if the data differs and `allow_other_data` let it through (the run
    then records that it was used), else False.

  Raises:
    TfpruneError: the data or the input shape differs from the recorded one
      and `allow_other_data` is False.
  """
  if not recorded or not isinstance(recorded.get('data'), str):
    return False
  made_on = recorded['data']
  shape = recorded.get('input_shape')
  same_data = made_on == given['data']
  same_shape = shape is None or _plain(shape) == _plain(given['input_shape'])
  if same_data and same_shape:
    return False
  if allow_other_data:
    return True
  if not same_data:
    made_range, given_range = recorded.get('value_range'), given.get('value_range')
    scaled = ''
    if _scaled_otherwise(made_range, given_range):
      scaled = (f' (values in [{given_range[0]:g}, {given_range[1]:g}], where '
                f'the network saw [{made_range[0]:g}, {made_range[1]:g}]: '
                'scaled another way?)')
    raise TfpruneError(
        f'{source} was made on {describe(made_on, recorded.get("data_file"))} '
        f'but this run gives it {describe(given["data"], given.get("data_file"))}'
        f'{scaled}: pass the data it was made on ({_fix(made_on)}), or '
        f'{OVERRIDE} to score it on other data on purpose')
  raise TfpruneError(
      f'{source} was made for inputs of shape {tuple(shape)} but the data has '
      f'{tuple(given["input_shape"])}: pass the data it was made on, or '
      f'{OVERRIDE} to use it anyway')


def _fix(made_on: str) -> str:
  if made_on.startswith(NPZ_PREFIX):
    return '--data=<that .npz>'
  return f'--dataset={made_on} without --data'


def config_record(config) -> dict[str, Any]:
  """`dataclasses.asdict(config)`, `allow_other_data` only when it is set.

  Left out at its default, so the saved configs of ordinary runs keep their
  bytes; a run that scored on other data on purpose says so.
  """
  record = dataclasses.asdict(config)
  if not record.get('allow_other_data', True):
    record.pop('allow_other_data')
  return record
