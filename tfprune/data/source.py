"""The data a tool was given, loaded and checked once: `load`, then `fits`.

Every tool that scores or calibrates a network gets its data here: the
registry dataset's test split, or a user's `.npz` (both splits), each array
checked at load (`checks`), with the provenance entry that files made from
it record and that files read are checked against (`provenance`).
`fits` then holds the test and the training split alike to the model's input
layout and classes; `fits_model` does for a model with any number of inputs
and outputs (a user's `.npz` of `x_test_<input>`, `y_test_<output>` arrays);
`examples` takes the same examples of every array of such a split.
"""

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from tfprune.data import checks
from tfprune.data import datasets
from tfprune.data import provenance
from tfprune.data import user_data


@dataclasses.dataclass(frozen=True)
class Given:
  """The data of one run.

  Attributes:
    test: the test split.
    train: the `.npz`'s training split, or None (a registry dataset's is
      loaded only by tools that need it, `train_split`).
    dataset: the registry dataset (meaningful when `data` is None).
    data: the user's `.npz` path, or None.
    data_dir: the local data folder for registry data.
    sha256: the digest of the `.npz` arrays, or None.
  """
  test: datasets.Split
  train: datasets.Split | None
  dataset: str
  data: str | None
  data_dir: str | None
  sha256: str | None

  @property
  def name(self) -> str:
    """The `.npz` path or the dataset name, for messages."""
    return self.data or self.dataset

  def provenance(self, input_shape: Sequence[int] | None = None
                 ) -> dict[str, Any]:
    """The entry files made from this data record (`provenance.record`).

    `input_shape` defaults to the shape of one test example; the value range
    is the test split's.
    """
    images = self.test.images
    shape = input_shape if input_shape is not None else (
        {n: a.shape[1:] for n, a in images.items()} if isinstance(images, dict)
        else images.shape[1:])
    return provenance.record(self.dataset, self.data, self.sha256, shape,
                             images)

  def check_made_on(self, recorded: dict[str, Any] | None, source: str,
                    allow_other_data: bool = False) -> bool:
    """`provenance.check` of a network's recorded entry against this data."""
    return provenance.check(recorded, self.provenance(), source,
                            allow_other_data)

  def record(self, other_data: bool = False) -> dict[str, Any]:
    """What a run's config file records of the data beyond its config.

    A user's `.npz` by the sha256 of its arrays; a registry dataset by its
    name, already in the config (nothing added, so the configs of registry
    runs keep their bytes). Data other than a network's files record, let
    through by `allow_other_data`, is recorded as such.
    """
    record: dict[str, Any] = {}
    if self.data is not None:
      record['data'] = self.provenance()
    if other_data:
      record['other_data_allowed'] = True
    return record

  def train_split(self, limit: int | None = None) -> datasets.Split | None:
    """The training split: the `.npz`'s (None if it has none) or the dataset's."""
    if self.data is not None:
      return self.train
    return datasets.load(self.dataset, 'train', self.data_dir, limit)


def load(dataset: str = 'mnist', data_dir: str | None = None,
         data: str | None = None, test_limit: int | None = None) -> Given:
  """Loads and checks the test data (and an `.npz`'s training split).

  Raises:
    TfpruneError: the data is missing, unreadable or fails `checks`.
  """
  if data is not None:
    read = user_data.read(data)
    return Given(read.test, read.train, dataset, str(data), data_dir, read.sha256)
  return Given(datasets.load(dataset, 'test', data_dir, test_limit), None,
               dataset, None, data_dir, None)


def examples(value, index):
  """The examples `index` of an array, or of each array of a dict by name
  (several inputs or outputs: the same examples of every one)."""
  if isinstance(value, Mapping):
    return {name: np.asarray(array)[index] for name, array in value.items()}
  return np.asarray(value)[index]


def fits_model(split: datasets.Split | None,
               input_shapes: Mapping[str, Sequence[int]],
               classes: Mapping[str, int], source: str,
               which: str = 'test') -> None:
  """`checks.fits_model` of one split (nothing if None): its arrays, one or
  one per name, against the model's inputs (by name) and outputs (classes
  by name)."""
  if split is not None:
    checks.fits_model(split.images, split.labels, input_shapes, classes,
                      which, source)


def fits(split: datasets.Split | None, input_shape: Sequence[int],
         num_outputs: int, source: str, which: str = 'test') -> None:
  """`checks.fits` of one split (nothing if None), arrays named by `which`."""
  if split is not None:
    checks.fits(split.images, split.labels, input_shape, num_outputs,
                (f'x_{which}', f'y_{which}'), source)
