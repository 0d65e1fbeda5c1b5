"""Prune a Keras model while it trains, without TF-MOT: Keras 3 (TensorFlow or JAX backend) or tf_keras.

    from tfprune import keras as tfk
    schedule = tfk.PolynomialDecay(0.0, 0.9, begin_step=0, end_step=3000,
                                   frequency=100)
    model.fit(x, y, epochs=8, callbacks=[tfk.Pruning(schedule)])
    tfk.strip_pruning(model).save('pruned.keras')   # plain Keras, zeros inside

    # whole channels (residual adds pruned together), then the smaller model:
    model.fit(x, y, callbacks=[tfk.Pruning(schedule, criterion='unit')])
    tfk.compact(model).save('small.keras')

    # a custom loop: one call after each optimizer step
    pruner = tfk.Pruner(model, schedule)
    ...; optimizer.apply(grads, model.trainable_variables); pruner.step()

The layers are not wrapped: masks are non-trainable variables kept beside the
model and saved with its weights, so `BackupAndRestore` resumes exactly. A
tf_keras model takes the same calls (`frameworks` holds what differs).
Criteria: 'weight', 'random' (with any allocation, or an N:M `pattern`),
'unit', 'unit_l1', 'unit_bn' (channel groups). See docs/keras3-pruning.md.
"""

from tfprune.keras.callback import Pruning
from tfprune.keras.criteria import CRITERIA
from tfprune.keras.finish import compact
from tfprune.keras.finish import strip_pruning
from tfprune.keras.pruner import Pruner
from tfprune.keras.schedules import ConstantSparsity
from tfprune.keras.schedules import PolynomialDecay
from tfprune.keras.schedules import PruningSchedule
from tfprune.keras.targets import PRUNABLE
from tfprune.keras.targets import kernel_sparsity

__all__ = ['CRITERIA', 'ConstantSparsity', 'PRUNABLE', 'PolynomialDecay',
           'Pruner', 'Pruning', 'PruningSchedule', 'compact', 'kernel_sparsity',
           'strip_pruning']
