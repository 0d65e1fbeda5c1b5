"""Measure where CSR kernels beat dense ones, to calibrate `sparse_kernels.MAX_CSR_DENSITY`.

The graph evaluator picks each Dense layer's kernel by a fixed rule
(`sparse_kernels.kernel_kind`), so that a network always gets the same
kernels and results files are reproducible. The rule's density threshold
depends on the examples per kernel call (`--rows`, default the evaluator's
128). This script measures, on this machine, the density below which a CSR
layer takes at most `kernel_calibration.REQUIRED_GAIN` of the dense layer's
time, for each shape (the timing probe
`kernel_calibration.crossover_density`), several times, and prints the
medians and the load average (`os.getloadavg`, as `uptime`) before and
after. The smallest median is the entry of `sparse_kernels.MAX_CSR_DENSITY`
for those rows, which the library reads from
tfprune/graph/csr_calibration.json: `--write` sets it there, with a note of
the command, machine and medians (the committed file was measured on the
2-core AMD EPYC VM of the documentation); run it on a quiet machine.

  python experiments/calibrate_kernels.py --repeats=9
  python experiments/calibrate_kernels.py --rows=1
  python experiments/calibrate_kernels.py --shapes=784x1000,1000x500 --rows=500
  python experiments/calibrate_kernels.py --repeats=21 --write
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

# The large Dense layers of graphs: the Fashion CNN's dense_1 and the shapes
# of larger CNN heads.
DEFAULT_SHAPES = ['3136x128', '1024x512', '2048x1000']

_SHAPES = flags.DEFINE_list('shapes', DEFAULT_SHAPES,
                            'Kernel shapes inputs x units.')
_ROWS = flags.DEFINE_integer(
    'rows', sparse_kernels.GRAPH_CHUNK_ROWS, "Examples per call (the "
    "evaluator's calls of a conv graph: 128; e.g. 1 for batch 1).")
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
  shapes = [_shape(s) for s in _SHAPES.value or ()]
  if not shapes:
    raise TfpruneError('no shapes given: give --shapes such as 784x1000')
  if _REPEATS.value < 1:
    raise TfpruneError(f'repeats must be at least 1, got {_REPEATS.value}: '
                       'give --repeats=5 or more')
  rows = _ROWS.value
  if rows < 1:
    raise TfpruneError(f'--rows={rows} must be at least 1: give the examples '
                       'per call, e.g. --rows=128')
  print(f'{rows} rows per call; load average before {_load()}', flush=True)
  medians = []
  for inputs, units in shapes:
    runs = [kernel_calibration.crossover_density(inputs, units, rows)
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
