"""The sweep's results as rows: `SweepRow`, its CSV columns and the terminal table.

One row per (method, k) point, the same for every network (a weight folder's
`Network` or any graph); `to_csv` writes the committed `sweep.csv` format,
with a `layer_sparsity` column only when some row has one (allocations),
and for a network with several outputs an `accuracy_<output>` column per
output other than the one `accuracy` scores.
"""

import csv
import dataclasses
import io
from typing import Sequence

COLUMNS = ('method', 'k', 'accuracy', 'sparsity', 'nonzero_params', 'flops',
           'flops_speedup', 'compression', 'size_bytes', 'units', 'kernels')


@dataclasses.dataclass(frozen=True)
class SweepRow:
  """One measured point.

  Attributes:
    method: pruning method name.
    k: pruning level in percent.
    accuracy: test accuracy of the pruned network.
    sparsity: measured fraction of zero weights in the pruned layers' kernels.
    nonzero_params: non-zero parameters of the whole network (kernels, plus
      biases when they are used).
    flops: multiply-adds per example left after compaction, skipping zero
      weights (the effective MACs of `metrics`).
    flops_speedup: dense multiply-adds of the unpruned network / `flops`.
    compression: parameters of the unpruned network / `nonzero_params`.
    size_bytes: bytes of the compact sparse export (`export`), exactly the
      file `save_pruned` writes but its provenance tag (`ziptags`).
    units: layer widths after compaction, e.g. 784-100-100-50-20-10.
    kernels: kernel the evaluator chose per layer, e.g. csr+csr+dense.
    layer_sparsity: measured sparsity per pruned layer, e.g.
      'layer_1=0.9120;layer_2=0.8500' (written only when the allocation is
      not uniform).
    output_accuracies: (output name, test accuracy) of each output other
      than the one `accuracy` scores (a network with several outputs).
  """
  method: str
  k: float
  accuracy: float
  sparsity: float
  nonzero_params: int
  flops: int = 0
  flops_speedup: float = 1.0
  compression: float = 1.0
  size_bytes: int = 0
  units: str = ''
  kernels: str = ''
  layer_sparsity: str = ''
  output_accuracies: tuple[tuple[str, float], ...] = ()


def to_csv(rows: Sequence[SweepRow]) -> str:
  """The rows as CSV text with a header of `COLUMNS`."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  per_layer = any(r.layer_sparsity for r in rows)
  others = list(dict.fromkeys(n for r in rows for n, _ in r.output_accuracies))
  writer.writerow(COLUMNS + tuple(f'accuracy_{n}' for n in others)
                  + (('layer_sparsity',) if per_layer else ()))
  for r in rows:
    scores = dict(r.output_accuracies)
    writer.writerow([r.method, f'{r.k:g}', f'{r.accuracy:.4f}',
                     f'{r.sparsity:.6f}', r.nonzero_params, r.flops,
                     f'{r.flops_speedup:.3f}', f'{r.compression:.3f}',
                     r.size_bytes, r.units, r.kernels]
                    + [f'{scores[n]:.4f}' for n in others]
                    + ([r.layer_sparsity] if per_layer else []))
  return out.getvalue()


def format_table(rows: Sequence[SweepRow]) -> str:
  """A fixed-width table of the rows for the terminal."""
  lines = [f'{"method":<8} {"k":>6} {"accuracy":>9} {"sparsity":>9} '
           f'{"nonzero":>10} {"MACs":>10} {"export":>10}  kernels']
  for r in rows:
    lines.append(f'{r.method:<8} {r.k:>6g} {100 * r.accuracy:>8.2f}% '
                 f'{100 * r.sparsity:>8.2f}% {r.nonzero_params:>10,} '
                 f'{r.flops:>10,} {r.size_bytes / 1e6:>8.2f}MB  {r.kernels}')
  return '\n'.join(lines)
