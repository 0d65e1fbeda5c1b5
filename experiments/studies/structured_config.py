"""The structured ResNet-18 study's configuration, its flag parsers and the validation split.

`StructuredConfig` is validated on construction and saved as config.json
beside the results. The fine-tuning learning rate is chosen on a validation
split: the last `validation_size` images of the training split (after
`train_limit`), which no fine-tuning ever sees (`split_validation`).
"""

import dataclasses
import math
from typing import Sequence

import numpy as np

from tfprune.criteria import importances
from tfprune.criteria import pruning
from tfprune.data import datasets
from tfprune.errors import TfpruneError
from tfprune.keras_io import models

DEFAULT_RATES = (1e-3, 2e-3, 4e-3)
# The study's former names of the registry's channel criteria, as configs and
# commands written before the one registry give them: read as the new names.
RENAMED_IMPORTANCES = {'l2': 'unit', 'l1': 'unit_l1', 'bn_gamma': 'unit_bn'}


def importance_choices() -> list[str]:
  """`--importance` values: the registry's channel criteria, then the former names."""
  return [*importances.names(removes_channels=True), *RENAMED_IMPORTANCES]


@dataclasses.dataclass(frozen=True)
class StructuredConfig:
  """Settings of the structured ResNet-18 study; saved as config.json.

  Attributes:
    out_dir: folder for results.csv, timing.json, config.json and models/.
    dataset: a key of `datasets.DATASETS` holding images.
    data_dir: local IDX data folder (None: `$TFPRUNE_DATA_DIR`, then tfds).
    width: ResNet-18 width multiplier.
    k: percentage of every channel group removed, in [0, 100].
    importance: channel score, a channel criterion of the registry
      (`importances.REGISTRY`); a former name ('l2', 'l1', 'bn_gamma') is read
      as its new one (`RENAMED_IMPORTANCES`).
    train_limit: first N training examples (None: all); the last
      `validation_size` of them are the validation split.
    test_limit: first N test examples (None: all).
    validation_size: the last N training examples, held out of fine-tuning
      (and of the dense training, when the study trains it) to choose the
      fine-tuning rate on.
    epochs: dense training epochs (Adam, cosine-decayed to 0).
    learning_rate: initial Adam rate of the dense training.
    finetune_epochs: fine-tuning epochs of the compacted model.
    finetune_learning_rates: candidate initial Adam rates of fine-tuning
      (cosine); the compacted model is fine-tuned once from each (same seed)
      and the one of best validation accuracy is kept.
    batch_size: examples per training step.
    seed: seeds initialisation and shuffling.
    dense_model: a trained `.keras` to start from instead of training (then
      `epochs` and `learning_rate` are unused).
    batch_sizes: batch sizes the two models are timed at.
    timing_runs: timed calls per model and batch size, at least.
    timing_rounds: alternating blocks per model and batch size.
    timing_min_seconds: each model runs at least this long per batch size.
    allow_other_data: start from a `dense_model` whose tag records another
      dataset, on purpose (`data.provenance`).
  """
  out_dir: str
  dataset: str = 'fashion_mnist'
  data_dir: str | None = None
  width: float = 0.25
  k: float = 50.0
  importance: str = 'unit'
  train_limit: int | None = None
  test_limit: int | None = None
  validation_size: int = 5000
  epochs: int = 4
  learning_rate: float = 1e-3
  finetune_epochs: int = 2
  finetune_learning_rates: tuple[float, ...] = DEFAULT_RATES
  batch_size: int = 128
  seed: int = 0
  dense_model: str | None = None
  batch_sizes: tuple[int, ...] = (1, 256)
  timing_runs: int = 200
  timing_rounds: int = 10
  timing_min_seconds: float = 1.0
  allow_other_data: bool = False

  def __post_init__(self):
    models.check_fits('resnet18', datasets.get(self.dataset).image_shape,
                      self.dataset)
    pruning.check_level(self.k, hint=': pass e.g. --k=50')
    object.__setattr__(self, 'importance', RENAMED_IMPORTANCES.get(
        self.importance, self.importance))
    if self.importance not in importances.names(removes_channels=True):
      raise TfpruneError(f'importance must be one of '
                         f'{", ".join(importance_choices())}, got '
                         f'{self.importance!r}')
    if not self.width > 0:
      raise TfpruneError(f'width must be positive, got {self.width}')
    for name in ('epochs', 'finetune_epochs'):
      if getattr(self, name) < 0:
        raise TfpruneError(f'{name} must be >= 0, got {getattr(self, name)}')
    for name in ('batch_size', 'timing_runs', 'timing_rounds', 'validation_size'):
      if getattr(self, name) < 1:
        raise TfpruneError(f'{name} must be at least 1, got {getattr(self, name)}')
    if self.train_limit is not None and self.train_limit <= self.validation_size:
      raise TfpruneError(
          f'train_limit {self.train_limit} leaves no image to fine-tune on '
          f'besides the {self.validation_size} validation images: raise '
          '--train_limit or lower --validation_size')
    rates = tuple(self.finetune_learning_rates)
    object.__setattr__(self, 'finetune_learning_rates', rates)
    if not rates:
      raise TfpruneError('no fine-tuning learning rate given: pass e.g. '
                         '--finetune_learning_rates=1e-3,2e-3,4e-3')
    if not all(math.isfinite(r) and r > 0 for r in (self.learning_rate, *rates)):
      raise TfpruneError('learning rates must be positive, got '
                         f'{self.learning_rate} and '
                         f'{",".join(f"{r:g}" for r in rates)}')
    repeated = sorted({r for r in rates if rates.count(r) > 1})
    if repeated:
      raise TfpruneError(f'finetune_learning_rates repeats {repeated[0]:g}: '
                         'give each rate once')
    if not self.batch_sizes or min(self.batch_sizes) < 1:
      raise TfpruneError(f'batch_sizes must be positive, got {self.batch_sizes}')
    if self.timing_min_seconds < 0:
      raise TfpruneError(
          f'timing_min_seconds must be >= 0, got {self.timing_min_seconds}')


def split_validation(train: datasets.Split, size: int
                     ) -> tuple[datasets.Split, datasets.Split]:
  """(fine-tuning part, validation part): the last `size` examples are validation.

  Raises:
    TfpruneError: `size` leaves no example to fine-tune on.
  """
  if not 0 < size < len(train):
    raise TfpruneError(
        f'validation_size {size} leaves no image to fine-tune on of the '
        f'{len(train)} training images: lower --validation_size')
  cut = len(train) - size
  return (datasets.Split(train.images[:cut], train.labels[:cut]),
          datasets.Split(train.images[cut:], train.labels[cut:]))


def choose(validation_accuracies: Sequence[float]) -> int:
  """Index of the best validation accuracy (the first of equal ones)."""
  return int(np.argmax(np.asarray(validation_accuracies)))


def candidate_name(rate: float) -> str:
  """The results row and model file stem of the candidate fine-tuned from `rate`."""
  return f'finetuned-lr{rate:g}'


def _parse(texts, what: str, kind, example: str) -> list:
  try:
    return [kind(t) for t in texts]
  except ValueError:
    raise TfpruneError(f'{what} must be {"whole " if kind is int else ""}'
                       f'numbers, got {",".join(texts)}: give {example}') from None


def parse_batch_sizes(texts) -> list[int]:
  """Parses ['1', '256'] into batch sizes.

  Raises:
    TfpruneError: a text is not a whole number.
  """
  return _parse(texts, 'batch sizes', int, '--batch_sizes=1,256')


def parse_rates(texts) -> list[float]:
  """Parses ['1e-3', '2e-3'] into learning rates.

  Raises:
    TfpruneError: a text is not a number.
  """
  return _parse(texts, 'learning rates', float,
                '--finetune_learning_rates=1e-3,2e-3,4e-3')
