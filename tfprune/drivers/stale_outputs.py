"""What an earlier sweep wrote in an output folder, so a rerun there leaves only its own files.

A sweep run into a folder that holds an earlier sweep replaces sweep.csv,
sweep_config.json, timing.json and the plots; but a plot of a method the new
run does not measure, or a `pruned/` folder the new run does not save, would
stay beside the new CSV and describe another run. `earlier_sweep` names the
files the earlier sweep wrote there, read from its own sweep.csv (the plots
are named after its methods) and sweep_config.json (whether it saved
`pruned/`); `remove` deletes those the new run did not write. Nothing else in
the folder is touched: a folder without a readable earlier sweep.csv yields
no names, so a user's own files are never removed.
"""

import json
import pathlib
import shutil
from typing import Iterable

from tfprune.errors import TfpruneError
from tfprune.reports import plots

def earlier_sweep(out_dir: str | pathlib.Path, csv_name: str, config_name: str,
                  always: Iterable[str], pruned_dir: str) -> set[str]:
  """The names of the entries an earlier sweep wrote in `out_dir`; empty if none.

  Args:
    out_dir: the output folder.
    csv_name: the sweep's CSV (its methods name the plots).
    config_name: the sweep's config JSON (`save_pruned`, `save_keras`).
    always: the other files every sweep writes.
    pruned_dir: the folder of saved networks.
  """
  out_dir = pathlib.Path(out_dir)
  try:
    methods = plots.read_sweep_csv(out_dir / csv_name)
  except (TfpruneError, OSError):
    return set()
  names = {csv_name, config_name, *always, plots.COMBINED_NAME,
           *(plots.method_plot_name(m) for m in methods)}
  try:
    config = json.loads((out_dir / config_name).read_text())['config']
  except (OSError, ValueError, KeyError, TypeError):
    config = {}
  if isinstance(config, dict) and (config.get('save_pruned')
                                   or config.get('save_keras')):
    names.add(pruned_dir)
  return names


def remove(out_dir: str | pathlib.Path, names: Iterable[str]) -> None:
  """Deletes the entries `names` of `out_dir` that exist (folders whole)."""
  for name in sorted(names):
    path = pathlib.Path(out_dir) / name
    if path.is_dir() and not path.is_symlink():
      shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
      path.unlink()
