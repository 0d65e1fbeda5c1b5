"""`tf.distribute` strategies by name, for training on one device or many.

- `default`: TensorFlow's default strategy: one device, a GPU if TF sees one.
- `mirrored`: `MirroredStrategy` over every visible GPU, or over the logical
  CPU devices when there is no GPU (see `split_cpu`, used by the tests).
- `multiworker`: `MultiWorkerMirroredStrategy`, the cluster read from the
  `TF_CONFIG` environment variable (one local worker when it is unset).

The batch size given to training is the global batch, split across replicas.
"""

import json
import os
from typing import Callable

import tensorflow as tf

from tfprune import registry
from tfprune.errors import TfpruneError

TF_CONFIG_ENV = 'TF_CONFIG'
_TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                      '"task": {"type": "worker", "index": 0}}')


def _default() -> tf.distribute.Strategy:
  return tf.distribute.get_strategy()


def _mirrored() -> tf.distribute.Strategy:
  gpus = tf.config.list_logical_devices('GPU')
  devices = gpus or tf.config.list_logical_devices('CPU')
  return tf.distribute.MirroredStrategy([d.name for d in devices])


def _multi_worker() -> tf.distribute.Strategy:
  check_tf_config(os.environ.get(TF_CONFIG_ENV))
  return tf.distribute.MultiWorkerMirroredStrategy()


STRATEGIES: dict[str, Callable[[], tf.distribute.Strategy]] = {
    'default': _default,
    'mirrored': _mirrored,
    'multiworker': _multi_worker,
}


def get(name: str) -> Callable[[], tf.distribute.Strategy]:
  """Returns the factory of the strategy called `name`.

  Raises:
    ValueError: `name` is not in `STRATEGIES`.
  """
  return registry.lookup(STRATEGIES, name, 'strategy')


def make(name: str) -> tf.distribute.Strategy:
  """Builds the strategy called `name` (see the module docstring)."""
  return get(name)()


def check_tf_config(text: str | None) -> dict | None:
  """Parses and checks a `TF_CONFIG` value; None or empty means single worker.

  Returns:
    The parsed configuration, or None.

  Raises:
    TfpruneError: the text is not JSON, lacks a cluster or task, or its task
      does not name a member of the cluster.
  """
  if not text:
    return None
  fix = f'set TF_CONFIG like {_TF_CONFIG_EXAMPLE}'
  try:
    config = json.loads(text)
  except json.JSONDecodeError as e:
    raise TfpruneError(f'TF_CONFIG is not valid JSON ({e}): {fix}') from None
  if not isinstance(config, dict):
    raise TfpruneError(f'TF_CONFIG must be a JSON object: {fix}')
  cluster, task = config.get('cluster'), config.get('task')
  if not isinstance(cluster, dict) or not cluster:
    raise TfpruneError(f'TF_CONFIG has no "cluster" object: {fix}')
  for job, addresses in cluster.items():
    if (not isinstance(addresses, list) or not addresses
        or not all(isinstance(a, str) and ':' in a for a in addresses)):
      raise TfpruneError(
          f'TF_CONFIG cluster job {job!r} must be a list of "host:port" '
          f'strings: {fix}')
  if not isinstance(task, dict) or 'type' not in task or 'index' not in task:
    raise TfpruneError(f'TF_CONFIG has no "task" with "type" and "index": {fix}')
  if task['type'] not in cluster:
    raise TfpruneError(
        f'TF_CONFIG task type {task["type"]!r} is not a job of the cluster '
        f'({", ".join(cluster)}): {fix}')
  index = task['index']
  if (isinstance(index, bool) or not isinstance(index, int)
      or not 0 <= index < len(cluster[task['type']])):
    raise TfpruneError(
        f'TF_CONFIG task index {index!r} is not in 0..'
        f'{len(cluster[task["type"]]) - 1} for job {task["type"]!r}: {fix}')
  return config


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True unless this process is a non-chief worker of a multi-worker cluster.

  Only the chief writes results; the other workers train in step with it.
  """
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == 'chief':
    return True
  has_chief = 'chief' in resolver.cluster_spec().as_dict()
  return resolver.task_type == 'worker' and resolver.task_id == 0 and not has_chief


def split_cpu(count: int) -> None:
  """Splits the physical CPU into `count` logical devices.

  Lets `mirrored` run on several replicas without GPUs (tests, laptops).
  Must be called before TensorFlow initialises its devices.

  Raises:
    TfpruneError: `count` < 1, or the devices are already initialised.
  """
  if count < 1:
    raise TfpruneError(f'logical CPU count must be at least 1, got {count}')
  cpu = tf.config.list_physical_devices('CPU')[0]
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * count)
  except RuntimeError:
    if len(tf.config.list_logical_devices('CPU')) != count:
      raise TfpruneError(
          f'cannot split the CPU into {count} devices after TensorFlow has '
          'started: call split_cpu first') from None
