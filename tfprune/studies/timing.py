"""The studies' timing files: seconds and time ratios kept apart from the result CSVs.

A study's CSV holds what is exact (accuracies, counts, sizes), so an
identical run writes identical bytes; what depends on the machine and its
load (seconds, measured time ratios) goes to a JSON file beside it, with the
machine and its load average when the run ended.
"""

import json
import os
import pathlib
import platform

from tfprune import __version__
from tfprune import atomic
from tfprune.drivers import benchmark


def machine() -> dict:
  """The machine a timing was taken on, and its load average now."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return {'platform': platform.platform(), 'processor': benchmark.cpu_name(),
          'cpu_count': os.cpu_count(), 'load_average': list(os.getloadavg()),
          'tensorflow': tf.__version__, 'tfprune': __version__}


def write(path: str | os.PathLike, record: dict) -> pathlib.Path:
  """Writes `record` plus the `machine()` as JSON to `path`, atomically."""
  return atomic.write_text(
      path, json.dumps({**record, 'machine': machine()}, indent=2) + '\n')
