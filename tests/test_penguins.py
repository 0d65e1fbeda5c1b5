"""Penguins: rows after dropping NAs, split, one-hot widths, training-only scaler, bad CSVs."""

import csv

import numpy as np
import pytest

from tests import helpers
from tfprune.data import datasets
from tfprune.data import penguins
from tfprune.errors import TfpruneError


@pytest.fixture(scope='module')
def rows(data_dir):
  return penguins.read_rows(helpers.penguins_csv(data_dir))


def test_rows_with_a_missing_value_are_dropped(data_dir, rows):
  with helpers.penguins_csv(data_dir).open(newline='') as f:
    raw = list(csv.DictReader(f))
  assert len(raw) == 344
  # The shared README: 11 rows lack sex, 2 of them every measurement too.
  assert sum('NA' in r.values() for r in raw) == 11
  assert len(rows) == 333
  assert not any('NA' in r.values() for r in rows)


def test_split_is_stratified_seeded_and_covers_every_row_once(rows):
  labels = penguins.labels_of(rows)
  assert np.bincount(labels).tolist() == [146, 68, 119]
  parts = penguins.split_indices(labels)
  # floor(20%) of each class to test and to validation: 29+13+23 = 65.
  assert {k: np.bincount(labels[v]).tolist() for k, v in parts.items()} == {
      'test': [29, 13, 23], 'validation': [29, 13, 23], 'train': [88, 42, 73]}
  together = np.concatenate(list(parts.values()))
  assert sorted(together.tolist()) == list(range(333))
  again = penguins.split_indices(labels)
  other = penguins.split_indices(labels, seed=1)
  assert all(np.array_equal(parts[k], again[k]) for k in parts)
  assert not np.array_equal(parts['test'], other['test'])


def test_features_are_one_hot_blocks_and_scaled_measurements(data_dir):
  splits = {s: datasets.load('penguins', s, data_dir) for s in penguins.SPLITS}
  assert {s: v.images.shape for s, v in splits.items()} == {
      'train': (203, 12), 'validation': (65, 12), 'test': (65, 12)}
  assert datasets.get('penguins').image_shape == (12,)
  for split in splits.values():
    x = split.images
    for start, width in ((0, 3), (7, 2), (9, 3)):  # island, sex, year
      block = x[:, start:start + width]
      assert set(np.unique(block).tolist()) == {0.0, 1.0}
      assert (block.sum(axis=1) == 1).all()
  train = splits['train'].images[:, 3:7].astype(np.float64)
  np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-6)
  np.testing.assert_allclose(train.std(axis=0), 1, atol=1e-6)


def test_scaler_uses_training_rows_only(data_dir, rows, tmp_path):
  parts = penguins.split_indices(penguins.labels_of(rows))
  raw = np.array([[float(rows[i][c]) for c in penguins.MEASUREMENTS]
                  for i in parts['train']])
  test_raw = np.array([[float(rows[i][c]) for c in penguins.MEASUREMENTS]
                       for i in parts['test']])
  expected = (test_raw - raw.mean(axis=0)) / raw.std(axis=0)
  test = datasets.load('penguins', 'test', data_dir)
  np.testing.assert_allclose(test.images[:, 3:7], expected, rtol=1e-6, atol=1e-6)
  # Changing every test and validation measurement changes no training feature.
  held_out = set(parts['test'].tolist()) | set(parts['validation'].tolist())
  changed = [dict(r, body_mass_g=str(10 * float(r['body_mass_g'])))
             if i in held_out else r for i, r in enumerate(rows)]
  helpers.write_penguins(tmp_path, changed)
  before = datasets.load('penguins', 'train', data_dir).images
  after = datasets.load('penguins', 'train', str(tmp_path)).images
  assert np.array_equal(before, after)
  assert not np.array_equal(test.images,
                            datasets.load('penguins', 'test', str(tmp_path)).images)


def _edit(line: int, column: str, value: str):
  def edit(lines):
    header = lines[0].split(',')
    fields = lines[line - 1].split(',')
    fields[header.index(column)] = value
    lines[line - 1] = ','.join(fields)
  return edit


BAD = {
    'bad-number': (_edit(3, 'bill_depth_mm', 'deep'),
                   r'line 3, column bill_depth_mm: \'deep\' is not a number or NA'),
    'unknown-island': (_edit(7, 'island', 'Atlantis'),
                       r"line 7, column island: unknown value 'Atlantis'"),
    'unknown-species': (_edit(2, 'species', 'Emperor'),
                        r"line 2, column species: unknown value 'Emperor'"),
    'short-row': (lambda lines: lines.__setitem__(5, 'Adelie,Torgersen,39.1'),
                  'line 6 has 3 fields instead of 8'),
    'long-row': (lambda lines: lines.__setitem__(9, lines[9] + ',extra'),
                 'line 10 has 9 fields instead of 8'),
    'missing-column': (lambda lines: lines.__setitem__(
        0, lines[0].replace('flipper_length_mm', 'flipper')),
                       "has no column 'flipper_length_mm'"),
}


@pytest.mark.parametrize('name', sorted(BAD))
def test_malformed_csv_names_the_line_and_column(data_dir, tmp_path, name):
  edit, pattern = BAD[name]
  lines = helpers.penguins_csv(data_dir).read_text().splitlines()
  edit(lines)
  (tmp_path / 'penguins').mkdir()
  (tmp_path / 'penguins' / 'penguins.csv').write_text('\n'.join(lines) + '\n')
  with pytest.raises(TfpruneError, match=pattern) as info:
    datasets.load('penguins', 'train', str(tmp_path))
  assert '\n' not in str(info.value)


def test_missing_csv_names_the_file_and_the_fix(tmp_path):
  (tmp_path / 'mnist').mkdir()
  with pytest.raises(TfpruneError, match=r'missing penguins file .*penguins\.csv'):
    datasets.load('penguins', 'test', str(tmp_path))


def test_penguins_has_a_validation_split_and_mnist_still_has_none(data_dir):
  with pytest.raises(TfpruneError, match="unknown split 'validation'"):
    datasets.load('mnist', 'validation', data_dir)
  assert len(datasets.load('penguins', 'validation', data_dir, limit=7)) == 7



def test_tfds_raw_table_is_the_fallback_without_a_data_folder(monkeypatch):
  tfds = pytest.importorskip('tensorflow_datasets')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)
  species = ['Adelie Penguin (Pygoscelis adeliae)',
             'Chinstrap penguin (Pygoscelis antarctica)',
             'Gentoo penguin (Pygoscelis papua)']
  n = 3 * 6 + 1
  rng = np.random.default_rng(0)
  length = rng.uniform(35, 55, n).astype(np.float32)
  length[-1] = np.nan  # dropped, like NA
  table = {
      'Species': [species[i % 3] for i in range(n)],
      'Island': [penguins.ISLANDS[i % 3] for i in range(n)],
      'Culmen Length (mm)': length,
      'Culmen Depth (mm)': rng.uniform(13, 21, n).astype(np.float32),
      'Flipper Length (mm)': rng.uniform(170, 230, n).astype(np.float32),
      'Body Mass (g)': rng.uniform(2700, 6300, n).astype(np.float32),
      'Sex': ['MALE' if i % 2 else 'FEMALE' for i in range(n)],
      'Date Egg': [f'11/{i % 28 + 1}/0{7 + i % 3}' for i in range(n)],
  }
  monkeypatch.setattr(datasets, 'tfds_reachable', lambda: None)
  monkeypatch.setattr(tfds, 'load', lambda name, split: (
      tf.data.Dataset.from_tensor_slices(table)
      if (name, split) == ('penguins/raw', 'train') else None))
  train = datasets.load('penguins', 'train')
  test = datasets.load('penguins', 'test')
  # 6 rows per species: floor(1.2) = 1 to test and to validation, 4 to train.
  assert train.images.shape == (12, 12) and test.images.shape == (3, 12)
  assert sorted(test.labels.tolist()) == [0, 1, 2]
  assert (train.images[:, 9:12].sum(axis=1) == 1).all()  # years 2007-2009
