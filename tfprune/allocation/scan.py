"""A sensitivity scan: each layer's accuracy and loss when pruned alone.

`experiments/sensitivity.py` measures it (`tfprune.drivers.sensitivity`) and
writes `sensitivity.csv` with one row per (layer, k); the `sensitivity`
allocation reads it back here. The file records each layer's weight count, so
a scan of another network is refused.
"""

import csv
import dataclasses
import io
import pathlib
from typing import Mapping, Sequence

import numpy as np

from tfprune.errors import TfpruneError

COLUMNS = ('layer', 'weights', 'criterion', 'k', 'accuracy', 'loss')


@dataclasses.dataclass(frozen=True)
class Curve:
  """One layer pruned alone at each level (the others dense).

  Attributes:
    size: the layer's kernel weights.
    levels: k in percent, increasing, starting at 0 (the dense network).
    accuracy: accuracy on the held-out training slice at each level.
    loss: mean cross-entropy on that slice at each level.
  """
  size: int
  levels: tuple[float, ...]
  accuracy: tuple[float, ...]
  loss: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class Scan:
  """Per-layer curves, by layer name, and the criterion that pruned them."""
  curves: Mapping[str, Curve]
  criterion: str


def to_csv(scan: Scan) -> str:
  """The scan as CSV text with a header of `COLUMNS`."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  writer.writerow(COLUMNS)
  for name, c in scan.curves.items():
    for k, acc, loss in zip(c.levels, c.accuracy, c.loss):
      writer.writerow([name, c.size, scan.criterion, f'{k:g}', f'{acc:.4f}',
                       f'{loss:.6f}'])
  return out.getvalue()


def read_csv(path: str | pathlib.Path) -> Scan:
  """Reads a `sensitivity.csv`.

  Raises:
    TfpruneError: missing file or column, a non-number, or a layer without a
      row at k = 0.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise TfpruneError(f'sensitivity file {path} does not exist: make it with '
                       'experiments/sensitivity.py')
  rows: dict[str, list[tuple[float, float, float]]] = {}
  sizes, criteria = {}, set()
  with path.open(newline='') as f:
    reader = csv.DictReader(f)
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
      raise TfpruneError(f'{path} has no column {missing[0]!r}: pass a '
                         'sensitivity.csv written by experiments/sensitivity.py')
    for line, row in enumerate(reader, start=2):
      try:
        point = (float(row['k']), float(row['accuracy']), float(row['loss']))
        sizes[row['layer']] = int(row['weights'])
      except (TypeError, ValueError):
        raise TfpruneError(f'{path} line {line}: non-numeric value in {row}: '
                           'rerun experiments/sensitivity.py') from None
      rows.setdefault(row['layer'], []).append(point)
      criteria.add(row['criterion'])
  if not rows or len(criteria) != 1:
    raise TfpruneError(f'{path} holds no rows or mixes criteria: rerun '
                       'experiments/sensitivity.py')
  curves = {}
  for name, points in rows.items():
    points.sort()
    if points[0][0] != 0:
      raise TfpruneError(f'{path}: layer {name} has no row at k=0 (dense): '
                         'rerun experiments/sensitivity.py with 0 in --levels')
    levels, acc, loss = zip(*points)
    curves[name] = Curve(sizes[name], levels, acc, loss)
  return Scan(curves, criteria.pop())


def check_matches(scan: Scan, sizes: Mapping[str, int], source: str = '') -> None:
  """Refuses a scan made for other layers than `sizes` ({name: weights}).

  Raises:
    TfpruneError: names or weight counts differ.
  """
  theirs = {n: c.size for n, c in scan.curves.items()}
  if theirs != dict(sizes):
    raise TfpruneError(
        f'sensitivity file {source or ""} was made for another network or other '
        f'layers ({_describe(theirs)}), not these ({_describe(sizes)}): run '
        'experiments/sensitivity.py on this network')


def _describe(sizes: Mapping[str, int]) -> str:
  return ', '.join(f'{n}={s}' for n, s in sizes.items())


def damage(curve: Curve, grid: Sequence[float]) -> np.ndarray:
  """Predicted damage at each level of `grid`: the loss increase, interpolated.

  Made non-decreasing (pruning more never predicts less damage) and zero at
  k = 0.
  """
  rise = np.interp(grid, curve.levels, np.asarray(curve.loss) - curve.loss[0])
  return np.maximum.accumulate(np.maximum(rise, 0.0))
