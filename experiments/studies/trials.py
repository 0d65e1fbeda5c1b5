"""The four-trial comparison (unpruned, prune-after, lottery, dynamic) over seeds.

`run(config)` trains every requested procedure of `lottery` for every seed
and writes to `config.out_dir`, all at once when everything has finished (a
failure leaves no half-written folder):

  curves.csv          one row per trial, seed, round and epoch: train and
                      validation loss and accuracy, sparsity of the kernels
                      (the shared dense run appears once, as unpruned);
  rounds.csv          one row per trial, seed and round: weights remaining,
                      validation and test loss and accuracy;
  summary.csv / .md   per trial: test loss and accuracy mean ± std over seeds,
                      sparsity, and exact permutation-test p-values against
                      the unpruned trial (random_reinit: against lottery);
                      the .md table as the script prints it, without the
                      training seconds (they are in timing.json);
  timing.json         the whole run's wall seconds, training seconds per
                      trial and seed, their mean and total per trial, and
                      the machine (kept out of the CSVs and the config, so
                      identical runs write identical CSVs and config);
  lottery_config.json the config;
  curves.png          the training curves of the trials (`trial_plots`);
  ticket_curve.png    with rounds > 1: accuracy vs weights remaining.

unpruned, prune_after and lottery of one seed share one dense training run
(the reference reused it too); their seconds each include it.
"""

import csv
import dataclasses
import fractions
import io
import json
import math
import pathlib
import time
from typing import Callable, Sequence

import numpy as np

from tfprune import __version__
from tfprune import atomic
from tfprune import registry
from tfprune.data import datasets
from tfprune.errors import TfpruneError
from tfprune.keras_io import models
from tfprune.reports import trial_plots
from experiments.studies import timing
from experiments.studies import trial_statistics
from tfprune.training import lottery
from tfprune.training import prune_rounds
from tfprune.training import schedules

PROCEDURES = ('unpruned', 'prune_after', 'lottery', 'dynamic')
CONTROLS = ('random_reinit',)  # optional, needs 'lottery'
_NEEDS_DENSE = ('unpruned', 'prune_after', 'lottery')
CURVES_NAME = 'curves.csv'
ROUNDS_NAME = 'rounds.csv'
SUMMARY_NAME = 'summary.csv'
SUMMARY_MD_NAME = 'summary.md'
CONFIG_NAME = 'lottery_config.json'
CURVE_COLUMNS = ('procedure', 'seed') + lottery.HISTORY_KEYS
ROUND_COLUMNS = ('procedure', 'seed', 'round', 'remaining', 'val_loss',
                 'val_accuracy', 'test_loss', 'test_accuracy')
SUMMARY_COLUMNS = ('procedure', 'seeds', 'test_loss_mean', 'test_loss_std',
                   'test_accuracy_mean', 'test_accuracy_std', 'sparsity',
                   'compared_with', 'p_loss', 'p_accuracy')


@dataclasses.dataclass(frozen=True)
class LotteryConfig:
  """A four-trial comparison; saved as `lottery_config.json` beside its results.

  Fractions are fractions of 1, not percentages (unlike the `k` of the
  sweep): prune_fraction 0.3 prunes 30%.

  Attributes:
    out_dir: the folder to write (refused if it exists and is not empty,
      unless overwrite).
    dataset: a key of `datasets.DATASETS`.
    model: a key of `models.MODELS`.
    procedures: some of `PROCEDURES`, plus optionally `CONTROLS`
      ('random_reinit' needs 'lottery').
    prune_fraction: p of prune_after, and of each lottery round, in [0, 1).
    rounds: lottery rounds R >= 1 (the reference: 1).
    rewind_epoch: lottery tickets rewind to the weights after this many
      epochs of the dense training (0: initialisation; > 0: late rewinding).
    dynamic_fraction: p pruned at each dynamic prune point, in [0, 1).
    prune_points: fractions of training in (0, 1) where dynamic pruning
      prunes, as exact texts such as '1/3' (epoch floor(f * epochs)).
    epochs: epochs of every training run.
    batch_size: examples per step.
    learning_rate: constant Adam learning rate.
    seeds: one trial of every procedure per seed.
    data_dir: local data folder (None: `$TFPRUNE_DATA_DIR`, then tfds).
    train_limit: train on the first N training examples only (None: all).
    validation_size: for datasets without a validation split, the last N
      training examples are held out as validation.
    overwrite: replace an existing out_dir once the new results are complete.
  """
  out_dir: str
  dataset: str = 'penguins'
  model: str = 'penguin_mlp_tanh'
  procedures: tuple[str, ...] = PROCEDURES
  prune_fraction: float = 0.3
  rounds: int = 1
  rewind_epoch: int = 0
  dynamic_fraction: float = 0.17
  prune_points: tuple[str, ...] = ('1/3', '2/3')
  epochs: int = 4000
  batch_size: int = 50
  learning_rate: float = 1e-4
  seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
  data_dir: str | None = None
  train_limit: int | None = None
  validation_size: int = 5000
  overwrite: bool = False

  def __post_init__(self):
    datasets.get(self.dataset)
    models.get(self.model)
    models.check_fits(self.model, datasets.get(self.dataset).image_shape, self.dataset)
    object.__setattr__(self, 'procedures', tuple(self.procedures))
    object.__setattr__(self, 'seeds', tuple(self.seeds))
    object.__setattr__(self, 'prune_points', tuple(self.prune_points))
    if not self.procedures:
      raise TfpruneError(f'no procedure given: pass some of {",".join(PROCEDURES)}')
    for name in self.procedures:
      registry.check_choice(name, PROCEDURES + CONTROLS, 'procedure')
    if 'random_reinit' in self.procedures and 'lottery' not in self.procedures:
      raise TfpruneError('random_reinit reuses the lottery masks: add lottery '
                         'to the procedures')
    schedules.check_sparsity(self.prune_fraction, 'prune_fraction')
    schedules.check_sparsity(self.dynamic_fraction, 'dynamic_fraction')
    for name in ('rounds', 'epochs', 'batch_size', 'validation_size'):
      if getattr(self, name) < 1:
        raise TfpruneError(f'{name} must be at least 1, got {getattr(self, name)}')
    if not 0 <= self.rewind_epoch < self.epochs:
      raise TfpruneError(f'rewind_epoch must be in [0, epochs={self.epochs}), '
                         f'got {self.rewind_epoch}')
    if not self.learning_rate > 0:
      raise TfpruneError(f'learning_rate must be positive, got {self.learning_rate}')
    if not self.seeds or len(set(self.seeds)) != len(self.seeds):
      raise TfpruneError(f'seeds must be distinct and not empty, got {self.seeds}')
    if self.train_limit is not None and self.train_limit < 1:
      raise TfpruneError(f'train_limit must be at least 1, got {self.train_limit}')
    if 'dynamic' in self.procedures:
      prune_rounds.prune_epochs(self.points, self.epochs)

  @property
  def points(self) -> list[fractions.Fraction]:
    """The prune points as exact fractions."""
    return parse_points(self.prune_points)


def parse_points(texts: Sequence[str]) -> list[fractions.Fraction]:
  """Parses '1/3', '0.5', ... into fractions, each in (0, 1).

  Raises:
    TfpruneError: a text is not a number or fraction, or is outside (0, 1).
  """
  points = []
  for text in texts:
    try:
      point = fractions.Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError):
      raise TfpruneError(
          f'prune point {text!r} is not a number: give fractions of training '
          'such as 1/3,2/3') from None
    if not 0 < point < 1:
      raise TfpruneError(f'prune point {text} is outside (0, 1): give fractions '
                         'of training such as 1/3,2/3')
    points.append(point)
  return points


def load_splits(config: LotteryConfig) -> lottery.Splits:
  """Train, validation and test data of `config.dataset`.

  Raises:
    TfpruneError: a dataset without a validation split has too few training
      examples to hold out `validation_size`.
  """
  spec = datasets.get(config.dataset)
  test = datasets.load(config.dataset, 'test', config.data_dir)
  if 'validation' in spec.splits:
    train = datasets.load(config.dataset, 'train', config.data_dir,
                          limit=config.train_limit)
    validation = datasets.load(config.dataset, 'validation', config.data_dir)
    return lottery.Splits(train, validation, test)
  full = datasets.load(config.dataset, 'train', config.data_dir)
  if config.validation_size >= len(full):
    raise TfpruneError(
        f'validation_size {config.validation_size} leaves no training example '
        f'of the {len(full)} in {config.dataset}: pass a smaller one')
  cut = len(full) - config.validation_size
  validation = datasets.Split(full.images[cut:], full.labels[cut:])
  keep = cut if config.train_limit is None else min(cut, config.train_limit)
  return lottery.Splits(datasets.Split(full.images[:keep], full.labels[:keep]),
                        validation, test)


def run_seed(config: LotteryConfig, splits: lottery.Splits, seed: int
             ) -> list[lottery.Trial]:
  """The trials of every procedure of `config` for one seed."""
  spec = datasets.get(config.dataset)

  def build():
    return models.get(config.model)(spec.image_shape, spec.num_classes)

  schedule = lottery.Schedule(config.epochs, config.batch_size,
                              config.learning_rate)
  trials = []
  if any(p in config.procedures for p in _NEEDS_DENSE):
    dense = lottery.train_dense(build, splits, schedule, seed, config.rewind_epoch)
    if 'unpruned' in config.procedures:
      trials.append(lottery.unpruned(dense, splits, seed))
    if 'prune_after' in config.procedures:
      trials.append(lottery.prune_after(dense, splits, seed, config.prune_fraction))
    if 'lottery' in config.procedures:
      ticket = lottery.lottery_ticket(dense, splits, schedule, seed,
                                      config.prune_fraction, config.rounds)
      trials.append(dataclasses.replace(ticket, masks=()))
      if 'random_reinit' in config.procedures:
        trials.append(lottery.random_reinit(
            build, splits, schedule, ticket, config.epochs - config.rewind_epoch))
  if 'dynamic' in config.procedures:
    trials.append(lottery.dynamic(build, splits, schedule, seed,
                                  config.dynamic_fraction, config.points))
  return trials


def _csv(columns: Sequence[str], rows: Sequence[dict]) -> str:
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  writer.writerow(columns)
  for row in rows:
    writer.writerow([_cell(row[c]) for c in columns])
  return out.getvalue()


def _cell(value) -> str:
  if isinstance(value, (float, np.floating)):
    return 'nan' if math.isnan(value) else f'{value:.6g}'
  return str(value)


def curve_rows(trials: Sequence[lottery.Trial]) -> list[dict]:
  """The per-epoch rows of every trial, with its procedure and seed.

  The dense training (round 0) that prune_after and lottery share with
  unpruned is written once, under unpruned, when that trial ran.
  """
  with_dense = {t.seed for t in trials if t.procedure == 'unpruned'}
  return [{'procedure': t.procedure, 'seed': t.seed, **row}
          for t in trials for row in t.history
          if not (t.procedure in _NEEDS_DENSE[1:] and row['round'] == 0
                  and t.seed in with_dense)]


def round_rows(trials: Sequence[lottery.Trial]) -> list[dict]:
  """The per-round measurements of every trial, with its procedure and seed."""
  return [{'procedure': t.procedure, 'seed': t.seed, **dataclasses.asdict(r)}
          for t in trials for r in t.rounds]


def run(config: LotteryConfig, command: str | None = None,
        progress: Callable[[str], None] | None = None) -> list[dict]:
  """Runs every trial of `config` and writes the results folder.

  Args:
    config: the comparison.
    command: the command line, recorded in the config JSON.
    progress: called with one line after each seed (None: silent).

  Returns:
    The summary rows.
  """
  atomic.check_replaceable(config.out_dir, config.overwrite)
  splits = load_splits(config)
  start = time.perf_counter()
  trials = []
  for seed in config.seeds:
    seed_trials = run_seed(config, splits, seed)
    trials += seed_trials
    if progress is not None:
      progress(f'seed {seed}: ' + ', '.join(
          f'{t.procedure} loss {t.result.test_loss:.4f} acc '
          f'{100 * t.result.test_accuracy:.2f}%' for t in seed_trials) +
          f' ({time.perf_counter() - start:.0f} s so far)')
  summary = trial_statistics.summarize(trials)
  record = {'config': dataclasses.asdict(config), 'command': command,
            'examples': {'train': len(splits.train),
                         'validation': len(splits.validation),
                         'test': len(splits.test)},
            'tfprune_version': __version__}
  wall_seconds = round(time.perf_counter() - start, 1)
  with atomic.replacing_dir(config.out_dir, config.overwrite) as folder:
    write_results(folder, trials, summary, record, wall_seconds)
  return summary


def write_results(folder: pathlib.Path, trials: Sequence[lottery.Trial],
                  summary: Sequence[dict], record: dict,
                  wall_seconds: float) -> None:
  """Writes the CSVs, the summary, the config JSON and the plots to `folder`.

  `record` goes to the config JSON; `wall_seconds` (the whole comparison's)
  to `timing.json` with the trials' seconds.
  """
  (folder / CURVES_NAME).write_text(_csv(CURVE_COLUMNS, curve_rows(trials)))
  (folder / ROUNDS_NAME).write_text(_csv(ROUND_COLUMNS, round_rows(trials)))
  (folder / SUMMARY_NAME).write_text(_csv(SUMMARY_COLUMNS, summary))
  (folder / SUMMARY_MD_NAME).write_text(
      trial_statistics.format_table(summary, seconds=False) + '\n')
  (folder / CONFIG_NAME).write_text(json.dumps(record, indent=2) + '\n')
  timing.write(folder / 'timing.json', {
      'method': 'training seconds of each trial (shared dense run included)',
      'wall_seconds': wall_seconds,
      'trials': [{'procedure': t.procedure, 'seed': t.seed,
                  'seconds': t.seconds} for t in trials],
      'summary': [{k: r[k] for k in ('procedure', 'seconds_mean',
                                     'seconds_total')} for r in summary]})
  trial_plots.plot_all(folder)
