"""Registries: tables of named choices (methods, models, datasets, …).

Every registry is a plain dict or tuple of names; `lookup` and `check_choice`
are the one way to read them, so an unknown name always fails the same way,
listing the valid names: `unknown model 'vgg': choose one of mlp, lenet5`.
"""

from typing import Iterable, Mapping, TypeVar

from tfprune.errors import TfpruneError

V = TypeVar('V')


def check_choice(name: str, choices: Iterable[str], what: str) -> str:
  """Returns `name` if it is one of `choices`.

  Args:
    name: the name asked for.
    choices: the valid names, in the order to list them.
    what: what a name denotes, for the message (e.g. 'pruning method').

  Raises:
    TfpruneError: `name` is not one of `choices`; the message lists them.
  """
  choices = tuple(choices)
  if name not in choices:
    raise TfpruneError(
        f'unknown {what} {name!r}: choose one of {", ".join(choices)}')
  return name


def lookup(table: Mapping[str, V], name: str, what: str) -> V:
  """Returns `table[name]`, failing like `check_choice` for an unknown name."""
  return table[check_choice(name, table, what)]


def check_unique(values: Iterable, flag: str) -> tuple:
  """Returns `values` as a tuple if none repeats (a repeat would repeat rows).

  Raises:
    TfpruneError: a value is given twice; the message names `flag`.
  """
  values = tuple(values)
  seen = set()
  for value in values:
    if value in seen:
      shown = f'{value:g}' if isinstance(value, float) else value
      raise TfpruneError(f'{flag} gives {shown} twice: give each value once')
    seen.add(value)
  return values
