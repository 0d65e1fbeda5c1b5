"""Benchmark pruned networks against the dense one, measured in the same run.

Writes benchmark.json and benchmark.png to --out_dir and prints the table.

  python experiments/benchmark.py
  python experiments/benchmark.py --methods=weight,unit,obs --out_dir=img/benchmark
"""

import os
import pathlib

from tfprune import cli  # first: sets TensorFlow's log level  # pylint: disable=g-import-not-at-top

from absl import flags  # pylint: disable=g-import-not-at-top

from tfprune.criteria import methods  # pylint: disable=g-import-not-at-top
from tfprune.data import datasets  # pylint: disable=g-import-not-at-top
from tfprune.drivers import benchmark  # pylint: disable=g-import-not-at-top
from tfprune.drivers import sweep  # pylint: disable=g-import-not-at-top

REPO = pathlib.Path(__file__).resolve().parents[1]

_WEIGHTS_DIR = flags.DEFINE_string(
    'weights_dir', os.path.relpath(REPO / 'weights' / 'mlp-mnist'), 'Dense weight folder.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, f'Local data folder (else ${datasets.DATA_DIR_ENV}, else tfds).')
_METHODS = flags.DEFINE_list('methods', list(sweep.DEFAULT_METHODS),
                             f'Methods, from: {",".join(methods.METHODS)}.')
_LEVELS = flags.DEFINE_list('levels', [f'{k:g}' for k in sweep.DEFAULT_LEVELS],
                            'Levels k in percent.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed runs at batch 10,000, at least (best kept).')
_MIN_SECONDS = flags.DEFINE_float(
    'min_seconds', 1.0, 'Each timed network runs at least this long per '
    'measurement, in blocks alternating with the dense network.')
_OUT_DIR = flags.DEFINE_string('out_dir', os.path.relpath(REPO / 'img' / 'benchmark'),
                               'Folder for benchmark.json and benchmark.png.')


def main(argv):
  del argv
  config = benchmark.BenchmarkConfig(
      weights_dir=_WEIGHTS_DIR.value, out_dir=_OUT_DIR.value,
      data_dir=_DATA_DIR.value, methods=tuple(_METHODS.value),
      levels=sweep.parse_levels(_LEVELS.value), repeats=_REPEATS.value,
      min_seconds=_MIN_SECONDS.value)
  record = benchmark.run(config)
  print(benchmark.format_table(record))
  print(f'wrote {pathlib.Path(config.out_dir) / benchmark.JSON_NAME} and '
        f'{benchmark.PLOT_NAME}')


if __name__ == '__main__':
  cli.run(main)
