"""`Model.fit` that an interruption does not change: resumed runs reproduce uninterrupted ones.

`fit` checkpoints every finished epoch with `keras.callbacks.BackupAndRestore`
(weights, optimizer slots and step, so the learning-rate schedule too, TF-MOT's
masks and pruning step) and restores it when the same run starts again after
an interruption. Three more things decide what training computes, and a plain
BackupAndRestore gets them wrong after a resume:

- **Data order.** `Model.fit` on arrays draws one permutation per epoch from
  a seeded shuffle op whose position is not checkpointed, so a run resumed at
  epoch e replayed epoch 0's order. Here the batches come from the very
  pipeline `Model.fit` builds for arrays (`TensorLikeDataAdapter` over all the
  run's epochs), with the batches of the finished epochs skipped: epoch e sees
  the e-th permutation whether or not the run was interrupted, and an
  uninterrupted run trains on exactly the batches it always did.
- **Random layers** (Dropout, GaussianNoise, ...). Their legacy stateful ops
  keep their position inside the op. Models built under `generator_rng` draw
  from `tf.random.Generator`s instead, whose states are saved with each epoch's
  checkpoint and restored with it.
- **What the checkpoint holds.** It is written after every other callback's
  epoch end (TF-MOT re-masks its kernels there, the epoch log writes its row),
  so it is the state the next epoch starts from.

Mask callbacks need nothing more: they read their masks back from the
restored weights (a pruned weight is zero) and their step from the restored
optimizer step.
"""

import contextlib
import pathlib
import shutil
from typing import Sequence

import tensorflow as tf

from tfprune.data import datasets
from tfprune.keras_compat import keras
from tfprune.training import distribute

# The input pipeline Model.fit itself builds for arrays (no public name).
from tf_keras.src.engine import data_adapter  # pylint: disable=g-bad-import-order

BACKUP_NAME = 'backup'
_RNG_NAME = 'rng'
# BackupAndRestore keeps its checkpoints in this subfolder of its backup_dir.
_CHECKPOINTS = 'chief'


def finished_epochs(backup_dir: str | pathlib.Path) -> int:
  """Epochs finished by the run whose BackupAndRestore folder is `backup_dir` (0: none)."""
  latest = tf.train.latest_checkpoint(str(pathlib.Path(backup_dir) / _CHECKPOINTS))
  if latest is None:
    return 0
  epoch = tf.Variable(-1, dtype=tf.int64)
  tf.train.Checkpoint(ckpt_saved_epoch=epoch).read(latest).expect_partial()
  return int(epoch.numpy()) + 1


def epoch_batches(split: datasets.Split, batch_size: int, epochs: int,
                  first_epoch: int) -> tuple[tf.data.Dataset, int]:
  """The training batches of epochs `first_epoch`... of a run, and the steps per epoch.

  They are the batches `Model.fit(images, labels, batch_size, epochs,
  shuffle=True)` trains on, in the same order (one seeded permutation per
  epoch); the finished epochs' batches are skipped.
  """
  adapter = data_adapter.TensorLikeDataAdapter(
      split.images, split.labels, batch_size=batch_size, epochs=epochs,
      shuffle=True)
  steps = adapter.get_size()
  return adapter.get_dataset().skip(first_epoch * steps), steps


@contextlib.contextmanager
def generator_rng():
  """Random layers built inside draw from a `tf.random.Generator`, whose state `fit` checkpoints."""
  experimental = keras.backend.experimental
  enabled = experimental.is_tf_random_generator_enabled()
  experimental.enable_tf_random_generator()
  try:
    yield
  finally:
    if not enabled:
      experimental.disable_tf_random_generator()


def generators(model: keras.Model) -> list[tf.random.Generator]:
  """The `tf.random.Generator` of each random layer of `model` (wrapped ones too)."""
  out = []
  for layer in model.submodules:
    rng = getattr(layer, '_random_generator', None)
    generator = getattr(rng, '_generator', None)
    if isinstance(generator, tf.random.Generator) and not any(
        generator is g for g in out):
      out.append(generator)
  return out


class _Backup(keras.callbacks.BackupAndRestore):
  """BackupAndRestore that saves when `Save` (the last internal callback) says so.

  Under `MultiWorkerMirroredStrategy` every worker reads the chief's
  checkpoints; only the chief writes the generator states (the other
  workers' checkpoints go to temporary folders, as BackupAndRestore does).
  """

  def __init__(self, backup_dir: pathlib.Path,
               rngs: Sequence[tf.random.Generator], writes_rngs: bool):
    super().__init__(str(backup_dir))
    self.rngs = list(rngs) if writes_rngs else []
    self.rng_dir = backup_dir / _RNG_NAME

  def on_epoch_end(self, epoch, logs=None):
    del epoch, logs  # `save` runs after the other callbacks' epoch ends

  def save(self, epoch: int, logs=None) -> None:
    # Generator states first: a checkpoint of epoch e always has them.
    if self.rngs:
      self.rng_dir.mkdir(parents=True, exist_ok=True)
      _rng_checkpoint(self.rngs).write(str(self.rng_dir / f'epoch-{epoch + 1}'))
    super().on_epoch_end(epoch, logs)


class _Save(keras.callbacks.Callback):
  """Writes the epoch's checkpoint through `_Backup.save`."""

  def __init__(self, backup: _Backup):
    super().__init__()
    self.backup = backup

  def on_epoch_end(self, epoch, logs=None):
    self.backup.save(epoch, logs)


def _rng_checkpoint(rngs: Sequence[tf.random.Generator]) -> tf.train.Checkpoint:
  return tf.train.Checkpoint(generators=list(rngs))


def build_training_state(model: keras.Model, labels: tf.Tensor) -> None:
  """Creates the optimizer's and the compiled loss and metrics' variables now.

  `Model.fit` would create them inside its first train step, and a
  `tf.function` whose first call creates variables is traced a second time;
  created here, the train step is traced once (the variables start as they
  would: zero slots, empty metrics). `labels` is a batch shaped like the
  training labels (the metrics are chosen by the label and output shapes).
  Models with several outputs get their optimizer variables only.
  """
  with model.distribute_strategy.scope():
    model.optimizer.build(model.trainable_variables)
    if len(model.outputs) != 1:  # left to the first train step
      return
    output = model.outputs[0]
    y_pred = tf.zeros([1, *output.shape[1:]], output.dtype)
    if not model.compiled_loss.built:
      model.compiled_loss.build(y_pred)
    if not model.compiled_metrics.built:
      model.compiled_metrics.build(y_pred, labels)


def fit(model: keras.Model, train_split: datasets.Split,
        test_split: datasets.Split, *, batch_size: int, epochs: int,
        work_dir: str | pathlib.Path,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        more_callbacks: Sequence[keras.callbacks.Callback] = (),
        verbose: int = 2,
        backup_dir: str | pathlib.Path | None = None
        ) -> keras.callbacks.History:
  """Trains `model` for `epochs`, resuming from `work_dir/backup` if an earlier call was cut off.

  Args:
    model: a compiled model (random layers built under `generator_rng`, if any).
    train_split: shuffled each epoch as `Model.fit` shuffles arrays.
    test_split: evaluated after every epoch in batches of `batch_size`.
    batch_size: global batch size.
    epochs: epochs of the whole run, the finished ones included.
    work_dir: holds the checkpoint, deleted once training finishes.
    callbacks: run after the restore and before the epoch's checkpoint.
    more_callbacks: run after the checkpoint (tests interrupt training here).
    verbose: Keras progress output.
    backup_dir: the checkpoint folder (default `work_dir/backup`). Under
      `MultiWorkerMirroredStrategy` every worker passes the chief's, as
      `BackupAndRestore` requires, so all of them resume from one epoch.

  Returns:
    The History of the epochs trained by this call.
  """
  backup_dir = pathlib.Path(backup_dir or pathlib.Path(work_dir) / BACKUP_NAME)
  chief = distribute.is_chief(model.distribute_strategy)
  first = finished_epochs(backup_dir)
  rngs = generators(model)
  states = backup_dir / _RNG_NAME / f'epoch-{first}'
  if rngs and tf.io.gfile.exists(f'{states}.index'):  # absent: a fresh run
    _rng_checkpoint(rngs).read(str(states)).assert_consumed()
  with model.distribute_strategy.scope():
    batches, steps = epoch_batches(train_split, batch_size, epochs, first)
  build_training_state(model, tf.constant(train_split.labels[:1]))
  backup = _Backup(backup_dir, rngs, writes_rngs=chief)
  history = model.fit(batches, epochs=epochs, steps_per_epoch=steps,
                      validation_data=(test_split.images, test_split.labels),
                      validation_batch_size=batch_size,
                      callbacks=[backup, *callbacks, _Save(backup),
                                 *more_callbacks],
                      verbose=verbose)
  # BackupAndRestore deletes its checkpoints after a finished fit.
  if chief:
    shutil.rmtree(backup_dir / _RNG_NAME, ignore_errors=True)
    if backup_dir.is_dir() and not any(backup_dir.iterdir()):
      backup_dir.rmdir()
  return history
