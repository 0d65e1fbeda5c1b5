"""Two worker processes under MultiWorkerMirroredStrategy fine-tune and resume alike.

- `experiments/multi_worker_gradual.py`, small: gradual TF-MOT pruning to 90%
  of the prebuilt MNIST MLP on 2 local workers (TF_CONFIG, the standard
  setup) against one process: every pruned kernel at exactly TF-MOT's count
  of zeros on both workers, the same final weights on both (each worker
  saves its own), accuracy within 0.3 points of the one-process run; and a
  run cut after its first epoch resumes on both workers from the chief's
  checkpoint to the uninterrupted run's bits.
- `tfprune gradual --strategy=multiworker`, structured (unit) fine-tuning of
  LeNet-5 as a graph: both workers killed once the chief's first epoch is
  checkpointed, the same command again resumes from there and ends with the
  uninterrupted run's network, bit for bit.

The workers run in a private network namespace where one is available
(`unshare -rn`), so TensorFlow's gRPC servers are reachable from this
machine's loopback only.
"""

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests import helpers
from tfprune.graph import io as graph_io
from tfprune.training import resumable

SCRIPT = helpers.REPO / 'experiments' / 'multi_worker_gradual.py'
LENET = helpers.REPO / 'weights' / 'lenet5-mnist'
TRAIN_LIMIT = 512  # 4 steps of 128 per epoch
EPOCHS = 2
STRUCTURED_EPOCHS = 3  # killed after the first: a checkpoint is left behind


def _params(path) -> list[bytes]:
  graph = graph_io.load(path)
  return [a.tobytes() for node in graph.nodes for a in node.params.values()]


@pytest.mark.timeout(1200)
def test_two_workers_prune_alike_match_one_process_and_resume(data_dir,
                                                              tmp_path):
  subprocess.run(
      [sys.executable, str(SCRIPT), f'--out_dir={tmp_path}',
       f'--data_dir={data_dir}', f'--train_limit={TRAIN_LIMIT}',
       f'--epochs={EPOCHS}', '--cut_after_epoch=0'],
      cwd=helpers.REPO, check=True, timeout=1200, stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL)
  runs = json.loads((tmp_path / 'comparison.json').read_text())['runs']
  workers = ['multiworker-0', 'multiworker-1', 'resumed-0', 'resumed-1']
  assert [runs[w]['replicas'] for w in workers] == [2, 2, 2, 2]
  assert runs['one_process-0']['replicas'] == 1
  for name in (*workers, 'one_process-0'):
    assert len(runs[name]['layers']) == 4  # every Dense kernel but the output's
    for layer in runs[name]['layers']:
      zeros = graph_io.load(tmp_path / f'{name}.npz').node(
          layer['name']).params['kernel']
      zeros = int(np.sum(zeros == 0))  # counted here, in the saved network
      assert zeros == layer['zeros'] == layer['required'] == round(
          0.9 * layer['size']), (name, layer)
  first = _params(tmp_path / 'multiworker-0.npz')
  for name in workers[1:]:
    assert _params(tmp_path / f'{name}.npz') == first  # bit for bit
  # The resumed run started again at epoch 1, from the chief's checkpoint.
  assert [runs[w]['started_at_epoch'] for w in workers] == [0, 0, 1, 1]
  lines = (tmp_path / 'resumed-0' / 'epochs.csv').read_text().splitlines()
  assert len(lines) == 1 + EPOCHS  # header, then each epoch once
  # Accuracy on the 10,000 test images: 0.3 points is 30 images.
  assert abs(runs['multiworker-0']['accuracy']
             - runs['one_process-0']['accuracy']) <= 0.003


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


def _gradual_workers(out_dir, data_dir, log_dir) -> subprocess.Popen:
  """`tfprune gradual --strategy=multiworker` on 2 workers, started, not awaited."""
  cluster = {'worker': [f'127.0.0.1:{p}' for p in _free_ports(2)]}
  command = [sys.executable, '-m', 'tfprune', 'gradual',
             f'--weights_dir={LENET}', '--model=lenet5', f'--data_dir={data_dir}',
             '--procedures=gradual', '--granularity=unit', '--targets=50',
             f'--epochs={STRUCTURED_EPOCHS}', f'--train_limit={TRAIN_LIMIT}',
             '--export_tflite=false', '--strategy=multiworker', '--verbose=0',
             f'--out_dir={out_dir}']
  scripts = []
  for i in range(2):
    tf_config = json.dumps({'cluster': cluster,
                            'task': {'type': 'worker', 'index': i}})
    scripts.append(f'TF_CONFIG={shlex.quote(tf_config)} {shlex.join(command)} '
                   f'> {log_dir}/worker{i}.log 2>&1')
  # Both in one shell, so they share one namespace when isolated; the shell
  # leads its own process group, so both can be killed at once.
  script = 'ip link set lo up 2>/dev/null; ' + ' & '.join(scripts) + ' & wait'
  isolated = _isolated()
  return subprocess.Popen(
      [*isolated, 'sh', '-c', script] if isolated else
      ['sh', '-c', script.split('; ', 1)[1]],
      cwd=helpers.REPO, start_new_session=True,
      env={**os.environ, 'PYTHONPATH': str(helpers.REPO)})


@pytest.mark.timeout(1200)
def test_structured_graph_fine_tuning_resumes_on_two_workers(data_dir,
                                                             tmp_path):
  whole = _gradual_workers(tmp_path / 'whole', data_dir, tmp_path)
  assert whole.wait(timeout=900) == 0
  cut_dir = tmp_path / 'cut'
  cut = _gradual_workers(cut_dir, data_dir, tmp_path)
  run_dir = cut_dir / 'runs' / 'gradual-unit-50'
  deadline = time.monotonic() + 900
  while resumable.finished_epochs(run_dir / resumable.BACKUP_NAME) < 1:
    assert cut.poll() is None and time.monotonic() < deadline
    time.sleep(0.2)
  os.killpg(cut.pid, signal.SIGKILL)  # both workers, mid-run
  cut.wait()
  # Killed between epochs: the chief's checkpoint (deleted once training
  # ends) is there for the next start to resume from.
  finished = resumable.finished_epochs(run_dir / resumable.BACKUP_NAME)
  assert 1 <= finished < STRUCTURED_EPOCHS
  assert not (run_dir / 'result.json').exists()
  resumed = _gradual_workers(cut_dir, data_dir, tmp_path)
  assert resumed.wait(timeout=900) == 0, (tmp_path / 'worker1.log').read_text()
  graph = 'runs/gradual-unit-50/graph.npz'
  assert _params(cut_dir / graph) == _params(tmp_path / 'whole' / graph)
  lines = (run_dir / 'epochs.csv').read_text().splitlines()
  assert len(lines) == 1 + STRUCTURED_EPOCHS  # header, then each epoch once
  assert (cut_dir / 'results.csv').read_bytes() == (
      tmp_path / 'whole' / 'results.csv').read_bytes()
