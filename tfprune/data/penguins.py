"""The Palmer penguins table as a 3-class dataset: clean, split, encode, scale.

Read from `<data folder>/penguins/penguins.csv` (the palmerpenguins package's
simplified table: species, island, bill_length_mm, bill_depth_mm,
flipper_length_mm, body_mass_g, sex, year; `NA` marks a missing value), else
from tensorflow-datasets (`penguins/raw`, mapped to the same columns).

Preprocessing, in this order:
  1. rows with any missing value are dropped (344 rows -> 333 in the package's
     table);
  2. a stratified split, seeded: in each species, a seeded permutation gives
     floor(20%) of its rows to test, floor(20%) to validation and the rest to
     train (333 rows -> 203 / 65 / 65);
  3. 12 features, in the reference's order: island one-hot (3), the four
     measurements standardised with the mean and standard deviation of the
     *training* rows only, sex one-hot (2), year one-hot (3);
  4. labels 0, 1, 2 = Adelie, Chinstrap, Gentoo.
"""

import csv
import math
import pathlib

import numpy as np

from tfprune import registry
from tfprune.errors import TfpruneError

FILE = pathlib.Path('penguins') / 'penguins.csv'
SPECIES = ('Adelie', 'Chinstrap', 'Gentoo')
ISLANDS = ('Biscoe', 'Dream', 'Torgersen')
MEASUREMENTS = ('bill_length_mm', 'bill_depth_mm', 'flipper_length_mm',
                'body_mass_g')
SEXES = ('female', 'male')
YEARS = ('2007', '2008', '2009')
COLUMNS = ('species', 'island') + MEASUREMENTS + ('sex', 'year')
CATEGORIES = {'species': SPECIES, 'island': ISLANDS, 'sex': SEXES,
              'year': YEARS}
MISSING = ('NA', '')
NUM_FEATURES = len(ISLANDS) + len(MEASUREMENTS) + len(SEXES) + len(YEARS)
SPLITS = ('train', 'validation', 'test')
HELD_OUT_PERCENT = {'test': 20, 'validation': 20}
SPLIT_SEED = 0

Row = dict[str, str]


def read_rows(path: str | pathlib.Path) -> list[Row]:
  """Reads the CSV and keeps the rows without a missing value.

  Raises:
    TfpruneError: the file is missing, lacks a column, or a row has the
      wrong number of fields, a non-numeric measurement or an unknown
      category; the message names the line and the column.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise TfpruneError(
        f'missing penguins file {path}: put the palmerpenguins penguins.csv '
        'there (see ../shared/datasets/README.md) or unset --data_dir and '
        'TFPRUNE_DATA_DIR to use tensorflow-datasets')
  with path.open(newline='') as f:
    reader = csv.DictReader(f)
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
      raise TfpruneError(
          f'{path} has no column {missing[0]!r}: expected the header '
          f'{",".join(COLUMNS)}')
    return [row for line, row in enumerate(reader, start=2)
            if _check_row(path, line, row)]


def _check_row(path: pathlib.Path, line: int, row: Row) -> bool:
  """True if the row is complete, False if it has a missing value.

  Raises:
    TfpruneError: the row is malformed (wrong field count, bad value).
  """
  if None in row or any(row[c] is None for c in COLUMNS):
    fields = sum(v is not None for k, v in row.items() if k is not None)
    fields += len(row.get(None, []))
    raise TfpruneError(
        f'{path} line {line} has {fields} fields instead of {len(row) - (None in row)}: '
        'fix or delete that line')
  if any(row[c].strip() in MISSING for c in COLUMNS):
    return False
  for column in MEASUREMENTS:
    try:
      value = float(row[column])
    except ValueError:
      value = math.nan
    if not math.isfinite(value):
      raise TfpruneError(
          f'{path} line {line}, column {column}: {row[column]!r} is not a '
          'number or NA: fix that value')
  for column, allowed in CATEGORIES.items():
    if row[column].strip() not in allowed:
      raise TfpruneError(
          f'{path} line {line}, column {column}: unknown value '
          f'{row[column]!r}, expected one of {", ".join(allowed)} or NA')
  return True


def split_indices(labels: np.ndarray, seed: int = SPLIT_SEED
                  ) -> dict[str, np.ndarray]:
  """Row indices of each split, stratified by label and seeded.

  In each class of n rows, floor(20% of n) go to test, floor(20% of n) to
  validation and the rest to train, by a permutation drawn from `seed`.

  Returns:
    {'train', 'validation', 'test'} -> sorted int64 index arrays.
  """
  rng = np.random.default_rng(seed)
  parts = {name: [] for name in SPLITS}
  for label in np.unique(labels):
    rows = rng.permutation(np.flatnonzero(labels == label))
    start = 0
    for name in ('test', 'validation'):
      count = len(rows) * HELD_OUT_PERCENT[name] // 100
      parts[name].append(rows[start:start + count])
      start += count
    parts['train'].append(rows[start:])
  return {name: np.sort(np.concatenate(chunks)).astype(np.int64)
          for name, chunks in parts.items()}


def encode(rows: list[Row], mean: np.ndarray, std: np.ndarray) -> np.ndarray:
  """The 12 features of each row: island, scaled measurements, sex, year."""
  measured = np.array([[float(r[c]) for c in MEASUREMENTS] for r in rows],
                      dtype=np.float64).reshape(len(rows), len(MEASUREMENTS))
  columns = [_one_hot(rows, 'island'), (measured - mean) / std,
             _one_hot(rows, 'sex'), _one_hot(rows, 'year')]
  return np.concatenate(columns, axis=1).astype(np.float32)


def _one_hot(rows: list[Row], column: str) -> np.ndarray:
  values = CATEGORIES[column]
  index = [values.index(r[column].strip()) for r in rows]
  return np.eye(len(values))[index].reshape(len(rows), len(values))


def scaler(rows: list[Row]) -> tuple[np.ndarray, np.ndarray]:
  """Mean and (population) standard deviation of each measurement over `rows`.

  Raises:
    TfpruneError: a measurement is constant over `rows` (cannot be scaled).
  """
  measured = np.array([[float(r[c]) for c in MEASUREMENTS] for r in rows],
                      dtype=np.float64)
  mean, std = measured.mean(axis=0), measured.std(axis=0)
  if not np.all(std > 0):
    column = MEASUREMENTS[int(np.argmin(std))]
    raise TfpruneError(
        f'column {column} is constant over the training rows and cannot be '
        'standardised: use the full penguins table')
  return mean, std


def labels_of(rows: list[Row]) -> np.ndarray:
  """Species indices (Adelie 0, Chinstrap 1, Gentoo 2) of the rows."""
  return np.array([SPECIES.index(r['species'].strip()) for r in rows],
                  dtype=np.int64)


def prepare(rows: list[Row], split: str, seed: int = SPLIT_SEED
            ) -> tuple[np.ndarray, np.ndarray]:
  """Features and labels of one split of the complete rows.

  Raises:
    TfpruneError: unknown split, or a split has no rows.
  """
  registry.check_choice(split, SPLITS, 'split')
  labels = labels_of(rows)
  parts = split_indices(labels, seed)
  if any(len(p) == 0 for p in parts.values()):
    raise TfpruneError(
        f'only {len(rows)} complete penguin rows: too few for a train, '
        'validation and test split; use the full penguins table')
  mean, std = scaler([rows[i] for i in parts['train']])
  chosen = [rows[i] for i in parts[split]]
  return encode(chosen, mean, std), labels[parts[split]]


def load(split: str, folder: pathlib.Path | None,
         seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
  """Features (n, 12) float32 and labels (n,) int64 of one split.

  Args:
    split: 'train', 'validation' or 'test'.
    folder: data folder holding `penguins/penguins.csv`; None reads
      tensorflow-datasets `penguins/raw` instead.
    seed: seed of the stratified split.
  """
  rows = read_rows(folder / FILE) if folder else _tfds_rows()
  return prepare(rows, split, seed)


def _tfds_rows() -> list[Row]:
  """The tfds `penguins/raw` table as rows of the package's columns.

  Its year is the year of `Date Egg` (as in palmerpenguins); its sex is
  MALE/FEMALE or missing.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tfprune.data import datasets  # pylint: disable=g-import-not-at-top  (datasets imports this module)
  examples = list(tfds.as_numpy(datasets.tfds_load(
      'penguins/raw', 'train', 'without network, pass --data_dir or set '
      f'TFPRUNE_DATA_DIR to a folder holding {FILE}')))
  rows = []
  for ex in examples:
    text = {k: v.decode() if isinstance(v, bytes) else v for k, v in ex.items()}
    numbers = [text['Culmen Length (mm)'], text['Culmen Depth (mm)'],
               text['Flipper Length (mm)'], text['Body Mass (g)']]
    year = str(text['Date Egg']).rsplit('/', 1)[-1]
    rows.append({
        'species': str(text['Species']).split(' ')[0],
        'island': str(text['Island']),
        **{c: 'NA' if np.isnan(v) else repr(float(v))
           for c, v in zip(MEASUREMENTS, numbers)},
        'sex': str(text['Sex']).lower() if text['Sex'] in ('MALE', 'FEMALE')
               else 'NA',
        'year': f'20{year[-2:]}' if year[-2:].isdigit() else 'NA',
    })
  return [r for r in rows
          if not any(r[c] in MISSING for c in COLUMNS)
          and all(r[c] in allowed for c, allowed in CATEGORIES.items())]
