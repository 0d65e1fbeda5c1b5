"""The plot of a sensitivity scan, drawn from its `sensitivity.csv`.

One accuracy curve per layer against k (and the loss beside it); with more
than `MAX_CURVES` layers, a heat map of accuracy per (layer, k) instead.
"""

import pathlib

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfprune.allocation import scan as scan_lib  # pylint: disable=wrong-import-position
from tfprune.reports import plots  # pylint: disable=wrong-import-position

MAX_CURVES = 12


def plot(csv_path: str | pathlib.Path, path: str | pathlib.Path) -> pathlib.Path:
  """Draws the scan in `csv_path` to the PNG `path` (atomically)."""
  scan = scan_lib.read_csv(csv_path)
  curves = scan.curves
  if len(curves) > MAX_CURVES:
    levels = sorted({k for c in curves.values() for k in c.levels})
    grid = np.array([np.interp(levels, c.levels, c.accuracy)
                     for c in curves.values()])
    fig, ax = plt.subplots(figsize=(8, 0.25 * len(curves) + 2))
    image = ax.imshow(100 * grid, aspect='auto', cmap='viridis')
    ax.set_yticks(range(len(curves)), list(curves), fontsize=6)
    ax.set_xticks(range(len(levels)), [f'{k:g}' for k in levels])
    ax.set_xlabel(f'k (% of the layer, {scan.criterion} criterion)')
    fig.colorbar(image, label='held-out accuracy (%)')
  else:
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, c in curves.items():
      acc_ax.plot(c.levels, [100 * a for a in c.accuracy], marker='o',
                  label=f'{name} ({c.size:,})')
      loss_ax.plot(c.levels, c.loss, marker='o', label=name)
    acc_ax.set_ylabel('held-out training accuracy (%)')
    loss_ax.set_ylabel('held-out cross-entropy')
    loss_ax.set_yscale('log')
    for ax in (acc_ax, loss_ax):
      ax.set_xlabel(f'k (% of that layer alone, {scan.criterion} criterion)')
      ax.grid(True, alpha=0.3)
    acc_ax.legend(fontsize=8)
  return plots.save_figure(fig, pathlib.Path(path))
