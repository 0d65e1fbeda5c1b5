"""The machine calibration of the dense/CSR rule, as data: `csr_calibration.json`.

`sparse_kernels.MAX_CSR_DENSITY` (the density below which a Dense layer runs
through the CSR matmul, by examples per kernel call) is measured on a machine
by `experiments/calibrate_kernels.py --write`, which writes this package's
`csr_calibration.json` (shipped with the package); the library only reads
it. Without the file every layer runs dense (`load` returns no entry), which
changes no accuracy, only the `kernels` column and the speed.
"""

import json
import pathlib

from tfprune import atomic
from tfprune.errors import TfpruneError

FILE = pathlib.Path(__file__).with_name('csr_calibration.json')


def load(path: str | pathlib.Path | None = None) -> dict[int, float]:
  """{rows per call: max CSR density} from the calibration file; {} if absent.

  Args:
    path: the file (default: `FILE`, this package's).

  Raises:
    TfpruneError: the file is not a calibration file (the fix names its writer).
  """
  path = pathlib.Path(path or FILE)
  try:
    table = json.loads(path.read_text())['max_csr_density']
    return {int(rows): float(density) for rows, density in table.items()}
  except FileNotFoundError:
    return {}
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise TfpruneError(f'{path} is not a CSR calibration file ({e}): restore '
                       'it from the repository or rewrite it with '
                       'experiments/calibrate_kernels.py --write') from None


def save(rows: int, density: float, note: str,
         path: str | pathlib.Path | None = None) -> pathlib.Path:
  """Sets the entry for `rows` (and its note: how it was measured), keeping the others.

  Args:
    rows: examples per kernel call the entry is for.
    density: the density below which CSR is used at those rows.
    note: how it was measured (command, machine, medians).
    path: the file (default: `FILE`, this package's).
  """
  path = pathlib.Path(path or FILE)
  record = json.loads(path.read_text()) if path.exists() else {}
  record.setdefault('max_csr_density', {})[str(rows)] = density
  record.setdefault('notes', {})[str(rows)] = note
  return atomic.write_text(path, json.dumps(record, indent=2, sort_keys=True) + '\n')
