"""Wall-clock timers for benchmarks: one call, repeated calls, alternating blocks.

Used by the benchmarks (`drivers.benchmark`, `drivers.point_cost`), Study B's
timing and the kernel calibration (`kernel_calibration`). Nothing in the
results files depends on them: timings go to separate JSON files.
"""

import time
from typing import Sequence


def seconds(fn) -> float:
  """Wall seconds of one call of `fn`."""
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def timings(fn, repeats: int, warm_up: bool = True) -> list[float]:
  """Seconds of `repeats` calls of `fn`, after one untimed warm-up call."""
  if warm_up:
    fn()
  return [seconds(fn) for _ in range(repeats)]


def interleaved_timings(fns: Sequence, runs: Sequence[int], rounds: int
                        ) -> list[list[float]]:
  """Seconds of each function's calls, timed in alternating blocks.

  Each round calls fns[0] runs[0] times, then fns[1] runs[1] times, and so
  on; no warm-up. On a shared machine the load changes within seconds, and
  alternating makes every change hit all the functions alike, so ratios of
  their times hold.

  Returns:
    One list of rounds * runs[i] times per function.
  """
  times = [[] for _ in fns]
  for _ in range(rounds):
    for i, fn in enumerate(fns):
      times[i].extend(timings(fn, runs[i], warm_up=False))
  return times
