"""A per-epoch CSV log of training that survives interruption and resumption.

Each finished epoch appends one row to the CSV and its wall time to a timing
JSON beside it (each file rewritten through a temporary file, so it is never
half-written). Seconds stay out of the CSV, so a run writes the same log
whether or not it was interrupted and however busy the machine was. When
training resumes at epoch e after an interruption, entries of epoch e and
later are dropped before the new ones are written, so every epoch appears
exactly once.
"""

import csv
import io
import json
import pathlib
import time
from typing import Callable

from tfprune import atomic
from tfprune.keras_compat import keras

LOG_NAME = 'epochs.csv'
TIMING_NAME = 'timing.json'
"""The file names a run folder gives the log and the timing JSON."""
COLUMNS = ('epoch', 'step', 'loss', 'accuracy', 'test_loss', 'test_accuracy',
           'sparsity')
"""`epoch` is 1-based; `step` counts optimizer steps so far; `test_*` come from
Keras validation on the test split; `sparsity` is the measured fraction of zero
weights in the pruned layers."""
SECONDS_KEY = 'epoch_seconds'
"""Key of the timing JSON: {"1": seconds of epoch 1, ...}."""


def read(path: str | pathlib.Path) -> list[dict[str, str]]:
  """The rows of a log, [] if it does not exist."""
  path = pathlib.Path(path)
  if not path.exists():
    return []
  with path.open(newline='') as f:
    return list(csv.DictReader(f))


def read_seconds(path: str | pathlib.Path) -> dict[int, float]:
  """Wall time of each logged epoch, from a timing JSON ({} if it does not exist)."""
  path = pathlib.Path(path)
  if not path.exists():
    return {}
  return {int(k): float(v)
          for k, v in json.loads(path.read_text()).get(SECONDS_KEY, {}).items()}


class EpochLog(keras.callbacks.Callback):
  """Writes one row of `COLUMNS` per finished epoch to `path`, its seconds to `timing_path`."""

  def __init__(self, path: str | pathlib.Path, timing_path: str | pathlib.Path,
               sparsity: Callable[[], float]):
    """Builds the callback.

    Args:
      path: the CSV file; existing rows of earlier epochs are kept.
      timing_path: the JSON file of per-epoch seconds; likewise.
      sparsity: returns the current fraction of zero weights in pruned layers.
    """
    super().__init__()
    self.path = pathlib.Path(path)
    self.timing_path = pathlib.Path(timing_path)
    self.sparsity = sparsity
    self._start = 0.0

  def on_epoch_begin(self, epoch, logs=None):
    self._start = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    seconds = time.perf_counter() - self._start
    logs = logs or {}
    rows = [r for r in read(self.path) if int(r['epoch']) <= epoch]
    rows.append({
        'epoch': epoch + 1,
        'step': int(self.model.optimizer.iterations.numpy()),
        'loss': _number(logs.get('loss')),
        'accuracy': _number(logs.get('accuracy')),
        'test_loss': _number(logs.get('val_loss')),
        'test_accuracy': _number(logs.get('val_accuracy')),
        'sparsity': f'{self.sparsity():.6f}',
    })
    out = io.StringIO()
    # extrasaction: a log begun by an older version had a seconds column.
    writer = csv.DictWriter(out, COLUMNS, lineterminator='\n',
                            extrasaction='ignore')
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(self.path, out.getvalue())
    times = {k: v for k, v in read_seconds(self.timing_path).items() if k <= epoch}
    times[epoch + 1] = round(seconds, 2)
    atomic.write_text(self.timing_path, json.dumps(
        {SECONDS_KEY: {str(k): v for k, v in sorted(times.items())}},
        indent=2) + '\n')


def _number(value) -> str:
  return '' if value is None else f'{float(value):.6f}'
