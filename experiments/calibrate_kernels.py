"""Measure where CSR kernels beat dense ones, to calibrate `sparse_kernels.MAX_CSR_DENSITY`.

The MLP plan and the graph evaluator pick kernels by a fixed rule
(`sparse_kernels.kernel_kind`), so that a network always gets the same
kernels and results files are reproducible. The rule's density threshold
depends on the rows per kernel call, so it is calibrated per path:
`--path=mlp` (the MLP plan, 512-row chunks) or `--path=graph` (the graph
evaluator, 128-row calls). This script measures, on this machine, the
density below which a CSR layer takes at most
`kernel_calibration.REQUIRED_GAIN` of the dense layer's time, for each shape
(the timing probe `kernel_calibration.crossover_density`), several times,
and prints the medians and the load average (`os.getloadavg`, as `uptime`)
before and after. The smallest median is the path's entry of
`sparse_kernels.MAX_CSR_DENSITY`, which the library reads from
tfprune/graph/csr_calibration.json: `--write` sets the entry for these rows
per call there, with a note of the command, machine and medians (the
committed file was measured on the 2-core AMD EPYC VM of the documentation);
run it on a quiet machine.

  python experiments/calibrate_kernels.py
  python experiments/calibrate_kernels.py --path=graph --repeats=9
  python experiments/calibrate_kernels.py --path=graph --rows=1
  python experiments/calibrate_kernels.py --shapes=784x1000,1000x500 --repeats=9
  python experiments/calibrate_kernels.py --path=mlp --write
"""

import datetime
import os
import statistics

from tfprune import cli  # first: sets TensorFlow's log level

from absl import flags

from tfprune.drivers import benchmark
from tfprune.errors import TfpruneError
from tfprune.graph import csr_calibration
from tfprune.graph import sparse_kernels
from tfprune.runtime import kernel_calibration

# The pruned layers of the MNIST MLP; the large Dense layers of graphs (the
# Fashion CNN's dense_1 and the shapes of larger CNN heads).
DEFAULT_SHAPES = {'mlp': ['784x1000', '1000x1000', '1000x500', '500x200'],
                  'graph': ['3136x128', '1024x512', '2048x1000']}

_PATH = flags.DEFINE_enum('path', 'mlp', list(kernel_calibration.PATHS),
                          'Kernels to calibrate: the MLP plan (512-row chunks) '
                          'or the graph evaluator (128-row calls).')
_SHAPES = flags.DEFINE_list(
    'shapes', None, 'Kernel shapes inputs x units (default: '
    + '; '.join(f'{p}: {",".join(s)}' for p, s in DEFAULT_SHAPES.items()) + ').')
_ROWS = flags.DEFINE_integer(
    'rows', None, 'Examples per call on the graph path (default: the '
    "evaluator's 128; e.g. 1 for batch 1).")
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Measurements per shape (median kept).')
_WRITE = flags.DEFINE_bool(
    'write', False, 'Set the smallest median as the entry for these rows per '
    f'call in {csr_calibration.FILE.name}, which the library reads.')


def _shape(text: str) -> tuple[int, int]:
  try:
    inputs, units = (int(d) for d in text.lower().split('x'))
  except ValueError:
    raise TfpruneError(f'shape {text!r} is not INPUTSxUNITS: give shapes such '
                       'as 784x1000') from None
  if inputs < 1 or units < 1:
    raise TfpruneError(f'shape {text!r} has an empty dimension: give positive '
                       'sizes such as 784x1000')
  return inputs, units


def _load() -> str:
  return ' '.join(f'{x:.2f}' for x in os.getloadavg())


def main(argv):
  del argv
  path = _PATH.value
  shapes = [_shape(s) for s in (_SHAPES.value or DEFAULT_SHAPES[path])]
  if not shapes:
    raise TfpruneError('no shapes given: give --shapes such as 784x1000')
  if _REPEATS.value < 1:
    raise TfpruneError(f'repeats must be at least 1, got {_REPEATS.value}: '
                       'give --repeats=5 or more')
  if _ROWS.value is not None and (path != 'graph' or _ROWS.value < 1):
    raise TfpruneError(f'--rows={_ROWS.value} applies to --path=graph only and '
                       'must be at least 1: drop it or give --path=graph')
  rows = _ROWS.value or kernel_calibration.rows_per_call(path)
  print(f'path {path}, {rows} rows per call; load average before {_load()}',
        flush=True)
  medians = []
  for inputs, units in shapes:
    runs = [kernel_calibration.crossover_density(inputs, units, path,
                                                 _ROWS.value)
            for _ in range(_REPEATS.value)]
    medians.append(statistics.median(runs))
    print(f'{inputs}x{units}: crossover density median {medians[-1]:.3f} '
          f'(runs {", ".join(f"{r:.3f}" for r in runs)})', flush=True)
  print(f'load average after {_load()}')
  print(f'smallest median {min(medians):.3f}; sparse_kernels.MAX_CSR_DENSITY '
        f'for {rows} rows is {sparse_kernels.max_csr_density(rows)}')
  if _WRITE.value:
    density = round(min(medians), 3)
    note = (f'{cli.command_line()} on {benchmark.cpu_name()} '
            f'({os.cpu_count()} cores), {datetime.date.today()}, load average '
            f'after {_load()}: medians ' + ', '.join(
                f'{i}x{u} {m:.3f}' for (i, u), m in zip(shapes, medians)))
    path = csr_calibration.save(rows, density, note)
    print(f'wrote {density} for {rows} rows per call to {path}')


if __name__ == '__main__':
  cli.run(main)
