"""`Pruning`: the Keras 3 callback that prunes a model while `fit` trains it."""

from typing import Sequence

import keras
import numpy as np

from tfprune.allocation import scan as scan_lib
from tfprune.errors import TfpruneError
from tfprune.keras import pruner as pruner_lib
from tfprune.keras import schedules


class Pruning(keras.callbacks.Callback):
  """Prunes the model being fitted: `model.fit(..., callbacks=[Pruning(schedule)])`.

  The optimizer zeroes the masked weights inside its compiled step
  (`Pruner.mask_in_optimizer`); after each batch the step is counted and,
  where the schedule says, the masks for the next batch are recomputed
  (`pruner.Pruner.step`). The masks and step counters ride along with the
  model's weights, so `BackupAndRestore` resumes an interrupted run exactly
  when it saves at epoch ends (its default). A checkpoint written mid-epoch
  (`save_freq=<steps>`) is refused when it is restored: Keras restarts the
  epoch from its first batch, so the restored run would train again on the
  batches it had already seen. Works on the TensorFlow and JAX backends. The
  arguments are `Pruner`'s.

  Attributes:
    pruner: the `Pruner` of the model being fitted (None before `fit`).
  """

  def __init__(self, schedule: schedules.PruningSchedule,
               criterion: str = 'weight', *, allocation: str = 'uniform',
               layers: Sequence[str] | None = None,
               prune_output_layer: bool = False, pattern: str | None = None,
               scan: scan_lib.Scan | None = None,
               data: np.ndarray | None = None):
    super().__init__()
    if not isinstance(schedule, schedules.PruningSchedule):
      raise TfpruneError(f'schedule must be a tfprune.keras ConstantSparsity or '
                         f'PolynomialDecay, got {type(schedule).__name__}')
    self.schedule = schedule
    self.criterion = criterion
    self.options = {'allocation': allocation, 'layers': layers,
                    'prune_output_layer': prune_output_layer,
                    'pattern': pattern, 'scan': scan, 'data': data}
    self.pruner: pruner_lib.Pruner | None = None
    self._counted: int | None = None  # the step count this callback left
    self._epoch, self._first = 0, False

  def set_model(self, model):
    super().set_model(model)
    if self.pruner is None or self.pruner.model is not model:
      if getattr(model, 'steps_per_execution', 1) != 1:
        raise TfpruneError('Pruning updates masks between batches: compile the '
                           'model with steps_per_execution=1')
      self.pruner = pruner_lib.Pruner(model, self.schedule, self.criterion,
                                      **self.options)
      self._counted = self.pruner.step_count
    # Before any restore (BackupAndRestore loads in on_train_begin), so a
    # checkpoint's optimizer variables, masks included, load in order.
    if getattr(model, 'optimizer', None) is not None:  # not compiled: no fit
      self.pruner.mask_in_optimizer(model.optimizer)

  def on_train_begin(self, logs=None):
    self._first = True

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch = epoch

  def on_train_batch_begin(self, batch, logs=None):
    if self._first:  # after every callback's on_train_begin, so any restore
      self._first = False
      self._check_restore(batch)
      # After a restore, the coming step's masks may be due.
      self.pruner.prepare()

  def _check_restore(self, batch: int) -> None:
    """Refuses a step count restored from a checkpoint written mid-epoch."""
    now = self.pruner.step_count
    per_epoch = self.params.get('steps') if self.params else None
    if now == self._counted or not per_epoch:
      return
    start = self._epoch * per_epoch + batch
    if now != start:
      raise TfpruneError(
          f'the restored checkpoint was written after training step {now}, but '
          f'fit restarts at step {start} (epoch {self._epoch + 1}, batch '
          f'{batch + 1}), so it would train on batches it has seen already: '
          'resume from a checkpoint written at an epoch end '
          '(BackupAndRestore(save_freq="epoch"), the default), or pass fit '
          'the initial_epoch the checkpoint ends')

  def on_train_batch_end(self, batch, logs=None):
    self.pruner.step()
    self._counted = self.pruner.step_count
