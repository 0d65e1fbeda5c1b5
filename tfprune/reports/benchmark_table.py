"""The benchmark's files and terminal table: rows as CSV, ratios as a table, a plot.

The CSV (`CSV_NAME`) holds what does not depend on the machine, so identical
runs write identical bytes: per point the method, k, test accuracy, the
sparsity of the pruned kernels, what was timed, the `.keras` and graph-file
sizes of the saved network, its parameters and the evaluator's kernel per
weighted layer. The timings and the A-vs-A controls go to `TIMING_NAME`
(written by `drivers/benchmark.py`); the table and the plot read both.
"""

import csv
import io
import pathlib
from typing import Sequence

from tfprune import atomic

CSV_NAME = 'graph_benchmark.csv'
TIMING_NAME = 'graph_timing.json'
PLOT_NAME = 'graph_benchmark.png'
COLUMNS = ('method', 'k', 'accuracy', 'sparsity', 'timed', 'keras_bytes',
           'graph_bytes', 'params', 'kernels')


def to_csv(rows: Sequence[dict]) -> str:
  """The rows (no timings) as CSV text."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  writer.writerow(COLUMNS)
  for r in rows:
    writer.writerow([r['method'], f'{r["k"]:g}', f'{r["accuracy"]:.4f}',
                     f'{r["sparsity"]:.6f}', r['timed'], r['keras_bytes'],
                     r['graph_bytes'], r['params'], r['kernels']])
  return out.getvalue()


def _speedup(timing: dict, key: str) -> str:
  """A speed-up as `2.50x`, `~` marking one within the noise; `-` if not timed."""
  if key not in timing:
    return f'{"-":>7} '
  noise = timing[key.replace('speedup', 'within_noise')]
  return f'{timing[key]:>6.2f}x{"~" if noise else " "}'


def format_table(record: dict) -> str:
  """Accuracy, ratios to the dense network and median speed-ups, one line a point.

  `nonzero` and `size` are the saved network's non-zero parameters and graph
  file over the dense network's, `macs` the dense multiply-adds over the
  saved network's non-zero ones (the theoretical speed-up); `x@b` the
  measured speed-up at batch b, `csr@b` that of CSR kernels over dense ones
  on the same graph (where a layer can run on CSR). A speed-up within the
  noise of identical runs (the A-vs-A control) is marked `~`.
  """
  batches = record['config']['batch_sizes']
  dense = record['dense']
  lines = [f'{"method":<8} {"k":>4} {"acc":>7} {"nonzero":>7} {"size":>6} '
           f'{"macs":>7} ' + ' '.join(f'{"x@" + str(b):>8}' for b in batches)
           + ' ' + ' '.join(f'{"csr@" + str(b):>8}' for b in batches)
           + '  timed']
  for r, t in zip(record['rows'], record['timings']):
    lines.append(
        f'{r["method"]:<8} {r["k"]:>4g} {100 * r["accuracy"]:>6.2f}% '
        f'{r["nonzero_params"] / dense["params"]:>7.3f} '
        f'{r["graph_bytes"] / dense["graph_bytes"]:>6.3f} '
        f'{r["flops_speedup"]:>6.2f}x '
        + ' '.join(_speedup(t, f'speedup_{b}') for b in batches) + ' '
        + ' '.join(_speedup(t, f'csr_speedup_{b}') for b in batches)
        + f'  {r["timed"]}')
  lines.append(f'speed-ups: median over {record["rounds"]} alternated rounds; '
               '~ marks one within the noise of identical runs (dense vs '
               'dense):')
  for c in record['controls']:
    lines.append(f'  {c["timed"]} batch {c["batch"]}: identical runs gave '
                 f'{1 / c["noise"]:.2f}x-{c["noise"]:.2f}x in their rounds')
  return '\n'.join(lines)


def plot(rows: Sequence[dict], timings: Sequence[dict], batches: Sequence[int],
         dense_bytes: dict, path: pathlib.Path) -> pathlib.Path:
  """Accuracy against measured speed-up (each batch size) and against file size."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, len(batches) + 1,
                           figsize=(5 * (len(batches) + 1), 4.5))
  for method in dict.fromkeys(r['method'] for r in rows):
    picked = [(r, t) for r, t in zip(rows, timings) if r['method'] == method]
    accuracy = [100 * r['accuracy'] for r, _ in picked]
    for ax, b in zip(axes, batches):
      ax.plot([t[f'speedup_{b}'] for _, t in picked], accuracy, marker='o',
              label=method)
    axes[-1].plot([r['keras_bytes'] / 1e3 for r, _ in picked], accuracy,
                  marker='o', label=method)
  for ax, b in zip(axes, batches):
    ax.set_xlabel(f'measured speed-up over dense, batch {b} (median, x)')
    ax.axvline(1.0, color='grey', lw=0.8)
  axes[-1].set_xlabel('.keras file size (kB)')
  axes[-1].axvline(dense_bytes['keras_bytes'] / 1e3, color='grey', lw=0.8)
  for ax in axes:
    ax.set_ylabel('test accuracy (%)')
    ax.grid(True, alpha=0.3)
  axes[0].legend()
  fig.tight_layout()
  with atomic.replacing(path) as tmp:
    fig.savefig(tmp, format='png', dpi=100)
  plt.close(fig)
  return path
