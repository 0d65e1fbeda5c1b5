"""Redraw the plots of a sweep from its sweep.csv, without re-running it.

  python experiments/plot.py
  python experiments/plot.py --csv=runs/no-biases/sweep.csv --out_dir=runs/no-biases
"""

import os
import pathlib

from tfprune import cli

from absl import flags

from tfprune.reports import plots

REPO = pathlib.Path(__file__).resolve().parents[1]

_CSV = flags.DEFINE_string('csv', os.path.relpath(REPO / 'img' / 'sweep.csv'),
                           'A sweep.csv written by experiments/sweep.py.')
_OUT_DIR = flags.DEFINE_string('out_dir', None,
                               'Folder for the plots (default: beside the CSV).')


def main(argv):
  del argv
  out_dir = _OUT_DIR.value or str(pathlib.Path(_CSV.value).parent)
  for path in plots.plot_sweep(_CSV.value, out_dir):
    print(f'wrote {path}')


if __name__ == '__main__':
  cli.run(main)
