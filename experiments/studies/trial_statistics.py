"""Statistics of the trial comparison: mean ± std per trial and exact permutation tests.

`summarize` turns the trials of `trials.run` (every procedure over seeds)
into one row per procedure; `format_table` prints those rows as the
Markdown table of `summary.md`.
"""

import itertools
import math
from typing import Sequence

import numpy as np

from tfprune.errors import TfpruneError
from tfprune.training import lottery


def permutation_p(a: Sequence[float], b: Sequence[float]) -> float:
  """Two-sided p-value of an exact permutation test on the difference of means.

  Every split of the pooled values into groups of len(a) and len(b) is
  counted (at most 200,000 splits; 10 + 10 seeds is 184,756); the p-value is
  the share whose |mean difference| reaches the observed one. With 5 + 5
  seeds the smallest possible p is 2/252 = 0.008.

  Raises:
    TfpruneError: a group is empty or there are too many splits.
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if not len(a) or not len(b):
    raise TfpruneError('a permutation test needs values in both groups')
  pooled = np.concatenate([a, b])
  if math.comb(len(pooled), len(a)) > 200_000:
    raise TfpruneError(f'{len(a)} + {len(b)} seeds are too many for an exact '
                       'permutation test: use at most 10 + 10')
  chosen = np.array(list(itertools.combinations(range(len(pooled)), len(a))))
  first = pooled[chosen].sum(axis=1)
  diffs = first / len(a) - (pooled.sum() - first) / len(b)
  observed = abs(a.mean() - b.mean())
  return float(np.mean(np.abs(diffs) >= observed - 1e-12 * max(1.0, observed)))


def reference_of(name: str, present: Sequence[str]) -> str:
  """The trial `name` is tested against: lottery for its control, else
  unpruned; '' when that trial is absent or is `name` itself."""
  reference = 'lottery' if name == 'random_reinit' else 'unpruned'
  return reference if reference in present and reference != name else ''


def summarize(trials: Sequence[lottery.Trial]) -> list[dict]:
  """One summary row per procedure, in the order they first appear.

  p_loss and p_accuracy are `permutation_p` of the final test loss and
  accuracy against the trial of `reference_of`.
  """
  by_name: dict[str, list[lottery.Trial]] = {}
  for t in trials:
    by_name.setdefault(t.procedure, []).append(t)
  rows = []
  for name, group in by_name.items():
    loss = [t.result.test_loss for t in group]
    acc = [t.result.test_accuracy for t in group]
    seconds = [t.seconds for t in group]
    p_loss = p_acc = math.nan
    reference = reference_of(name, list(by_name))
    if reference:
      base = by_name[reference]
      p_loss = permutation_p(loss, [t.result.test_loss for t in base])
      p_acc = permutation_p(acc, [t.result.test_accuracy for t in base])
    rows.append({
        'procedure': name, 'seeds': len(group),
        'test_loss_mean': np.mean(loss), 'test_loss_std': _std(loss),
        'test_accuracy_mean': np.mean(acc), 'test_accuracy_std': _std(acc),
        'sparsity': np.mean([1 - t.result.remaining for t in group]),
        'seconds_mean': np.mean(seconds), 'seconds_total': np.sum(seconds),
        'compared_with': reference, 'p_loss': p_loss, 'p_accuracy': p_acc})
  return rows


def _std(values: Sequence[float]) -> float:
  """Sample standard deviation (ddof 1); 0 for one value."""
  return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def format_table(summary: Sequence[dict], seconds: bool = True) -> str:
  """The summary as a Markdown table.

  Args:
    summary: rows of `summarize`.
    seconds: include the training seconds per seed (the script prints them;
      `summary.md` leaves them to `timing.json`, so identical runs write
      identical files).
  """
  header = ['trial', 'seeds', 'test loss', 'test accuracy (%)', 'sparsity (%)',
            *(['training s / seed'] if seconds else []), 'p (loss)',
            'p (accuracy)', 'vs']
  lines = ['| ' + ' | '.join(header) + ' |',
           '|---|' + '---:|' * (len(header) - 2) + '---|']
  for r in summary:
    p = [('—' if math.isnan(r[k]) else f'{r[k]:.3f}')
         for k in ('p_loss', 'p_accuracy')]
    cells = [r['procedure'], str(r['seeds']),
             f'{r["test_loss_mean"]:.4f} ± {r["test_loss_std"]:.4f}',
             f'{100 * r["test_accuracy_mean"]:.2f} ± '
             f'{100 * r["test_accuracy_std"]:.2f}',
             f'{100 * r["sparsity"]:.1f}',
             *([f'{r["seconds_mean"]:.0f}'] if seconds else []),
             p[0], p[1], r['compared_with'] or '—']
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)
