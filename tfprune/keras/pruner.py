"""The pruner: masks kept beside the model, updated on a schedule, applied after every optimizer step.

`Pruner(model, schedule, criterion)` leaves the model's layers as they are
(no wrappers). It keeps one non-trainable mask variable per masked array and
two step counters in a `PruningState`, a variable-only Keras layer attached
to the model as the attribute `STATE_ATTR`; `model.save_weights` (and so
`BackupAndRestore` and `ModelCheckpoint(save_weights_only=True)`) saves it
with the weights and optimizer, and `load_weights` restores it, so an
interrupted run resumes exactly. Masks are applied with `keras.ops`, so one
code serves the TensorFlow and JAX backends.

Steps count as in TF-MOT (the k-th batch is step k). `step()` is the one
call after each optimizer step: it zeroes the masked weights, counts the
step, and if the schedule updates the masks at the next step, recomputes
them from the (masked) weights now, before that batch runs. `prepare()`
does the last part for the first batch; a mask update is done once per step
whatever calls it (`updated_at`). For a JAX loop of `stateless_call`s,
`stateless_step` does the same on lists of values.

In `fit`, the `Pruning` callback first calls `mask_in_optimizer`: the
optimizer then zeroes the masked trainable weights itself, inside its
compiled step (`in_step`), and `step()` is left with counting the step and,
every `frequency` steps, the mask update.
"""

from typing import Sequence

import keras
import numpy as np
from keras import ops

from tfprune.allocation import scan as scan_lib
from tfprune.errors import TfpruneError
from tfprune.keras import criteria
from tfprune.keras import in_step
from tfprune.keras import schedules
from tfprune.keras import targets as targets_lib

STATE_ATTR = '_tfprune_pruning'


class PruningState(keras.layers.Layer):
  """Masks and counters of a pruned model: variables only, never called.

  Attributes:
    masks: one float mask per masked array (1 kept, 0 pruned).
    masked: the model's variables the masks apply to (not tracked here).
    optimizer: the optimizer applying the masks in its step, or None.
    step: training steps done.
    updated_at: the step whose masks were last computed (0: none).
  """

  def __init__(self, shapes: Sequence[tuple], dtypes: Sequence[str]):
    super().__init__(name='tfprune_pruning')
    self.masks = [self.add_weight(shape=shape, dtype=dtype, initializer='ones',
                                  trainable=False, name=f'mask_{i}')
                  for i, (shape, dtype) in enumerate(zip(shapes, dtypes))]
    self.step = self.add_weight(shape=(), dtype='int32', initializer='zeros',
                                trainable=False, name='step')
    self.updated_at = self.add_weight(shape=(), dtype='int32',
                                      initializer='zeros', trainable=False,
                                      name='updated_at')

  def call(self, inputs):  # never part of the model's computation
    return inputs


def _int(variable) -> int:
  return int(ops.convert_to_numpy(variable))


def sync(model) -> None:
  """In a JAX `fit`, writes the trained values back into the variables.

  Keras's JAX trainer keeps the training state outside the variables between
  steps; after this call it reads the state back from them, so masks
  applied here are trained with.
  """
  if getattr(model, '_jax_state', None) is not None:
    model.jax_state_sync()


def _compiled_apply(variables: Sequence, masks: Sequence):
  """A function setting each variable to variable * mask, compiled for the backend.

  One call per step instead of an eager multiply and assign per array: a
  `tf.function` on TensorFlow, a jitted product on JAX (its variables are
  assigned outside the trace), plain `keras.ops` elsewhere.
  """
  pairs = list(zip(variables, masks))

  def eager():
    for variable, mask in pairs:
      variable.assign(ops.multiply(variable, mask))
  backend = keras.backend.backend()
  if backend == 'tensorflow':
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return tf.function(eager)
  if backend == 'jax':
    import jax  # pylint: disable=import-outside-toplevel
    products = jax.jit(lambda values, kept: [ops.multiply(v, m)
                                             for v, m in zip(values, kept)])

    def jitted():
      new = products([v.value for v in variables], [m.value for m in masks])
      for variable, value in zip(variables, new):
        variable.assign(value)
    return jitted
  return eager


class Pruner:
  """Prunes a Keras 3 model while it trains, in `fit` (the `Pruning` callback) or a custom loop.

  Attributes:
    model: the model (its layers untouched; the state rides along).
    schedule: when and how much.
    rule: the criterion (`criteria.make`).
    state: the `PruningState` attached to the model.
  """

  def __init__(self, model, schedule: schedules.PruningSchedule,
               criterion: str = 'weight', *, allocation: str = 'uniform',
               layers: Sequence[str] | None = None,
               prune_output_layer: bool = False, pattern: str | None = None,
               scan: scan_lib.Scan | None = None,
               data: np.ndarray | None = None):
    """Attaches the pruning state to `model` and prepares the first step's masks.

    Args:
      model: a built Keras 3 model (functional or Sequential; weight criteria
        also prune subclassed models).
      schedule: a `ConstantSparsity` or `PolynomialDecay`.
      criterion: 'weight' (magnitude), 'random', or the channel criteria
        'unit' (L2), 'unit_l1', 'unit_bn' (batch-norm |gamma|).
      allocation: weight criteria: how the sparsity is spread over layers,
        'uniform', 'global', 'erk' or 'sensitivity' (with `scan`).
      layers: names of the layers to prune (default: every prunable layer
        but the output layer).
      prune_output_layer: prune the output layer too.
      pattern: weight criteria: 'N:M' keeps N of every M weights instead.
      scan: the sensitivity scan for allocation='sensitivity'.
      data: channel criteria: examples to verify the model's import on.

    Raises:
      TfpruneError: bad arguments, a tf_keras or unbuilt model, or a model
        already carrying another pruner's state.
    """
    targets_lib.check_model(model)
    if not isinstance(schedule, schedules.PruningSchedule):
      raise TfpruneError(f'schedule must be a tfprune.keras ConstantSparsity or '
                         f'PolynomialDecay, got {type(schedule).__name__}')
    self.model, self.schedule = model, schedule
    self.rule = criteria.make(criterion, model, layers, prune_output_layer,
                              allocation, pattern, scan, data)
    self.masked = [t.variable for t in self.rule.targets]
    self.state = self._attach()
    self._apply = self._apply_some = None
    # Indices of the masks `step()` applies (None: all; the rest are applied
    # by the optimizer, see `mask_in_optimizer`).
    self._after_step: list[int] | None = None
    self.prepare()

  @property
  def targets(self) -> list[targets_lib.Target]:
    """The masked arrays, in the order of `state.masks`."""
    return list(self.rule.targets)

  def _attach(self) -> PruningState:
    state = getattr(self.model, STATE_ATTR, None)
    shapes = [tuple(v.shape) for v in self.masked]
    if state is not None:
      if [tuple(m.shape) for m in state.masks] != shapes:
        raise TfpruneError(
            f'model {self.model.name} already carries the state of a pruner of '
            'other arrays: call tfprune.keras.strip_pruning(model) first')
    else:
      state = PruningState(shapes, [v.dtype for v in self.masked])
      # Not a tracked sublayer: the model's layers and weights stay the
      # user's; Keras's saving walks the model's attributes, so the state is
      # saved with them.
      object.__setattr__(self.model, STATE_ATTR, state)
    object.__setattr__(state, 'masked', tuple(self.masked))
    if not hasattr(state, 'optimizer'):
      object.__setattr__(state, 'optimizer', None)
    return state

  def mask_in_optimizer(self, optimizer) -> None:
    """Has `optimizer` apply the masks of the trainable arrays inside its own step.

    `fit`'s compiled step then leaves the masked weights zero by itself
    (`in_step`); `step()` still counts steps, updates the masks on schedule
    and masks the arrays the optimizer does not update. Custom loops need
    not call this: `step()` alone masks everything after their step.
    """
    if self.state.optimizer is not None and self.state.optimizer is not optimizer:
      in_step.detach(self.state.optimizer, self.masked, self.state.masks)
    outside = in_step.attach(optimizer, self.model.trainable_variables,
                             self.masked, self.state.masks)
    object.__setattr__(self.state, 'optimizer', optimizer)
    if outside != self._after_step:
      self._after_step, self._apply_some = outside, None

  @property
  def step_count(self) -> int:
    """Training steps done (restored with the weights)."""
    return _int(self.state.step)

  def apply(self) -> None:
    """Zeroes every masked entry of the model's arrays (one compiled call)."""
    if self._apply is None:
      self._apply = _compiled_apply(self.masked, self.state.masks)
    self._apply()

  def _apply_after_step(self) -> None:
    """Masks what the optimizer's step did not (everything, without `mask_in_optimizer`)."""
    if self._after_step is None:
      sync(self.model)
      self.apply()
    elif self._after_step:
      if self._apply_some is None:
        self._apply_some = _compiled_apply(
            [self.masked[i] for i in self._after_step],
            [self.state.masks[i] for i in self._after_step])
      sync(self.model)
      self._apply_some()

  def _update(self, values: Sequence[np.ndarray], step: int) -> None:
    level = schedules.as_percent(self.schedule.sparsity(step))
    current = [ops.convert_to_numpy(m) != 0 for m in self.state.masks]
    for mask, new in zip(self.state.masks,
                         self.rule.masks(values, current, level)):
      mask.assign(new.astype(mask.dtype))
    self.state.updated_at.assign(step)

  def _due(self) -> int | None:
    """The coming step, if the schedule updates the masks there and it is not done yet."""
    coming = self.step_count + 1
    if self.schedule.prunes_at(coming) and _int(self.state.updated_at) != coming:
      return coming
    return None

  def prepare(self) -> None:
    """Computes the coming step's masks if the schedule says so, and applies them."""
    coming = self._due()
    if coming is None:
      return
    sync(self.model)
    self._update([ops.convert_to_numpy(v) for v in self.rule.reads], coming)
    self.apply()

  def step(self) -> None:
    """The call after each optimizer step: mask, count the step, prepare the next."""
    self._apply_after_step()
    self._count()
    self.prepare()

  def _count(self) -> None:
    self.state.step.assign(self.step_count + 1)

  def stateless_step(self, trainable_values: Sequence, non_trainable_values: Sequence
                     ) -> tuple[list, list]:
    """`step` on the values of a `stateless_call` loop (JAX); the model's variables are not touched.

    Args:
      trainable_values: values of `model.trainable_variables`, in order.
      non_trainable_values: values of `model.non_trainable_variables`.

    Returns:
      Both lists with the masks applied (the masks and counters, kept in the
      pruner's state, are updated as by `step`).
    """
    values = {'t': list(trainable_values), 'n': list(non_trainable_values)}
    where = self._positions()

    def apply():
      for variable, mask in zip(self.masked, self.state.masks):
        w, i = where[id(variable)]
        values[w][i] = ops.multiply(values[w][i], ops.cast(mask, variable.dtype))
    apply()
    self._count()
    coming = self._due()
    if coming is not None:
      self._update([ops.convert_to_numpy(values[w][i]) for w, i in
                    (where[id(v)] for v in self.rule.reads)], coming)
      apply()
    return values['t'], values['n']

  def _positions(self) -> dict[int, tuple[str, int]]:
    out = {id(v): ('t', i) for i, v in enumerate(self.model.trainable_variables)}
    out.update({id(v): ('n', i)
                for i, v in enumerate(self.model.non_trainable_variables)})
    return out

  def sparsity(self) -> dict[str, tuple[int, int]]:
    """Variable path -> (entries the mask prunes, size), for every masked array."""
    return {t.name: (int(np.sum(ops.convert_to_numpy(m) == 0)), int(np.prod(m.shape)))
            for t, m in zip(self.rule.targets, self.state.masks)}
