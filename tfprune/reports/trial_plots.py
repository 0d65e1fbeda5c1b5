"""Plots of a four-trial comparison, drawn from its `curves.csv` and `rounds.csv`.

`curves.png`: validation (solid) and training (dashed) loss and accuracy per
epoch, mean over seeds with ± one standard deviation shaded, for the last
training run of each trial (the retrained ticket of the last lottery round);
prune-after, which has no training of its own, is a marker at the last epoch.
`ticket_curve.png` (lottery with more than one round): test accuracy against
the share of weights remaining, mean ± std over seeds.
"""

import csv
import pathlib

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfprune.errors import TfpruneError  # pylint: disable=wrong-import-position
from tfprune.reports import plots  # pylint: disable=wrong-import-position

CURVES_PLOT = 'curves.png'
TICKET_PLOT = 'ticket_curve.png'
COLORS = {'unpruned': 'tab:blue', 'prune_after': 'tab:orange',
          'lottery': 'tab:green', 'dynamic': 'tab:red',
          'random_reinit': 'tab:purple'}
TICKET_LABELS = {'lottery': 'lottery ticket (rewound, retrained)',
                 'random_reinit': 'same masks, random reinitialisation'}


def read_rows(path: pathlib.Path) -> list[dict[str, str]]:
  """The rows of a results CSV.

  Raises:
    TfpruneError: the file is missing.
  """
  if not path.is_file():
    raise TfpruneError(f'{path} does not exist: run experiments/lottery.py first')
  with path.open(newline='') as f:
    return list(csv.DictReader(f))


def plot_all(folder: str | pathlib.Path) -> list[pathlib.Path]:
  """Draws `curves.png`, and `ticket_curve.png` when there are lottery rounds."""
  folder = pathlib.Path(folder)
  written = [plot_curves(read_rows(folder / 'curves.csv'),
                         read_rows(folder / 'rounds.csv'), folder / CURVES_PLOT)]
  rounds = read_rows(folder / 'rounds.csv')
  if any(r['procedure'] == 'lottery' and int(r['round']) > 1 for r in rounds):
    written.append(plot_ticket_curve(rounds, folder / TICKET_PLOT))
  return written


def _last_run(rows: list[dict[str, str]], procedure: str) -> list[dict[str, str]]:
  mine = [r for r in rows if r['procedure'] == procedure]
  last = max(int(r['round']) for r in mine)
  return [r for r in mine if int(r['round']) == last]


def _by_epoch(rows, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  values: dict[int, list[float]] = {}
  for r in rows:
    values.setdefault(int(r['epoch']), []).append(float(r[key]))
  epochs = np.array(sorted(values))
  mean = np.array([np.mean(values[e]) for e in epochs])
  std = np.array([np.std(values[e]) for e in epochs])
  return epochs, mean, std


def plot_curves(curves, rounds, path: pathlib.Path) -> pathlib.Path:
  """Draws the training curves of every trial on one figure."""
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
  procedures = list(dict.fromkeys(r['procedure'] for r in rounds))
  last_epoch = max(int(r['epoch']) for r in curves)
  for name in procedures:
    color = COLORS.get(name)
    if name == 'prune_after':
      result = [r for r in rounds if r['procedure'] == name]
      for ax, key in zip(axes, ('val_loss', 'val_accuracy')):
        ax.errorbar([last_epoch], [np.mean([float(r[key]) for r in result])],
                    yerr=[np.std([float(r[key]) for r in result])], fmt='x',
                    color=color, markersize=9, label=f'{name} (validation)')
      continue
    run = _last_run(curves, name)
    for ax, metric in zip(axes, ('loss', 'accuracy')):
      epochs, mean, std = _by_epoch(run, f'val_{metric}')
      ax.plot(epochs, mean, color=color, label=f'{name} validation')
      ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.15)
      epochs, mean, _ = _by_epoch(run, f'train_{metric}')
      ax.plot(epochs, mean, color=color, linestyle='--', alpha=0.7,
              label=f'{name} train')
  seeds = len({r['seed'] for r in curves})
  for ax, metric in zip(axes, ('loss', 'accuracy')):
    ax.set_xlabel('epoch')
    ax.set_ylabel(metric)
    ax.set_title(f'{metric} per epoch (mean ± std over {seeds} '
                 f'seed{"s" if seeds > 1 else ""})')
    ax.grid(True, alpha=0.3)
  axes[0].set_yscale('log')  # losses near 0 (logits) and near a floor (tanh)
  axes[0].legend(fontsize=8)
  return plots.save_figure(fig, path)


def plot_ticket_curve(rounds, path: pathlib.Path) -> pathlib.Path:
  """Draws lottery-ticket test accuracy against the weights remaining."""
  fig, ax = plt.subplots(figsize=(6.5, 4.5))
  for name, label in TICKET_LABELS.items():
    by_round: dict[int, list[dict[str, str]]] = {}
    for r in rounds:
      if r['procedure'] == name:
        by_round.setdefault(int(r['round']), []).append(r)
    if not by_round:
      continue
    order = sorted(by_round)
    remaining = [100 * float(by_round[k][0]['remaining']) for k in order]
    acc = [[100 * float(r['test_accuracy']) for r in by_round[k]] for k in order]
    ax.errorbar(remaining, [np.mean(a) for a in acc],
                yerr=[np.std(a) for a in acc], marker='o', capsize=3,
                color=COLORS[name], label=label)
    if name == 'lottery':
      ax.axhline(np.mean(acc[0]), color='gray', linestyle=':',
                 label='dense (round 0)')
      seeds = len(by_round[order[0]])
  ax.set_xscale('log')
  ax.invert_xaxis()
  ax.set_xlabel('weights remaining (%)')
  ax.set_ylabel('test accuracy (%)')
  ax.set_title(f'iterative lottery ticket ({seeds} seeds)')
  ax.grid(True, which='both', alpha=0.3)
  ax.legend()
  return plots.save_figure(fig, path)
