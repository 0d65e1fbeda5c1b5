"""Default paths of the commands: the prebuilt weights and result folders of a clone.

Run from a clone of the repository, a command's defaults are the clone's
`weights/…` and `img/…` folders, as relative paths (so the configs saved
beside results read `weights/mlp-mnist`, as committed). Installed elsewhere,
those defaults do not exist: the flag has no default and `required` asks for
it in one line.
"""

import os
import pathlib

from tfprune.errors import TfpruneError


def _clone() -> pathlib.Path | None:
  """The repository this package was imported from, if it is a clone."""
  root = pathlib.Path(__file__).resolve().parents[2]
  if (root / 'experiments').is_dir() and (root / 'weights').is_dir():
    return root
  return None


CLONE = _clone()


def in_clone(*parts: str) -> str | None:
  """`parts` under the clone, relative to the working folder; None outside a clone."""
  if CLONE is None:
    return None
  return os.path.relpath(CLONE.joinpath(*parts))


def required(value: str | None, flag: str, what: str) -> str:
  """`value`, or a one-line error when a default of the clone is missing.

  Args:
    value: the flag's value (None when it was not given and there is no clone).
    flag: the flag's name, without dashes.
    what: what the flag names, for the message (e.g. 'an output folder').
  """
  if value is None:
    raise TfpruneError(
        f'--{flag} has no default here (the default is a folder of a clone of '
        f'the tfprune repository): pass --{flag}=<{what}>')
  return value


def network(weights_dir: str | None) -> str:
  """`--weights_dir`, or a one-line error when neither it nor its default exists."""
  if weights_dir is None:
    raise TfpruneError(
        'no network given, and the default weights/mlp-mnist comes with a '
        'clone of the tfprune repository: pass --model_file=<your Keras model> '
        'with --data=<your .npz>, or --weights_dir=<weight folder>')
  return weights_dir
