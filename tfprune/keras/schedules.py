"""When masks are updated in training, and to which sparsity: TF-MOT's schedules for Keras 3.

The same constructors and the same semantics as
`tfmot.sparsity.keras.ConstantSparsity` and `PolynomialDecay`, so runs through
either can be compared: training steps count from 1 (the k-th batch is step
k); masks are updated at the steps s with begin_step <= s <= end_step (no
upper bound when end_step is -1) and (s - begin_step) % frequency == 0.
`PolynomialDecay` is Zhu & Gupta's schedule, from `initial_sparsity` at
begin_step to `final_sparsity` at end_step:

    sparsity(s) = final + (initial - final) * (1 - p)^power,
    p = clip((s - begin_step) / (end_step - begin_step), 0, 1)

Sparsities are fractions in [0, 1). Unlike TF-MOT, an end step off the
update grid is refused (TF-MOT silently never reaches the final sparsity).
Plain Python: no tensors, so one schedule serves every Keras backend.
"""

import abc

from tfprune.criteria import pruning
from tfprune.errors import TfpruneError


def _sparsity(value: float, name: str) -> float:
  return pruning.check_level(value, name, high=1, include_high=False)


def _steps(begin_step: int, end_step: int, frequency: int,
           open_end: bool) -> None:
  """Refuses steps TF-MOT would refuse, and an end step off the update grid."""
  if begin_step < 0:
    raise TfpruneError(f'begin_step must be >= 0, got {begin_step}')
  if frequency < 1:
    raise TfpruneError(f'frequency must be at least 1, got {frequency}')
  if open_end and end_step == -1:
    return
  if end_step < begin_step:
    raise TfpruneError(f'end_step {end_step} is before begin_step '
                       f'{begin_step}: give a later end step'
                       + (' (or -1: no end)' if open_end else ''))
  if (end_step - begin_step) % frequency:
    fixed = begin_step + frequency * ((end_step - begin_step) // frequency)
    raise TfpruneError(
        f'end_step - begin_step = {end_step - begin_step} is not a multiple of '
        f'frequency {frequency}, so no mask update would happen at the end '
        f'step: use end_step={fixed}')


class PruningSchedule(abc.ABC):
  """Says, for a training step, whether to update the masks and to which sparsity."""

  begin_step: int
  end_step: int
  frequency: int

  def prunes_at(self, step: int) -> bool:
    """Whether masks are updated at `step` (1 = the first training batch)."""
    in_range = step >= self.begin_step and (
        self.end_step < 0 or step <= self.end_step)
    return in_range and (step - self.begin_step) % self.frequency == 0

  @abc.abstractmethod
  def sparsity(self, step: int) -> float:
    """The target sparsity (a fraction) at `step`."""

  def __call__(self, step: int) -> tuple[bool, float]:
    """(update the masks at `step`?, sparsity at `step`), as TF-MOT's schedules."""
    return self.prunes_at(step), self.sparsity(step)

  @abc.abstractmethod
  def get_config(self) -> dict:
    """The constructor's arguments."""

  def __repr__(self) -> str:
    args = ', '.join(f'{k}={v!r}' for k, v in self.get_config().items())
    return f'{type(self).__name__}({args})'


class ConstantSparsity(PruningSchedule):
  """Prunes to `target_sparsity` at begin_step, re-pruning every `frequency` steps until end_step."""

  def __init__(self, target_sparsity: float, begin_step: int,
               end_step: int = -1, frequency: int = 100):
    _steps(begin_step, end_step, frequency, open_end=True)
    self.target_sparsity = _sparsity(target_sparsity, 'target_sparsity')
    self.begin_step, self.end_step, self.frequency = begin_step, end_step, frequency

  def sparsity(self, step: int) -> float:
    del step
    return self.target_sparsity

  def get_config(self) -> dict:
    return {'target_sparsity': self.target_sparsity,
            'begin_step': self.begin_step, 'end_step': self.end_step,
            'frequency': self.frequency}


class PolynomialDecay(PruningSchedule):
  """Zhu & Gupta's schedule: sparsity rises fast, then levels off at `final_sparsity`."""

  def __init__(self, initial_sparsity: float, final_sparsity: float,
               begin_step: int, end_step: int, power: float = 3,
               frequency: int = 100):
    _steps(begin_step, end_step, frequency, open_end=False)
    if end_step == begin_step:
      raise TfpruneError(f'end_step must be after begin_step {begin_step} for a '
                         'polynomial decay: use ConstantSparsity to prune once')
    self.initial_sparsity = _sparsity(initial_sparsity, 'initial_sparsity')
    self.final_sparsity = _sparsity(final_sparsity, 'final_sparsity')
    self.begin_step, self.end_step, self.frequency = begin_step, end_step, frequency
    self.power = power

  def sparsity(self, step: int) -> float:
    p = min(1.0, max(0.0, (step - self.begin_step) /
                     (self.end_step - self.begin_step)))
    return self.final_sparsity + (
        self.initial_sparsity - self.final_sparsity) * (1 - p) ** self.power

  def get_config(self) -> dict:
    return {'initial_sparsity': self.initial_sparsity,
            'final_sparsity': self.final_sparsity,
            'begin_step': self.begin_step, 'end_step': self.end_step,
            'power': self.power, 'frequency': self.frequency}


class CycleSparsity(PruningSchedule):
  """Iterative pruning: cycle i of `cycle_steps` steps starts by pruning to `sparsities[i]`.

  Cycle i (0-based) covers steps i·cycle_steps + 1 ... (i + 1)·cycle_steps;
  the masks are updated at the first step of each cycle only, so each cycle
  fine-tunes under a fixed mask (as `training.schedules.CycleSparsity`).
  """

  def __init__(self, sparsities, cycle_steps: int):
    if cycle_steps < 1:
      raise TfpruneError(f'cycle_steps must be at least 1, got {cycle_steps}')
    if not sparsities:
      raise TfpruneError('give at least one cycle sparsity')
    self.sparsities = [_sparsity(s, 'cycle sparsity') for s in sparsities]
    self.cycle_steps = cycle_steps
    self.begin_step, self.frequency = 1, cycle_steps
    self.end_step = 1 + (len(self.sparsities) - 1) * cycle_steps

  def sparsity(self, step: int) -> float:
    cycle = min(max((step - 1) // self.cycle_steps, 0), len(self.sparsities) - 1)
    return self.sparsities[cycle]

  def get_config(self) -> dict:
    return {'sparsities': list(self.sparsities), 'cycle_steps': self.cycle_steps}


def as_percent(sparsity: float) -> float:
  """A schedule's sparsity as the percentage the criteria take.

  Four decimals of a percentage: a float32 sparsity such as 0.7 (read back
  from a TF-MOT schedule) becomes exactly 70, not 69.999999.
  """
  return round(100 * float(sparsity), 4)
