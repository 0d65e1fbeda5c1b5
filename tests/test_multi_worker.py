"""Two worker processes under MultiWorkerMirroredStrategy fine-tune the MLP.

Gradual TF-MOT pruning to 90% of the prebuilt MNIST MLP, on 2 local workers
(TF_CONFIG, the standard setup) against one process: every pruned layer at
exactly TF-MOT's count of zeros on both workers, the same final weights on
both, and accuracy within 0.3 points of the one-process run; and a run cut
off after its first epoch resumes on both workers from the chief's
checkpoint to the uninterrupted run's weights. The workers run
in a private network namespace where one is available (`unshare -rn`), so
TensorFlow's gRPC servers are reachable from this machine's loopback only.
"""

import json
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests import helpers

# One worker: the strategy first (MultiWorkerMirroredStrategy must exist
# before any TensorFlow op), then the same training call the gradual study
# makes; prints its measured sparsity and accuracy, saves its final weights.
_WORKER = r"""
import json, sys
from tfprune.training import distribute
strategy = distribute.make(sys.argv[1])
import numpy as np
from tfprune.data import datasets
from tfprune.graph import weights
from tfprune.keras_compat import keras
from tfprune.keras_io import models
from tfprune.training import gradual
args = json.loads(sys.argv[2])
start = weights.load(args['weights_dir'])
train = datasets.load('mnist', 'train', args['data_dir'], limit=args['train_limit'])
test = datasets.load('mnist', 'test', args['data_dir'])
build = lambda: models.load_network(models.get('mlp')((28, 28, 1), 10),
                                    start.network)
class Stop(keras.callbacks.Callback):  # a cut-off after the epoch's checkpoint
  def on_epoch_end(self, epoch, logs=None):
    if epoch == args['stop_after_epoch']:
      sys.exit(3)
keras.utils.set_random_seed(0)
run = gradual.PruningRun('gradual', 'weight', 0.9, epochs=args['epochs'],
                         learning_rate=1e-3)
trained = gradual.train(run, build, train, test, strategy, args['work_dir'],
                        verbose=0, callbacks=[Stop()],
                        backup_dir=args['backup_dir'])
network = models.to_network(trained.model)
np.savez(args['weights_out'], *network.kernels, *network.biases)
print(json.dumps({
    'layers': [[l.size, l.zeros, l.required] for l in trained.layers],
    'accuracy': trained.keras_accuracy,
    'replicas': strategy.num_replicas_in_sync}))
"""
TRAIN_LIMIT = 1024
EPOCHS = 2


def _free_ports(count: int) -> list[int]:
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(('127.0.0.1', 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _isolated() -> list[str]:
  """A prefix that runs a command in a private network namespace, if allowed."""
  if shutil.which('unshare') is None or shutil.which('ip') is None:
    return []
  probe = subprocess.run(['unshare', '-rn', 'ip', 'link', 'set', 'lo', 'up'],
                         capture_output=True, check=False)
  return ['unshare', '-rn'] if probe.returncode == 0 else []


def _run_workers(tmp_path, data_dir, strategy: str, count: int,
                 name: str = '', stop_after_epoch: int | None = None
                 ) -> list[dict] | None:
  """Trains in `count` worker processes; their results (None if cut off)."""
  name = name or strategy
  ports = _free_ports(count)
  cluster = {'worker': [f'127.0.0.1:{p}' for p in ports]}
  commands = []
  for i in range(count):
    tf_config = json.dumps({'cluster': cluster,
                            'task': {'type': 'worker', 'index': i}})
    args = json.dumps({
        'weights_dir': str(helpers.PREBUILT), 'data_dir': data_dir,
        'train_limit': TRAIN_LIMIT, 'epochs': EPOCHS,
        'work_dir': str(tmp_path / f'{name}-{i}'),
        # Every worker reads the chief's (worker 0's) checkpoints.
        'backup_dir': str(tmp_path / f'{name}-0' / 'backup'),
        'stop_after_epoch': stop_after_epoch,
        'weights_out': str(tmp_path / f'{name}-{i}.npz')})
    commands.append(f'TF_CONFIG={_quote(tf_config)} {_quote(sys.executable)} '
                    f'-c {_quote(_WORKER)} {strategy} {_quote(args)} '
                    f'> {tmp_path}/{name}-{i}.out')
  # All workers in one shell, so they share one namespace when isolated.
  script = 'ip link set lo up 2>/dev/null; ' + ' & '.join(commands) + ' & wait'
  isolated = _isolated()
  subprocess.run([*isolated, 'sh', '-c', script] if isolated else
                 ['sh', '-c', script.split('; ', 1)[1]],
                 cwd=helpers.REPO, check=True, timeout=900)
  if stop_after_epoch is not None:
    assert not any((tmp_path / f'{name}-{i}.npz').exists() for i in range(count))
    return None
  results = []
  for i in range(count):
    lines = (tmp_path / f'{name}-{i}.out').read_text().splitlines()
    result = json.loads(lines[-1])
    with np.load(tmp_path / f'{name}-{i}.npz') as f:
      result['weights'] = [f[k] for k in f.files]
    results.append(result)
  return results


def _quote(text: str) -> str:
  return "'" + text.replace("'", "'\"'\"'") + "'"


@pytest.mark.timeout(900)
def test_two_workers_prune_alike_and_match_one_process(data_dir, tmp_path):
  workers = _run_workers(tmp_path, data_dir, 'multiworker', 2)
  alone, = _run_workers(tmp_path, data_dir, 'default', 1)
  assert [w['replicas'] for w in workers] == [2, 2]
  for worker in workers:
    for size, zeros, required in worker['layers']:
      assert zeros == required, (size, zeros, required)  # TF-MOT's exact count
      assert required == round(0.9 * size)
  first, second = workers
  assert len(first['weights']) == len(second['weights']) == 10  # 5 layers
  for a, b in zip(first['weights'], second['weights']):
    np.testing.assert_array_equal(a, b)  # the same weights, bit for bit
  # Accuracy on the 10,000 test images: 0.3 points is 30 images.
  assert abs(first['accuracy'] - alone['accuracy']) <= 0.003


@pytest.mark.timeout(900)
def test_two_workers_resume_from_the_chiefs_checkpoint(data_dir, tmp_path):
  whole = _run_workers(tmp_path, data_dir, 'multiworker', 2)
  assert _run_workers(tmp_path, data_dir, 'multiworker', 2, name='cut',
                      stop_after_epoch=0) is None
  resumed = _run_workers(tmp_path, data_dir, 'multiworker', 2, name='cut')
  for worker in (0, 1):
    for a, b in zip(whole[worker]['weights'], resumed[worker]['weights']):
      np.testing.assert_array_equal(a, b)  # bit for bit
  lines = (tmp_path / 'cut-0' / 'epochs.csv').read_text().splitlines()
  assert len(lines) == 1 + EPOCHS  # header, then each epoch once
