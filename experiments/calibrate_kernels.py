"""Measure where CSR kernels beat dense ones, to calibrate `inference.MAX_CSR_DENSITY`.

The evaluator picks kernels by a fixed rule (`inference.plan`), so that a
network always gets the same kernels and results files are reproducible. This
script measures, on this machine, the density below which a CSR layer takes at
most `inference.REQUIRED_GAIN` of the dense layer's time, for each shape (the
timing probe of `inference.crossover_density`), several times, and prints the
medians. Its result on the 2-core machine of the README is stored in
`inference.MAX_CSR_DENSITY`; run it on a quiet machine.

  python experiments/calibrate_kernels.py
  python experiments/calibrate_kernels.py --shapes=784x1000,1000x500 --repeats=9
"""

import statistics

from tfprune import cli  # first: sets TensorFlow's log level

from absl import flags

from tfprune.runtime import inference
from tfprune.errors import TfpruneError

_SHAPES = flags.DEFINE_list(
    'shapes', ['784x1000', '1000x1000', '1000x500', '500x200'],
    'Kernel shapes inputs x units (default: the pruned layers of the MNIST MLP).')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Measurements per shape (median kept).')


def _shape(text: str) -> tuple[int, int]:
  try:
    inputs, units = (int(d) for d in text.lower().split('x'))
  except ValueError:
    raise TfpruneError(f'shape {text!r} is not INPUTSxUNITS: give shapes such '
                       'as 784x1000') from None
  return inputs, units


def main(argv):
  del argv
  shapes = [_shape(s) for s in _SHAPES.value]
  if _REPEATS.value < 1:
    raise TfpruneError(f'repeats must be at least 1, got {_REPEATS.value}')
  medians = []
  for inputs, units in shapes:
    runs = [inference.crossover_density(inputs, units) for _ in range(_REPEATS.value)]
    medians.append(statistics.median(runs))
    print(f'{inputs}x{units}: crossover density median {medians[-1]:.3f} '
          f'(runs {", ".join(f"{r:.3f}" for r in runs)})', flush=True)
  print(f'smallest median {min(medians):.3f}; inference.MAX_CSR_DENSITY is '
        f'{inference.MAX_CSR_DENSITY}')


if __name__ == '__main__':
  cli.run(main)
