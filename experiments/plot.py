"""Redraw the plots of a sweep from its sweep.csv, without re-running it.

  python experiments/plot.py
  python experiments/plot.py --csv=runs/no-biases/sweep.csv --out_dir=runs/no-biases
"""

from tfprune import commands  # the flags and main of `tfprune plot`

if __name__ == '__main__':
  commands.run_script('plot', __doc__)
