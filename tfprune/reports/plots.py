"""Plots drawn from result CSVs, so they can be redrawn without re-running.

Sweeps: for each method `m` in a `sweep.csv`, `m_pruning.png` (accuracy vs
k); for all methods together, `pruning.png` (accuracy vs k, and accuracy vs
the measured sparsity of the pruned layers). Gradual studies:
`plot_gradual` draws each procedure of a `results.csv` against the one-shot
curve of the same starting weights.
"""

import csv
import pathlib

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfprune import atomic  # pylint: disable=wrong-import-position
from tfprune.errors import TfpruneError  # pylint: disable=wrong-import-position

COMBINED_NAME = 'pruning.png'
_REQUIRED = ('method', 'k', 'accuracy', 'sparsity')


def method_plot_name(method: str) -> str:
  """File name of the single-method plot."""
  return f'{method}_pruning.png'


def read_sweep_csv(path: str | pathlib.Path) -> dict[str, list[dict[str, float]]]:
  """Reads a sweep CSV into {method: [{'k', 'accuracy', 'sparsity'}, ...]}.

  Raises:
    TfpruneError: the file is missing, lacks a column, or has a non-number.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise TfpruneError(f'sweep CSV {path} does not exist: run experiments/sweep.py first')
  try:
    return _read_sweep_rows(path)
  except (UnicodeDecodeError, csv.Error) as e:
    what = (f'byte {e.start} is not UTF-8' if isinstance(e, UnicodeDecodeError)
            else str(e))
    raise TfpruneError(
        f'{path} is not a text CSV ({what}): pass a sweep.csv written by '
        'experiments/sweep.py') from None


def _read_sweep_rows(path: pathlib.Path) -> dict[str, list[dict[str, float]]]:
  with path.open(newline='', encoding='utf-8') as f:
    reader = csv.DictReader(f)
    missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
      raise TfpruneError(
          f'{path} has no column {missing[0]!r}: pass a sweep.csv written by '
          'experiments/sweep.py')
    by_method: dict[str, list[dict[str, float]]] = {}
    for line, row in enumerate(reader, start=2):
      try:
        point = {c: float(row[c]) for c in _REQUIRED[1:]}
      except (TypeError, ValueError):
        raise TfpruneError(
            f'{path} line {line}: non-numeric value in {row}: regenerate it '
            'with experiments/sweep.py') from None
      by_method.setdefault(row['method'], []).append(point)
  if not by_method:
    raise TfpruneError(f'{path} holds no rows: regenerate it with experiments/sweep.py')
  return by_method


def plot_sweep(csv_path: str | pathlib.Path,
               out_dir: str | pathlib.Path) -> list[pathlib.Path]:
  """Draws the per-method plots and the combined plot of a sweep CSV.

  Returns:
    The paths written, each written atomically.
  """
  by_method = read_sweep_csv(csv_path)
  out_dir = atomic.ensure_dir(out_dir)
  written = []
  for method, points in by_method.items():
    fig, ax = plt.subplots(figsize=(6, 4.5))
    _draw(ax, points, 'k', method)
    ax.set_title(f'{method}-level pruning')
    ax.set_xlabel('k (% of each pruned layer removed)')
    written.append(save_figure(fig, out_dir / method_plot_name(method)))
  fig, (by_k, by_sparsity) = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
  for method, points in by_method.items():
    _draw(by_k, points, 'k', method)
    _draw(by_sparsity, points, 'sparsity', method, scale=100)
  by_k.set_xlabel('k (% of each pruned layer removed)')
  by_sparsity.set_xlabel('measured sparsity of the pruned layers (%)')
  by_k.set_title('accuracy vs k')
  by_sparsity.set_title('accuracy vs sparsity')
  by_sparsity.legend()
  written.append(save_figure(fig, out_dir / COMBINED_NAME))
  return written


def _draw(ax, points, x_key: str, label: str, scale: float = 1.0) -> None:
  points = sorted(points, key=lambda p: p[x_key])
  ax.plot([scale * p[x_key] for p in points],
          [100 * p['accuracy'] for p in points], marker='o', label=label)
  ax.set_ylabel('test accuracy (%)')
  ax.grid(True, alpha=0.3)


def save_figure(fig, path: pathlib.Path) -> pathlib.Path:
  """Saves `fig` as a PNG at `path` atomically, closes it, returns `path`."""
  fig.tight_layout()
  # tight_layout leaves a placeholder layout engine behind, for which savefig
  # lays the figure out once more in a draw that renders nothing; the layout
  # is already applied, so drop the engine (same pixels, one draw less).
  fig.set_layout_engine(None)
  with atomic.replacing(path) as tmp:
    fig.savefig(tmp, format='png', dpi=100)
  plt.close(fig)
  return path


def plot_gradual(results_csv: str | pathlib.Path, oneshot_csv: str | pathlib.Path,
                 path: str | pathlib.Path) -> pathlib.Path:
  """Accuracy vs sparsity of each procedure in `results_csv` and of one-shot.

  Two panels: the whole range, and the high-sparsity end the study targets.

  Returns:
    `path`, written atomically.
  """
  with open(results_csv, newline='') as f:
    results = list(csv.DictReader(f))
  by_procedure: dict[str, list[dict[str, float]]] = {}
  for row in results:
    by_procedure.setdefault(row['procedure'], []).append(
        {'sparsity': float(row['sparsity']), 'accuracy': float(row['accuracy'])})
  oneshot = read_sweep_csv(oneshot_csv)
  lowest = min(p['sparsity'] for points in by_procedure.values() for p in points)
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
  for ax in axes:
    for method, points in oneshot.items():
      _draw(ax, points, 'sparsity', f'one-shot ({method})', scale=100)
    for procedure, points in by_procedure.items():
      _draw(ax, points, 'sparsity', procedure, scale=100)
    ax.set_xlabel('measured sparsity of the pruned layers (%)')
  axes[0].set_title('accuracy vs sparsity')
  axes[1].set_xlim(max(0.0, 100 * lowest - 3), 100)
  axes[1].set_ylim(max(0.0, min(
      100 * p['accuracy'] for points in by_procedure.values() for p in points) - 5),
                   100.5)
  axes[1].set_title('high-sparsity end')
  axes[1].legend()
  return save_figure(fig, pathlib.Path(path))
