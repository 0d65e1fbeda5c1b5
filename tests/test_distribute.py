"""Strategies by name and the checks on TF_CONFIG."""

import json

import pytest
import tensorflow as tf

from tfprune.errors import TfpruneError
from tfprune.training import distribute

GOOD = {'cluster': {'worker': ['localhost:12345', 'localhost:12346']},
        'task': {'type': 'worker', 'index': 1}}


@pytest.mark.parametrize('text', [None, '', json.dumps(GOOD), json.dumps(
    {'cluster': {'chief': ['a:1'], 'worker': ['b:2']},
     'task': {'type': 'chief', 'index': 0}})])
def test_valid_tf_config_is_accepted(text):
  parsed = distribute.check_tf_config(text)
  assert parsed == (json.loads(text) if text else None)


@pytest.mark.parametrize('config, message', [
    ('{"cluster": ', 'TF_CONFIG is not valid JSON'),
    ('[1, 2]', 'TF_CONFIG must be a JSON object'),
    ({'task': {'type': 'worker', 'index': 0}}, 'TF_CONFIG has no "cluster" object'),
    ({'cluster': {'worker': 'localhost:1'}, 'task': {'type': 'worker', 'index': 0}},
     'cluster job \'worker\' must be a list of "host:port" strings'),
    ({'cluster': {'worker': ['localhost']}, 'task': {'type': 'worker', 'index': 0}},
     'must be a list of "host:port" strings'),
    ({'cluster': {'worker': ['a:1']}}, 'TF_CONFIG has no "task"'),
    ({'cluster': {'worker': ['a:1']}, 'task': {'type': 'ps', 'index': 0}},
     "task type 'ps' is not a job of the cluster"),
    ({'cluster': {'worker': ['a:1']}, 'task': {'type': 'worker', 'index': 1}},
     'task index 1 is not in 0..0'),
    ({'cluster': {'worker': ['a:1']}, 'task': {'type': 'worker', 'index': '0'}},
     "task index '0' is not in 0..0"),
])
def test_malformed_tf_config_is_refused_with_an_example(config, message):
  text = config if isinstance(config, str) else json.dumps(config)
  with pytest.raises(TfpruneError, match=message) as error:
    distribute.check_tf_config(text)
  assert 'set TF_CONFIG like {"cluster"' in str(error.value)
  assert '\n' not in str(error.value)


def test_unknown_strategy_lists_the_valid_names():
  with pytest.raises(ValueError, match='unknown strategy .tpu.: choose one of '
                     'default, mirrored, multiworker'):
    distribute.get('tpu')


def test_default_strategy_is_one_replica_and_chief():
  strategy = distribute.make('default')
  assert strategy.num_replicas_in_sync == 1
  assert distribute.is_chief(strategy)


def test_split_cpu_refuses_zero_devices():
  with pytest.raises(TfpruneError, match='logical CPU count must be at least 1'):
    distribute.split_cpu(0)


def test_split_cpu_after_start_names_the_fix():
  tf.constant(1)  # TensorFlow has started
  count = len(tf.config.list_logical_devices('CPU'))
  distribute.split_cpu(count)  # asking for what exists is fine
  with pytest.raises(TfpruneError, match='call split_cpu first'):
    distribute.split_cpu(count + 1)
