"""Lottery tickets, dynamic pruning and their two baselines, over shared masks.

Every procedure trains a Keras model with `fit` while `masking.KeepMasked`
keeps pruned weights at zero after every batch, and prunes each layer's
kernel (every Dense and Conv2D layer, biases never) by weight magnitude with
the registry's `weight` criterion (`prune_rounds`):

  unpruned        train once.
  prune_after     train once, then prune a fraction p of every kernel.
  lottery_ticket  train; then R rounds of: prune p of the surviving weights of
                  every kernel, rewind every weight to its value at
                  initialisation (or, late rewinding, after `rewind_epoch`
                  epochs), keep the mask, retrain for the remaining epochs.
  dynamic         prune p of the surviving weights at the start of given
                  epochs and keep training from the current values (never
                  rewind).
  random_reinit   the control of Frankle & Carbin: each round's lottery mask
                  on a fresh random initialisation, trained as long.

A round prunes floor(p * m) of the m surviving weights of a kernel, so after R
rounds a kernel of n weights keeps `prune_rounds.remaining_counts(n, p, R)[-1]`,
the exact integer form of n * (1 - p)^R. A fresh Adam optimizer starts every
training run. Seeds make each procedure reproducible: the same seed gives the same
initial weights to every procedure, so the trials of one seed are paired.
"""

import dataclasses
import fractions
import time
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from tfprune.data import datasets
from tfprune.errors import TfpruneError
from tfprune.keras_compat import keras
from tfprune.training import classifier
from tfprune.training import masking
from tfprune.training import prune_rounds
from tfprune.training import schedules

Weights = list[np.ndarray]
REINIT_SEED_OFFSET = 1_000_003  # random_reinit draws from seed + this


@dataclasses.dataclass(frozen=True)
class Splits:
  """The train, validation and test data of one problem."""
  train: datasets.Split
  validation: datasets.Split
  test: datasets.Split


@dataclasses.dataclass(frozen=True)
class Schedule:
  """How each training run goes: epochs, batch size, constant Adam rate."""
  epochs: int
  batch_size: int
  learning_rate: float


@dataclasses.dataclass(frozen=True)
class Round:
  """A model measured at the end of a round (0: the dense training).

  Attributes:
    round: 0 for the first training, r for the r-th pruning round.
    remaining: fraction of the kernels' weights kept (1 before pruning).
    val_loss, val_accuracy, test_loss, test_accuracy: measured on the splits.
  """
  round: int
  remaining: float
  val_loss: float
  val_accuracy: float
  test_loss: float
  test_accuracy: float


@dataclasses.dataclass(frozen=True)
class Trial:
  """What one procedure produced for one seed.

  Attributes:
    procedure: the procedure's name.
    seed: its seed.
    history: one dict per epoch of every training run (keys `HISTORY_KEYS`).
    rounds: the model measured after each round; the last is the result.
    seconds: wall time of all the training the procedure needed.
    masks: for lottery tickets, the kernel masks of rounds 1, 2, ... (not
      written out; `random_reinit` reuses them).
  """
  procedure: str
  seed: int
  history: tuple[dict, ...]
  rounds: tuple[Round, ...]
  seconds: float
  masks: tuple[tuple[np.ndarray, ...], ...] = ()

  @property
  def result(self) -> Round:
    return self.rounds[-1]


HISTORY_KEYS = ('round', 'epoch', 'train_loss', 'train_accuracy', 'val_loss',
                'val_accuracy', 'sparsity')


@dataclasses.dataclass
class Dense:
  """A trained dense model and the weights a lottery ticket rewinds to.

  Attributes:
    model: the compiled model, holding the trained weights.
    trained: its weights after training.
    rewind: its weights after `rewind_epoch` epochs (0: initialisation).
    rewind_epoch: the epoch of `rewind`.
    history: per-epoch rows of the training (round 0).
    seconds: training wall time.
  """
  model: keras.Model
  trained: Weights
  rewind: Weights
  rewind_epoch: int
  history: list[dict]
  seconds: float


class _Recorder(keras.callbacks.Callback):
  """Appends one history row per epoch: Keras' running train metrics, and the
  validation metrics and mask sparsity at the end of the epoch."""

  def __init__(self, rows: list[dict], round_index: int, masker: masking.KeepMasked,
               validation: datasets.Split, measure, first_epoch: int = 0):
    super().__init__()
    self.rows, self.round, self.masker = rows, round_index, masker
    self.validation, self.measure, self.first_epoch = validation, measure, first_epoch

  def on_epoch_end(self, epoch, logs=None):
    val_loss, val_accuracy = self.measure(self.validation)
    self.rows.append({
        'round': self.round, 'epoch': self.first_epoch + epoch + 1,
        'train_loss': float(logs['loss']),
        'train_accuracy': float(logs['accuracy']),
        'val_loss': val_loss, 'val_accuracy': val_accuracy,
        'sparsity': prune_rounds.sparsity([m for _, m in self.masker.pairs])})


class _Snapshot(keras.callbacks.Callback):
  """Keeps the model's weights after `epoch` epochs (0: before training)."""

  def __init__(self, epoch: int):
    super().__init__()
    self.epoch, self.weights = epoch, None

  def on_train_begin(self, logs=None):
    if self.epoch == 0:
      self.weights = self.model.get_weights()

  def on_epoch_end(self, epoch, logs=None):
    if epoch + 1 == self.epoch:
      self.weights = self.model.get_weights()


class _PruneAt(keras.callbacks.Callback):
  """Prunes p of the surviving weights at the start of the given epochs."""

  def __init__(self, masker: masking.KeepMasked, p: float, epochs: Sequence[int]):
    super().__init__()
    self.masker, self.p, self.epochs = masker, p, set(epochs)

  def on_epoch_begin(self, epoch, logs=None):
    if epoch in self.epochs:
      self.masker.set_masks([(v, prune_rounds.prune_remaining(v.numpy(), self.p, m))
                             for v, m in self.masker.pairs])


def full_masks(model: keras.Model) -> list[tuple[tf.Variable, np.ndarray]]:
  """(kernel, all-True mask) for every kernel of the model."""
  return [(v, np.ones(v.shape, dtype=bool)) for v in classifier.kernels(model)]


def _fit(model: keras.Model, splits: Splits, schedule: Schedule, epochs: int,
         callbacks: Sequence[keras.callbacks.Callback], masker: masking.KeepMasked,
         rows: list[dict], round_index: int, first_epoch: int = 0) -> float:
  """Trains `epochs` epochs with the masks of `masker`; returns wall seconds."""
  recorder = _Recorder(rows, round_index, masker, splits.validation,
                       classifier.evaluator(model), first_epoch)
  start = time.perf_counter()
  model.fit(splits.train.images, splits.train.labels,
            batch_size=schedule.batch_size, epochs=epochs, verbose=0,
            callbacks=[masker, *callbacks, recorder])
  return time.perf_counter() - start


def _measure(model: keras.Model, splits: Splits, round_index: int,
             masks: Sequence[np.ndarray]) -> Round:
  measure = classifier.evaluator(model)
  return Round(round_index, prune_rounds.kept_fraction(masks),
               *measure(splits.validation),
               *measure(splits.test))


def train_dense(build: Callable[[], keras.Model], splits: Splits,
                schedule: Schedule, seed: int, rewind_epoch: int = 0,
                callbacks: Sequence[keras.callbacks.Callback] = ()) -> Dense:
  """Seeds, builds and trains the unpruned model, keeping the rewind weights.

  Args:
    build: makes the uncompiled model.
    splits: the data.
    schedule: epochs, batch size, learning rate.
    seed: seeds Python, NumPy and TensorFlow before building.
    rewind_epoch: keep the weights after this many epochs, in
      [0, schedule.epochs); 0 keeps the initial weights.
    callbacks: extra Keras callbacks (run after the masks are applied).
  """
  if not 0 <= rewind_epoch < schedule.epochs:
    raise TfpruneError(f'rewind_epoch must be in [0, {schedule.epochs}) (the '
                       f'epochs), got {rewind_epoch}')
  keras.utils.set_random_seed(seed)
  model = classifier.compile_model(build(), schedule.learning_rate)
  snapshot = _Snapshot(rewind_epoch)
  rows: list[dict] = []
  seconds = _fit(model, splits, schedule, schedule.epochs,
                 [snapshot, *callbacks], masking.KeepMasked(full_masks(model)),
                 rows, 0)
  return Dense(model, model.get_weights(), snapshot.weights, rewind_epoch,
               rows, seconds)


def unpruned(dense: Dense, splits: Splits, seed: int) -> Trial:
  """The trained dense model as a trial."""
  dense.model.set_weights(dense.trained)
  masks = [m for _, m in full_masks(dense.model)]
  return Trial('unpruned', seed, tuple(dense.history),
               (_measure(dense.model, splits, 0, masks),), dense.seconds)


def prune_after(dense: Dense, splits: Splits, seed: int, p: float) -> Trial:
  """The trained dense model with p of every kernel pruned, not retrained."""
  dense.model.set_weights(dense.trained)
  pairs = [(v, prune_rounds.prune_remaining(v.numpy(), p))
           for v in classifier.kernels(dense.model)]
  masking.apply_masks(pairs)
  measured = _measure(dense.model, splits, 1, [m for _, m in pairs])
  return Trial('prune_after', seed, tuple(dense.history), (measured,),
               dense.seconds)


def lottery_ticket(dense: Dense, splits: Splits, schedule: Schedule, seed: int,
                   p: float, rounds: int,
                   callbacks: Sequence[keras.callbacks.Callback] = ()) -> Trial:
  """Iterative lottery-ticket pruning from a trained dense model.

  Each round prunes p of each kernel's surviving weights (by their trained
  magnitude), sets every weight (kernels, biases, all variables) back to the
  rewind weights of `dense`, keeps the mask, and retrains for
  `schedule.epochs - dense.rewind_epoch` epochs with a fresh Adam.

  Args:
    dense: the trained dense model (`train_dense`); its model is reused.
    splits: the data.
    schedule: epochs, batch size, learning rate.
    seed: recorded in the trial (the seed of `dense`).
    p: fraction of the surviving weights pruned per round, in [0, 1).
    rounds: number of rounds R >= 1.
    callbacks: extra Keras callbacks for each retraining.

  Returns:
    The trial; its rounds are the dense model (0) and each retrained ticket.
  """
  schedules.check_sparsity(p, 'prune_fraction')
  if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
    raise TfpruneError(f'rounds must be an integer >= 1, got {rounds!r}')
  model = dense.model
  model.set_weights(dense.trained)
  pairs = full_masks(model)
  history = list(dense.history)
  measured = [_measure(model, splits, 0, [m for _, m in pairs])]
  seconds = dense.seconds
  masks = []
  for r in range(1, rounds + 1):
    pairs = [(v, prune_rounds.prune_remaining(v.numpy(), p, m)) for v, m in pairs]
    masks.append(tuple(m for _, m in pairs))
    model.set_weights(dense.rewind)
    classifier.compile_model(model, schedule.learning_rate)
    seconds += _fit(model, splits, schedule, schedule.epochs - dense.rewind_epoch,
                    callbacks, masking.KeepMasked(pairs), history, r,
                    first_epoch=dense.rewind_epoch)
    measured.append(_measure(model, splits, r, [m for _, m in pairs]))
  return Trial('lottery', seed, tuple(history), tuple(measured), seconds,
               tuple(masks))


def random_reinit(build: Callable[[], keras.Model], splits: Splits,
                  schedule: Schedule, ticket: Trial, epochs: int,
                  callbacks: Sequence[keras.callbacks.Callback] = ()) -> Trial:
  """Each round's lottery mask on a fresh random initialisation (the control).

  Frankle & Carbin's test of a winning ticket: the same sparse structure,
  randomly reinitialised, should learn worse. Round r builds a new model
  (seeded from the ticket's seed + `REINIT_SEED_OFFSET` once, then drawn in
  sequence), applies the round-r mask of `ticket` and trains `epochs` epochs.

  Args:
    build: makes the uncompiled model.
    splits: the data.
    schedule: batch size and learning rate.
    ticket: a `lottery_ticket` trial (its masks and its dense round 0).
    epochs: epochs per round (the ticket's retraining length).
    callbacks: extra Keras callbacks for each training.

  Returns:
    The trial; round 0 is the ticket's dense model. Its seconds include the
    ticket's, which its masks needed.
  """
  keras.utils.set_random_seed(ticket.seed + REINIT_SEED_OFFSET)
  history: list[dict] = []
  measured = [ticket.rounds[0]]
  seconds = ticket.seconds
  for r, masks in enumerate(ticket.masks, start=1):
    model = classifier.compile_model(build(), schedule.learning_rate)
    pairs = list(zip(classifier.kernels(model), masks))
    seconds += _fit(model, splits, schedule, epochs, callbacks,
                    masking.KeepMasked(pairs), history, r,
                    first_epoch=schedule.epochs - epochs)
    measured.append(_measure(model, splits, r, masks))
  return Trial('random_reinit', ticket.seed, tuple(history), tuple(measured),
               seconds)


def dynamic(build: Callable[[], keras.Model], splits: Splits, schedule: Schedule,
            seed: int, p: float, points: Sequence[fractions.Fraction],
            callbacks: Sequence[keras.callbacks.Callback] = ()) -> Trial:
  """Dynamic pruning: one training run that prunes p of the surviving weights
  at the start of epoch floor(f * epochs) for each point f, never rewinding.

  Args:
    build: makes the uncompiled model.
    splits: the data.
    schedule: epochs, batch size, learning rate.
    seed: seeds Python, NumPy and TensorFlow before building.
    p: fraction of the surviving weights pruned at each point, in [0, 1).
    points: fractions of training in (0, 1), e.g. (1/3, 2/3).
    callbacks: extra Keras callbacks (run after each pruning).
  """
  schedules.check_sparsity(p, 'dynamic_fraction')
  epochs = prune_rounds.prune_epochs(points, schedule.epochs)
  keras.utils.set_random_seed(seed)
  model = classifier.compile_model(build(), schedule.learning_rate)
  masker = masking.KeepMasked(full_masks(model))
  rows: list[dict] = []
  seconds = _fit(model, splits, schedule, schedule.epochs,
                 [_PruneAt(masker, p, epochs), *callbacks], masker, rows, 0)
  measured = _measure(model, splits, len(epochs), [m for _, m in masker.pairs])
  return Trial('dynamic', seed, tuple(rows), (measured,), seconds)
