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

  Each batch, after the optimizer step, the masked weights are zeroed and,
  where the schedule says, the masks for the next batch are recomputed
  (`pruner.Pruner.step`). The masks and step counters ride along with the
  model's weights, so `BackupAndRestore` resumes an interrupted run exactly.
  Works on the TensorFlow and JAX backends. The arguments are `Pruner`'s.

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

  def set_model(self, model):
    super().set_model(model)
    if self.pruner is None or self.pruner.model is not model:
      if getattr(model, 'steps_per_execution', 1) != 1:
        raise TfpruneError('Pruning updates masks between batches: compile the '
                           'model with steps_per_execution=1')
      self.pruner = pruner_lib.Pruner(model, self.schedule, self.criterion,
                                      **self.options)

  def on_train_begin(self, logs=None):
    # After a restore (BackupAndRestore), the coming step's masks may be due.
    self.pruner.prepare()

  def on_train_batch_end(self, batch, logs=None):
    self.pruner.step()
