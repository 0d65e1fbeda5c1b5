"""Pruning schedules: when, and to which sparsity, masks are updated in training.

Sparsities here are fractions in [0, 1), as TF-MOT takes them; the flags and
configs of tfprune speak percent and convert once, in `gradual_study`.

Two procedures, both as TF-MOT `PruningSchedule`s so that TF-MOT wrappers
(weight level) and tfprune's mask callbacks (unit level) share them:

- gradual: Zhu & Gupta's cubic `PolynomialDecay` (or `ConstantSparsity`) from
  `begin_step` to `end_step`, updating masks every `frequency` steps.
  TF-MOT only prunes on steps where (step - begin_step) % frequency == 0, so
  `end_step` must sit on that grid or the final sparsity is never reached:
  `plan_gradual` derives such steps from the data size. TF-MOT 0.8 counts
  steps from 1: the k-th training batch runs at step k.
- iterative (`CycleSparsity`): K cycles of E epochs; at the first batch of
  cycle i (0-based) the sparsity rises to 1 - (1 - s)^((i + 1) / K), so each
  cycle removes the same fraction of the weights still left, and stays there
  while the cycle fine-tunes.

Two single-cycle schedules serve prune-finetune cycles that wrap a fresh
TF-MOT wrapper per cycle (Study B, `study_lenet`): `first_step` updates the
magnitude mask once, on the cycle's first training step, and `FixedMask`
never updates it, so a mask injected into the wrapper by hand is what the
wrapper applies (weight := weight * mask) on every training step.
"""

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot

from tfprune.criteria import pruning
from tfprune.errors import TfpruneError

PRUNING_FRACTION = 2 / 3
"""Share of gradual training spent raising sparsity; the rest fine-tunes."""
MASK_UPDATES = 40
"""Mask updates aimed for over the pruning span when `frequency` is derived."""


def check_sparsity(sparsity: float, what: str = 'target sparsity') -> float:
  """Returns `sparsity` if it is a fraction in [0, 1) (`pruning.check_level`).

  Raises:
    TfpruneError: it is not a finite number in [0, 1).
  """
  return pruning.check_level(sparsity, what, high=1, include_high=False)


def tfmot_pruned_count(size: int, sparsity: float) -> int:
  """Weights TF-MOT's magnitude mask sets to zero in a tensor of `size`.

  TF-MOT keeps max(1, round(size * (1 - sparsity))) weights, computed in
  float32 (`pruning_impl._update_mask`); this mirrors it exactly.
  """
  keep = np.round(np.float32(size) * (np.float32(1) - np.float32(sparsity)))
  return size - max(1, int(keep))


@dataclasses.dataclass(frozen=True)
class GradualSteps:
  """Steps of a gradual schedule, on TF-MOT's step counter (1 = first batch).

  Attributes:
    begin_step: first mask update.
    end_step: last mask update, where the target sparsity is reached.
    frequency: steps between mask updates; divides end_step - begin_step.
    total_steps: training steps of the whole run.
  """
  begin_step: int
  end_step: int
  frequency: int
  total_steps: int


def plan_gradual(total_steps: int, begin_step: int = 0,
                 end_step: int | None = None,
                 frequency: int | None = None) -> GradualSteps:
  """Chooses or checks the steps of a gradual schedule so its target is reached.

  Args:
    total_steps: training steps of the run (epochs x steps per epoch).
    begin_step: first pruning step.
    end_step: last pruning step (None: about `PRUNING_FRACTION` of training,
      moved down onto the `frequency` grid).
    frequency: steps between mask updates (None: the pruning span over
      `MASK_UPDATES`, at least 1).

  Returns:
    Steps where the last mask update happens within training, exactly at the
    target sparsity.

  Raises:
    TfpruneError: a step is negative, begin is not before end, end lies past
      the last training step, or end - begin is not a multiple of frequency.
  """
  if total_steps < 2:
    raise TfpruneError(
        f'gradual pruning needs at least 2 training steps, got {total_steps}: '
        'raise --epochs or lower --batch_size')
  if begin_step < 0:
    raise TfpruneError(f'begin_step must be >= 0, got {begin_step}')
  if frequency is not None and frequency < 1:
    raise TfpruneError(f'frequency must be at least 1, got {frequency}')
  last = total_steps
  if end_step is None:
    target_end = max(begin_step + 1, round(PRUNING_FRACTION * total_steps))
    span = min(target_end, last) - begin_step
    if span < 1:
      raise TfpruneError(
          f'begin_step {begin_step} leaves no room to prune in {total_steps} '
          'training steps: lower --begin_step or raise --epochs')
    if frequency is None:
      frequency = max(1, span // MASK_UPDATES)
    end_step = begin_step + frequency * max(1, span // frequency)
  if frequency is None:
    frequency = max(1, (end_step - begin_step) // MASK_UPDATES)
  if begin_step >= end_step:
    raise TfpruneError(
        f'begin_step {begin_step} is not before end_step {end_step}: '
        'give a begin step smaller than the end step')
  if end_step > last:
    raise TfpruneError(
        f'end_step {end_step} is past the last training step {last}: lower '
        '--end_step or raise --epochs')
  if (end_step - begin_step) % frequency:
    fixed = begin_step + frequency * ((end_step - begin_step) // frequency)
    raise TfpruneError(
        f'end_step - begin_step = {end_step - begin_step} is not a multiple of '
        f'frequency {frequency}, so TF-MOT would never prune at the end step: '
        f'use end_step={fixed}')
  return GradualSteps(begin_step, end_step, frequency, total_steps)


def polynomial(target: float, steps: GradualSteps,
               initial: float = 0.0) -> tfmot.sparsity.keras.PruningSchedule:
  """Zhu & Gupta's cubic schedule from `initial` to `target` over `steps`."""
  return tfmot.sparsity.keras.PolynomialDecay(
      initial_sparsity=check_sparsity(initial, 'initial sparsity'),
      final_sparsity=check_sparsity(target), begin_step=steps.begin_step,
      end_step=steps.end_step, frequency=steps.frequency)


def constant(target: float, steps: GradualSteps
             ) -> tfmot.sparsity.keras.PruningSchedule:
  """Prunes straight to `target` at `begin_step`, re-pruning until `end_step`."""
  return tfmot.sparsity.keras.ConstantSparsity(
      check_sparsity(target), begin_step=steps.begin_step,
      end_step=steps.end_step, frequency=steps.frequency)


def cycle_sparsities(target: float, cycles: int) -> list[float]:
  """Sparsity after each of `cycles` cycles: 1 - (1 - target)^((i + 1) / K)."""
  check_sparsity(target)
  if cycles < 1:
    raise TfpruneError(f'cycles must be at least 1, got {cycles}')
  return [1 - (1 - target) ** ((i + 1) / cycles) for i in range(cycles)]


class CycleSparsity(tfmot.sparsity.keras.PruningSchedule):
  """Iterative prune-finetune: a mask update at the first batch of each cycle.

  Cycle i (0-based) covers steps i * cycle_steps + 1 ... (i + 1) * cycle_steps.

  Between updates the mask is frozen, so fine-tuning never revives a weight,
  and since each cycle's sparsity is higher than the last and pruned weights
  are zero at the update, a cycle only ever removes weights.
  """

  def __init__(self, target: float, cycles: int, cycle_steps: int):
    """Builds the schedule.

    Args:
      target: sparsity after the last cycle, in [0, 1).
      cycles: number of prune-finetune cycles K.
      cycle_steps: training steps per cycle (E epochs x steps per epoch).
    """
    if cycle_steps < 1:
      raise TfpruneError(f'cycle_steps must be at least 1, got {cycle_steps}')
    self.target = check_sparsity(target)
    self.cycles = cycles
    self.cycle_steps = cycle_steps
    self.sparsities = cycle_sparsities(target, cycles)

  def __call__(self, step):
    offset = tf.cast(step, tf.int64) - 1
    cycle = offset // self.cycle_steps
    should_prune = tf.logical_and(
        tf.logical_and(offset >= 0, cycle < self.cycles),
        tf.equal(offset % self.cycle_steps, 0))
    index = tf.clip_by_value(cycle, 0, self.cycles - 1)
    sparsity = tf.gather(tf.constant(self.sparsities, tf.float32), index)
    return should_prune, sparsity

  def get_config(self):
    return {'class_name': self.__class__.__name__,
            'config': {'target': self.target, 'cycles': self.cycles,
                       'cycle_steps': self.cycle_steps}}


def first_step(sparsity: float) -> tfmot.sparsity.keras.PruningSchedule:
  """TF-MOT magnitude pruning to `sparsity` once, on the first training step.

  A fresh wrapper's first training batch runs at step 1, so begin = end = 1
  (frequency 1) makes exactly one mask update there; the rest of the fit
  fine-tunes under that mask.
  """
  return tfmot.sparsity.keras.ConstantSparsity(
      check_sparsity(sparsity), begin_step=1, end_step=1, frequency=1)


class FixedMask(tfmot.sparsity.keras.PruningSchedule):
  """Never updates the mask: the wrapper keeps applying the one it holds.

  `PruneLowMagnitude.call` multiplies each pruned weight by its mask on every
  call, and only recomputes the mask when the schedule says `should_prune`;
  with this schedule a mask assigned to the wrapper's mask variable (random or
  structured masks, which TF-MOT cannot compute) holds for the whole fit.
  """

  def __call__(self, step):
    del step
    return tf.constant(False), tf.constant(0.0, tf.float32)

  def get_config(self):
    return {'class_name': self.__class__.__name__, 'config': {}}
