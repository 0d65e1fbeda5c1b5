"""Where independent trials run: in this process, or on a pool of Ray workers.

A sweep, a sensitivity scan or a benchmark's accuracy points are many
independent trials: one frozen point (a method and a level, a layer and a
level) in, one row out. Each trial is computed by two pure, module-level
functions:

- `prepare(payload) -> context`: what every trial of a run shares, made once
  per process from the payload (e.g. the graph and its traced evaluator);
- `trial(context, point) -> row`.

`map_trials` runs them with an executor from `EXECUTORS` and yields the rows
in the order of the points, whatever order they finished in, so a file
written from them is the same bytes under every executor:

- `serial`: one after the other in this process (the default);
- `ray`: a pool of Ray workers, one per CPU of the Ray cluster
  (`pip install tfprune[ray]`). On the cluster named by `$RAY_ADDRESS` if it
  is set (this package is shipped to it), else on a local Ray started for the
  run and stopped after it: bound to 127.0.0.1, no dashboard, a small object
  store, one CPU per core the process may use. The payload goes to the object
  store once (`ray.put`); each worker (a `TrialRunner` actor) reads it and
  prepares the context once, then takes the next point as soon as it is
  free, and runs TensorFlow on one thread per op. A worker that dies
  mid-trial is restarted and the trial retried (`MAX_RETRIES`, system
  failures only); a trial that raises `TfpruneError` on its own input is not
  retried and fails the run in one line. Ctrl-C, any error, or a caller that
  stops early ends the workers.
"""

import os
import pathlib
from typing import Any, Callable, Iterator, Protocol, Sequence

from tfprune import registry
from tfprune.errors import TfpruneError

RAY_ADDRESS_ENV = 'RAY_ADDRESS'
# Restarts of a worker process that died, and retries of the trials it was
# running (not of a trial that raised).
MAX_RETRIES = 3
# Set in each Ray worker before its TensorFlow runtime starts: one thread per
# op, as the pool already runs one worker per CPU.
ONE_THREAD_ENV = {'TF_NUM_INTRAOP_THREADS': '1', 'TF_NUM_INTEROP_THREADS': '1'}
# The local Ray's shared-memory object store: the payloads of a sweep or a
# scan (a network and a few thousand examples) take tens of megabytes.
LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024
_SINGLE_MACHINE_ENV = 'RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER'
_WORKER_NICENESS_ENV = 'RAY_worker_niceness'
_LOOPBACK = '127.0.0.1'

Prepare = Callable[[Any], Any]
Trial = Callable[[Any, Any], Any]


class Executor(Protocol):
  """Runs `trial(prepare(payload), point)` for each point; rows in point order."""

  def __call__(self, prepare: Prepare, trial: Trial, payload: Any,
               points: Sequence[Any]) -> Iterator[Any]:
    ...


def serial(prepare: Prepare, trial: Trial, payload: Any,
           points: Sequence[Any]) -> Iterator[Any]:
  """The trials one after the other in this process, sharing one context."""
  context = prepare(payload)
  for point in points:
    yield trial(context, point)


def ray_workers(prepare: Prepare, trial: Trial, payload: Any,
                points: Sequence[Any]) -> Iterator[Any]:
  """The trials on a pool of Ray workers (see the module docstring)."""
  ray = _import_ray()
  started = connect()
  runners = []
  try:
    shared = ray.put(payload)
    runner_class = ray.remote(num_cpus=1, max_restarts=MAX_RETRIES,
                              max_task_retries=MAX_RETRIES)(TrialRunner)
    count = min(len(points), max(1, int(ray.cluster_resources().get('CPU', 1))))
    runners = [runner_class.remote(prepare, trial) for _ in range(count)]
    # The payload's ref travels inside a list, so a worker receives the ref
    # and reads the payload once (again after a restart), not once per point.
    yield from _in_order(ray, runners, [shared], points)
  finally:
    # Ends the workers, whatever is outstanding (Ctrl-C, a failed trial, a
    # caller that stopped early). Tasks are never cancelled one by one: Ray
    # 2.60 can abort the driver when a task is force-cancelled while its
    # reply is arriving (`Tried to complete task that was not pending`).
    for runner in runners:
      ray.kill(runner, no_restart=True)
    if started:
      ray.shutdown()


def _in_order(ray, runners: list, shared: list,
              points: Sequence[Any]) -> Iterator[Any]:
  """Each point's row, in point order; a point goes to the next free runner."""
  free, running, finished = list(runners), {}, {}
  submitted = 0
  for index, point in enumerate(points):
    while index not in finished:
      while free and submitted < len(points):
        runner = free.pop()
        ref = runner.run.remote(shared, points[submitted])
        running[ref] = (submitted, runner)
        submitted += 1
      [ref], _ = ray.wait(list(running), num_returns=1)
      done, runner = running.pop(ref)
      finished[done] = ref
      free.append(runner)
    yield _result(ray, finished.pop(index), point)


class TrialRunner:
  """One Ray worker process: prepares its run's context once, then runs trials.

  Its TensorFlow computes each op on one thread (`ONE_THREAD_ENV`): the pool
  has one worker per CPU, so more threads would only contend for the cores.
  """

  def __init__(self, prepare: Prepare, trial: Trial):
    for name, value in ONE_THREAD_ENV.items():
      os.environ[name] = value  # read when TensorFlow's runtime starts
    self._prepare, self._trial = prepare, trial
    self._context = None

  def run(self, shared: list, point: Any) -> Any:
    """The trial of `point`; the first call prepares the context from `shared[0]`."""
    if self._context is None:
      import ray  # pylint: disable=import-outside-toplevel
      self._context = self._prepare(ray.get(shared[0]))
    return self._trial(self._context, point)


EXECUTORS: dict[str, Executor] = {'serial': serial, 'ray': ray_workers}


def get(name: str) -> Executor:
  """The executor called `name` (a key of `EXECUTORS`)."""
  return registry.lookup(EXECUTORS, name, 'executor')


def map_trials(executor: str, prepare: Prepare, trial: Trial, payload: Any,
               points: Sequence[Any]) -> Iterator[Any]:
  """Yields `trial(prepare(payload), point)` for each point, in point order.

  Args:
    executor: a key of `EXECUTORS`.
    prepare: module-level function, payload -> context shared by the trials.
    trial: module-level function, (context, point) -> row.
    payload: what every trial reads (picklable).
    points: the trials' frozen inputs (picklable).

  Raises:
    TfpruneError: unknown executor, Ray not installed, or a trial's input
      was refused.
  """
  return get(executor)(prepare, trial, payload, list(points))


def _import_ray():
  """Imports Ray; without `$RAY_ADDRESS`, with its servers kept on 127.0.0.1.

  A local Ray advertises and listens on this machine's outward address
  unless `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` (Ray's single-machine mode)
  is in the environment when Ray is first imported; the raylet and the
  workers inherit it. `RAY_worker_niceness` (Ray's default 15) is set to this
  process's niceness, so that on a busy machine the trials get the share of
  the CPU a serial run would.
  """
  if not os.environ.get(RAY_ADDRESS_ENV):
    os.environ.setdefault(_SINGLE_MACHINE_ENV, '0')
    # Ray starts task workers at niceness 15; a local run's trials are the
    # run's work, so they run at this process's own priority, as serially.
    os.environ.setdefault(_WORKER_NICENESS_ENV, str(os.nice(0)))
  try:
    import ray  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise TfpruneError('--executor=ray needs Ray: pip install tfprune[ray], '
                       'or use --executor=serial') from None
  return ray


def connect() -> bool:
  """Connects to `$RAY_ADDRESS`, or starts a local Ray; True if it did either.

  Does nothing (False) when this process is already connected: a caller who
  called `ray.init` keeps their Ray, and `ray_workers` leaves it running.
  """
  ray = _import_ray()
  if ray.is_initialized():
    return False
  package = str(pathlib.Path(__file__).resolve().parents[1])
  if os.environ.get(RAY_ADDRESS_ENV):
    ray.init(address=os.environ[RAY_ADDRESS_ENV], log_to_driver=False,
             runtime_env={'py_modules': [package]})
  else:
    if ray.util.get_node_ip_address() != _LOOPBACK:
      raise TfpruneError(
          'a local Ray would listen beyond 127.0.0.1 because Ray was imported '
          f'before {_SINGLE_MACHINE_ENV}=0 was set: set it in the environment '
          f'(or set {RAY_ADDRESS_ENV} to use a cluster)')
    ray.init(address='local', num_cpus=len(os.sched_getaffinity(0)),
             include_dashboard=False, _node_ip_address=_LOOPBACK,
             object_store_memory=LOCAL_OBJECT_STORE_BYTES,
             log_to_driver=False, configure_logging=False)
  return True


def _result(ray, ref, point):
  """The row of one trial; a refused input becomes one TfpruneError line."""
  try:
    return ray.get(ref)
  except ray.exceptions.RayTaskError as e:
    if isinstance(e.cause, TfpruneError):
      raise TfpruneError(f'trial {point} failed: {e.cause}') from None
    raise
