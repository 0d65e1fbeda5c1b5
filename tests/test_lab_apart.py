"""The library apart from the lab: no studies in the package, calibrations as data.

The studies live in experiments/studies (the import contracts of setup.cfg
keep tfprune from importing them); the dense/CSR rule's machine calibration
is the data file `tfprune/graph/csr_calibration.json`, which
experiments/calibrate_kernels.py --write rewrites and the library reads.
"""

import importlib.util
import json
import shutil

import pytest

from tests import helpers
from tfprune.errors import TfpruneError
from tfprune.graph import csr_calibration
from tfprune.graph import sparse_kernels
from tfprune.runtime import kernel_calibration


def test_the_studies_are_outside_the_package():
  assert importlib.util.find_spec('tfprune.studies') is None
  assert importlib.util.find_spec('experiments.studies.trials') is not None
  # The gradual tool (`tfprune gradual`) stays in the package.
  assert importlib.util.find_spec('tfprune.drivers.gradual_study') is not None


def test_the_rule_reads_the_shipped_calibration():
  record = json.loads(csr_calibration.FILE.read_text())
  assert sparse_kernels.MAX_CSR_DENSITY == {
      int(r): d for r, d in record['max_csr_density'].items()}
  assert set(record['notes']) == set(record['max_csr_density'])


def test_calibration_file_round_trip_absent_and_malformed(tmp_path):
  path = tmp_path / 'c.json'
  assert csr_calibration.load(path) == {}  # absent: every layer dense
  csr_calibration.save(512, 0.15, 'measured here', path)
  csr_calibration.save(128, 0.0, 'and here', path)
  assert csr_calibration.load(path) == {512: 0.15, 128: 0.0}
  csr_calibration.save(512, 0.2, 'again', path)
  assert csr_calibration.load(path) == {512: 0.2, 128: 0.0}
  assert json.loads(path.read_text())['notes'] == {'512': 'again', '128': 'and here'}
  path.write_text('{"max_csr_density": {"512": "lots"}}')
  with pytest.raises(TfpruneError, match=r'is not a CSR calibration file .*'
                     'calibrate_kernels.py --write$'):
    csr_calibration.load(path)


def test_calibrate_script_writes_the_measured_entry(tmp_path, monkeypatch, capsys):
  path = tmp_path / 'csr_calibration.json'
  shutil.copy(csr_calibration.FILE, path)
  monkeypatch.setattr(csr_calibration, 'FILE', path)
  medians = iter([0.2, 0.26, 0.1, 0.3])  # two shapes, two repeats each
  monkeypatch.setattr(kernel_calibration, 'crossover_density',
                      lambda *args: next(medians))
  code, out, err = helpers.run_main(
      'calibrate_kernels', '--shapes=64x64,32x16', '--repeats=2', '--rows=512',
      '--write', capsys=capsys)
  assert code == 0, err
  record = json.loads(path.read_text())
  shipped = json.loads(csr_calibration.FILE.read_text())
  # Medians 0.23 and 0.2: the smallest is the entry for 512 rows per call.
  assert record['max_csr_density'] == {**shipped['max_csr_density'], '512': 0.2}
  assert record['notes']['128'] == shipped['notes']['128']
  assert record['notes']['512'].startswith(
      'python experiments/calibrate_kernels.py --shapes=64x64,32x16 --repeats=2 '
      '--rows=512 --write on ')
  assert f'wrote 0.2 for 512 rows per call to {path}' in out
