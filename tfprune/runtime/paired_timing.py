"""Alternated timings with their spread, and the noise of identical runs.

A speed-up measured on a shared machine is a ratio of two noisy times. `pair`
times two functions in alternating rounds (`timers.interleaved_timings`) and
keeps, for each side, the fastest call and the median call, and the ratio of
the two sides' medians in each round. `pair` of a function with an identical
copy of itself (an A-vs-A control: the same work on both sides) shows what
noise alone makes of a ratio: `noise` is the largest factor by which one of
its rounds strayed from 1x, and a speed-up within that factor of 1x
(`within_noise`) is not evidence of any speed-up or slow-down.
"""

import dataclasses
import math
import statistics

from tfprune.runtime import timers


@dataclasses.dataclass(frozen=True)
class Pair:
  """Two functions timed in alternating rounds.

  Attributes:
    baseline_min: the baseline's fastest call, seconds.
    baseline_median: its median call, seconds.
    candidate_min: the candidate's fastest call, seconds.
    candidate_median: its median call, seconds.
    round_ratios: baseline median / candidate median, in each round.
  """
  baseline_min: float
  baseline_median: float
  candidate_min: float
  candidate_median: float
  round_ratios: tuple[float, ...]

  @property
  def speedup(self) -> float:
    """Baseline median / candidate median: above 1, the candidate is faster."""
    return self.baseline_median / self.candidate_median

  @property
  def speedup_of_min(self) -> float:
    """Baseline fastest / candidate fastest call."""
    return self.baseline_min / self.candidate_min

  def noise(self) -> float:
    """For a control (identical sides): the largest factor a round strayed from 1x."""
    return math.exp(max(abs(math.log(r)) for r in self.round_ratios))


def calls_per_block(fns, runs: int, min_seconds: float,
                    rounds: int) -> list[int]:
  """Calls of each function per block: `runs` in all at least, and at least
  `min_seconds` in all, from one warm-up call (timed) of each."""
  firsts = [min(timers.timings(fn, 1)) for fn in fns]
  return [max(-(-runs // rounds), math.ceil(min_seconds / rounds / max(t, 1e-6)))
          for t in firsts]


def pair(baseline, candidate, runs: int, min_seconds: float,
         rounds: int) -> Pair:
  """Times `baseline` and `candidate` in `rounds` alternating blocks.

  Args:
    baseline: the reference function (the dense network).
    candidate: the function compared with it.
    runs: timed calls per function in all, at least, split over the rounds.
    min_seconds: each function runs for at least this long in all.
    rounds: blocks per function (at least 2, for a spread).
  """
  fns = (baseline, candidate)
  per_block = calls_per_block(fns, runs, min_seconds, rounds)
  times = timers.interleaved_timings(fns, per_block, rounds)
  blocks = [[t[r * n:(r + 1) * n] for r in range(rounds)]
            for t, n in zip(times, per_block)]
  return Pair(
      baseline_min=min(times[0]), baseline_median=statistics.median(times[0]),
      candidate_min=min(times[1]), candidate_median=statistics.median(times[1]),
      round_ratios=tuple(statistics.median(a) / statistics.median(b)
                         for a, b in zip(*blocks)))


def within_noise(speedup: float, noise: float) -> bool:
  """True if `speedup` lies within a factor `noise` of 1x (see `Pair.noise`)."""
  return 1 / noise <= speedup <= noise
