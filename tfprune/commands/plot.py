"""tfprune plot: redraw the plots of a sweep from its sweep.csv, without re-running it.

  tfprune plot --csv=runs/no-biases/sweep.csv --out_dir=runs/no-biases
  tfprune plot    # a clone's img/sweep.csv
"""


import pathlib

from absl import flags

from tfprune.commands import defaults
from tfprune.reports import plots


_CSV = flags.DEFINE_string('csv', defaults.in_clone('img', 'sweep.csv'),
                           'A sweep.csv written by tfprune sweep (default: a clone\'s img/sweep.csv).')
_OUT_DIR = flags.DEFINE_string('out_dir', None,
                               'Folder for the plots (default: beside the CSV).')


def main(argv):
  del argv
  csv_path = defaults.required(_CSV.value, 'csv', 'sweep.csv')
  out_dir = _OUT_DIR.value or str(pathlib.Path(csv_path).parent)
  for path in plots.plot_sweep(csv_path, out_dir):
    print(f'wrote {path}')
