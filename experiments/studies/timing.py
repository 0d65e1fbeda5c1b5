"""The studies' timing files: seconds and time ratios kept apart from the result CSVs.

A study's CSV holds what is exact (accuracies, counts, sizes), so an
identical run writes identical bytes; what depends on the machine and its
load (seconds, measured time ratios) goes to a JSON file beside it, with the
machine and its load average when the run ended.
"""

import json
import os
import pathlib

from tfprune import atomic
from tfprune.drivers import benchmark


def write(path: str | os.PathLike, record: dict) -> pathlib.Path:
  """Writes `record` plus `benchmark.machine()` as JSON to `path`, atomically."""
  return atomic.write_text(
      path, json.dumps({**record, 'machine': benchmark.machine()}, indent=2) + '\n')
