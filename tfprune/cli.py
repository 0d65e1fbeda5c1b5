"""Runs an absl `main` so that bad input ends in one line and exit status 2.

Scripts in `experiments/` call `cli.run(main)` instead of `app.run(main)`.
Import this module before TensorFlow: it raises TensorFlow's C++ log level to
warnings. (TensorFlow 2.21 still prints a few `I0000`/`E0000` lines about
oneDNN and CUDA before its logging starts; they are harmless.)
"""

import os
import sys
from typing import Callable

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfprune.errors import TfpruneError  # pylint: disable=wrong-import-position

EXIT_BAD_INPUT = 2


def run(main: Callable[[list[str]], int | None]) -> None:
  """`app.run(main)`, printing a `TfpruneError` or a bad flag as `error: ...`, exit 2."""

  def guarded(argv: list[str]) -> int | None:
    if len(argv) > 1:
      print(f'error: unexpected arguments {argv[1:]}: pass options as --flag=value',
            file=sys.stderr)
      return EXIT_BAD_INPUT
    if not flags.FLAGS['verbosity'].present:
      # TensorFlow's Python INFO lines (SavedModel, TFLite converter) are noise
      # here; --verbosity=0 brings them back.
      logging.set_verbosity(logging.WARNING)
    try:
      return main(argv)
    except TfpruneError as e:
      print(f'error: {e}', file=sys.stderr)
      return EXIT_BAD_INPUT

  app.run(guarded, flags_parser=_parse_flags)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, a bad value (e.g. an enum's) ending like a `TfpruneError`."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    print(f'error: {e}: see --help', file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)
