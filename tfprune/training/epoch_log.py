"""A per-epoch CSV log of training that survives interruption and resumption.

Each finished epoch appends one row (the whole file is rewritten through a
temporary file, so it is never half-written). When training resumes at epoch
e after an interruption, rows of epoch e and later are dropped before the new
ones are written, so every epoch appears exactly once.
"""

import csv
import io
import pathlib
import time
from typing import Callable

from tfprune import atomic
from tfprune.keras_compat import keras

COLUMNS = ('epoch', 'step', 'seconds', 'loss', 'accuracy', 'test_loss',
           'test_accuracy', 'sparsity')
"""`epoch` is 1-based; `step` counts optimizer steps so far; `seconds` is the
epoch's wall time; `test_*` come from Keras validation on the test split;
`sparsity` is the measured fraction of zero weights in the pruned layers."""


def read(path: str | pathlib.Path) -> list[dict[str, str]]:
  """The rows of a log, [] if it does not exist."""
  path = pathlib.Path(path)
  if not path.exists():
    return []
  with path.open(newline='') as f:
    return list(csv.DictReader(f))


def total_seconds(path: str | pathlib.Path) -> float:
  """Training time summed over the logged epochs, across resumptions."""
  return sum(float(row['seconds']) for row in read(path))


class EpochLog(keras.callbacks.Callback):
  """Writes one row of `COLUMNS` per finished epoch to `path`."""

  def __init__(self, path: str | pathlib.Path, sparsity: Callable[[], float]):
    """Builds the callback.

    Args:
      path: the CSV file; existing rows of earlier epochs are kept.
      sparsity: returns the current fraction of zero weights in pruned layers.
    """
    super().__init__()
    self.path = pathlib.Path(path)
    self.sparsity = sparsity
    self._start = 0.0

  def on_epoch_begin(self, epoch, logs=None):
    self._start = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    rows = [r for r in read(self.path) if int(r['epoch']) <= epoch]
    rows.append({
        'epoch': epoch + 1,
        'step': int(self.model.optimizer.iterations.numpy()),
        'seconds': f'{time.perf_counter() - self._start:.2f}',
        'loss': _number(logs.get('loss')),
        'accuracy': _number(logs.get('accuracy')),
        'test_loss': _number(logs.get('val_loss')),
        'test_accuracy': _number(logs.get('val_accuracy')),
        'sparsity': f'{self.sparsity():.6f}',
    })
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator='\n')
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(self.path, out.getvalue())


def _number(value) -> str:
  return '' if value is None else f'{float(value):.6f}'
