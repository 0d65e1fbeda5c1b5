"""Gradual pruning on N local worker processes against one process, compared.

Fine-tunes a weight folder's network with gradual TF-MOT magnitude pruning
(`graph_gradual.train`, the fine-tuning `tfprune gradual` runs on a graph)
twice: in `--workers` processes under `MultiWorkerMirroredStrategy`
(TF_CONFIG names them on 127.0.0.1 ports; in a private network namespace
when `unshare -rn` is allowed, so TensorFlow's gRPC servers are reachable
from nowhere else), and in one process. Every process saves its own final
network (`<out_dir>/<run>-<i>.npz`, a tfprune graph file). The script then
prints, and writes to `<out_dir>/comparison.json`:

- each worker's zeros in every pruned kernel against TF-MOT's exact count;
- whether every worker's final weights are the same bits as worker 0's;
- each run's test accuracy (the saved network, tfprune's evaluator) and the
  difference in points from the one-process run.

With `--cut_after_epoch=e` the multi-worker run is also made a second time,
stopped after epoch e's checkpoint and started again: it must resume from
the chief's checkpoint and end with the uninterrupted run's bits.
Wall seconds go to `<out_dir>/timing.json`, apart from the results.

  python experiments/multi_worker_gradual.py --out_dir=runs/multi-worker
  python experiments/multi_worker_gradual.py --out_dir=/tmp/mw --epochs=2 \\
      --train_limit=4096 --cut_after_epoch=0
"""

import json
import os
import pathlib
import shlex
import shutil
import socket
import subprocess
import sys
import time

from absl import app
from absl import flags

_WORKERS = flags.DEFINE_integer('workers', 2, 'Worker processes.')
_OUT_DIR = flags.DEFINE_string('out_dir', None, 'Folder for every run.',
                               required=True)
_WEIGHTS_DIR = flags.DEFINE_string('weights_dir', 'weights/mlp-mnist',
                                   'The starting weight folder.')
_DATASET = flags.DEFINE_string('dataset', 'mnist', 'Its registry dataset.')
_DATA_DIR = flags.DEFINE_string('data_dir', None,
                                'Local data folder (else $TFPRUNE_DATA_DIR).')
_GRANULARITY = flags.DEFINE_enum('granularity', 'weight', ['weight', 'unit'],
                                 'weight (TF-MOT magnitude) or unit (channels).')
_TARGET = flags.DEFINE_float('target', 90, 'Target sparsity in percent.')
_EPOCHS = flags.DEFINE_integer('epochs', 8, 'Training epochs.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 128, 'Global batch size.')
_LEARNING_RATE = flags.DEFINE_float('learning_rate', 1e-4,
                                    'Initial Adam learning rate (cosine decay).')
_TRAIN_LIMIT = flags.DEFINE_integer('train_limit', None,
                                    'Train on the first N examples only.')
_CUT_AFTER_EPOCH = flags.DEFINE_integer(
    'cut_after_epoch', None, 'Also cut a multi-worker run after this epoch '
    '(0-based) and resume it; it must end with the same bits.')
# Set by the script for the processes it starts.
_TASK = flags.DEFINE_integer('task', None, 'Internal: train as this worker.')
_RUN = flags.DEFINE_string('run', None, 'Internal: the run the worker is in.')
_STRATEGY = flags.DEFINE_string('strategy', None, 'Internal: its strategy.')
_STOP_AFTER_EPOCH = flags.DEFINE_integer('stop_after_epoch', None,
                                         'Internal: exit 3 after this epoch.')
_STOPPED = 3
_TRAINING_FLAGS = (_WEIGHTS_DIR, _DATASET, _DATA_DIR, _GRANULARITY, _TARGET,
                   _EPOCHS, _BATCH_SIZE, _LEARNING_RATE, _TRAIN_LIMIT)


def _train_worker(root: pathlib.Path) -> None:
  """One process of a run: trains, saves its network, writes its numbers."""
  # pylint: disable=import-outside-toplevel
  from tfprune.training import distribute
  # First: MultiWorkerMirroredStrategy must exist before any TensorFlow op.
  strategy = distribute.make(_STRATEGY.value)
  from tfprune.criteria import graph_pruning
  from tfprune.data import datasets
  from tfprune.drivers import folder_graph
  from tfprune.graph import evaluator
  from tfprune.graph import io as graph_io
  from tfprune.graph import weights
  from tfprune.keras_compat import keras
  from tfprune.training import gradual
  from tfprune.training import graph_gradual
  from tfprune.training import resumable

  class Stop(keras.callbacks.Callback):
    """Ends the process after an epoch's checkpoint (an interruption)."""

    def on_epoch_end(self, epoch, logs=None):
      if epoch == _STOP_AFTER_EPOCH.value:
        sys.exit(_STOPPED)

  graph = folder_graph.to_graph(weights.load(_WEIGHTS_DIR.value))
  train, test = (folder_graph.shaped(
      datasets.load(_DATASET.value, split, _DATA_DIR.value, limit), graph.input_shape)
      for split, limit in (('train', _TRAIN_LIMIT.value), ('test', None)))
  run = gradual.PruningRun('gradual', _GRANULARITY.value, _TARGET.value / 100,
                           epochs=_EPOCHS.value, batch_size=_BATCH_SIZE.value,
                           learning_rate=_LEARNING_RATE.value)
  name = f'{_RUN.value}-{_TASK.value}'
  # Every worker reads the chief's (worker 0's) checkpoints.
  backup_dir = root / f'{_RUN.value}-0' / resumable.BACKUP_NAME
  started_at_epoch = resumable.finished_epochs(backup_dir)
  keras.utils.set_random_seed(0)
  trained = graph_gradual.train(
      run, graph, graph_pruning.prunable(graph), train, test, strategy,
      root / name, verbose=0, callbacks=[Stop()], backup_dir=backup_dir)
  graph_io.save(trained.graph, root / f'{name}.npz')
  accuracy = evaluator.Evaluator(trained.graph).accuracy(test.images,
                                                         test.labels)
  (root / f'{name}.json').write_text(json.dumps({
      'replicas': strategy.num_replicas_in_sync, 'accuracy': accuracy,
      'started_at_epoch': started_at_epoch,
      'layers': [{'name': l.name, 'size': l.size, 'zeros': l.zeros,
                  'required': l.required} for l in trained.layers]}) + '\n')


def _ports(count: int) -> list[int]:
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(('127.0.0.1', 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _isolation() -> list[str]:
  if shutil.which('unshare') and shutil.which('ip') and subprocess.run(
      ['unshare', '-rn', 'ip', 'link', 'set', 'lo', 'up'],
      capture_output=True, check=False).returncode == 0:
    return ['unshare', '-rn']
  return []


def _run(root: pathlib.Path, run: str, workers: int,
         stop_after_epoch: int | None = None) -> float:
  """Starts the run's processes (all of them at once) and waits; seconds."""
  strategy = 'multiworker' if workers > 1 else 'default'
  cluster = {'worker': [f'127.0.0.1:{p}' for p in _ports(workers)]}
  forwarded = [f'--{f.name}={f.value}' for f in _TRAINING_FLAGS
               if f.value is not None]
  commands = []
  for i in range(workers):
    tf_config = json.dumps({'cluster': cluster,
                            'task': {'type': 'worker', 'index': i}})
    command = [sys.executable, __file__, *forwarded, f'--out_dir={root}',
               f'--task={i}', f'--run={run}', f'--strategy={strategy}']
    if stop_after_epoch is not None:
      command.append(f'--stop_after_epoch={stop_after_epoch}')
    commands.append(f'TF_CONFIG={shlex.quote(tf_config)} {shlex.join(command)}'
                    f' > {shlex.quote(str(root / f"{run}-{i}.log"))} 2>&1; '
                    f'echo $? > {shlex.quote(str(root / f"{run}-{i}.exit"))}')
  # All processes in one shell, so they share one namespace when isolated.
  script = ' & '.join(f'({c})' for c in commands) + ' & wait'
  isolation = _isolation()
  if isolation:
    script = 'ip link set lo up; ' + script
  start = time.perf_counter()
  subprocess.run([*isolation, 'sh', '-c', script], check=True,
                 env={**os.environ, 'PYTHONPATH': os.pathsep.join(
                     filter(None, [str(pathlib.Path(__file__).parents[1]),
                                   os.environ.get('PYTHONPATH')]))})
  seconds = time.perf_counter() - start
  want = 0 if stop_after_epoch is None else _STOPPED
  for i in range(workers):
    code = int((root / f'{run}-{i}.exit').read_text())
    if code != want:
      raise SystemExit(f'{run} worker {i} exited {code} (expected {want}): '
                       f'see {root / f"{run}-{i}.log"}')
  return seconds


def _compare(root: pathlib.Path, runs: dict[str, int]) -> dict:
  """Each process's numbers, and its weights against worker 0's and the reference's."""
  # pylint: disable=import-outside-toplevel
  from tfprune.graph import io as graph_io

  def params(name: str) -> list[bytes]:
    graph = graph_io.load(root / f'{name}.npz')
    return [a.tobytes() for node in graph.nodes for a in node.params.values()]
  reference = json.loads((root / 'one_process-0.json').read_text())
  first = params('multiworker-0')
  record = {}
  for run, workers in runs.items():
    for i in range(workers):
      name = f'{run}-{i}'
      numbers = json.loads((root / f'{name}.json').read_text())
      numbers['exact_zeros'] = all(l['zeros'] == l['required']
                                   for l in numbers['layers'])
      if run != 'one_process':
        numbers['same_bits_as_multiworker_0'] = params(name) == first
      numbers['accuracy_minus_one_process_points'] = round(
          100 * (numbers['accuracy'] - reference['accuracy']), 4)
      record[name] = numbers
  return record


def main(argv):
  del argv
  root = pathlib.Path(_OUT_DIR.value).resolve()
  if _TASK.value is not None:
    _train_worker(root)
    return
  root.mkdir(parents=True, exist_ok=True)
  runs = {'multiworker': _WORKERS.value, 'one_process': 1}
  seconds = {run: round(_run(root, run, workers), 1)
             for run, workers in runs.items()}
  if _CUT_AFTER_EPOCH.value is not None:
    seconds['cut'] = round(_run(root, 'resumed', _WORKERS.value,
                                _CUT_AFTER_EPOCH.value), 1)
    seconds['resumed'] = round(_run(root, 'resumed', _WORKERS.value), 1)
    runs['resumed'] = _WORKERS.value
  record = {'flags': {f.name: f.value for f in (*_TRAINING_FLAGS, _WORKERS,
                                                _CUT_AFTER_EPOCH)},
            'runs': _compare(root, runs)}
  for name, numbers in record['runs'].items():
    zeros = ', '.join(f'{l["zeros"]:,}/{l["size"]:,}' for l in numbers['layers'])
    same = numbers.get('same_bits_as_multiworker_0')
    print(f'{name:>14}: {numbers["replicas"]} replicas from epoch '
          f'{numbers["started_at_epoch"]}, zeros {zeros} '
          f'(TF-MOT count exact: {numbers["exact_zeros"]}), weights '
          f'{"-" if same is None else "same bits" if same else "DIFFER"} as '
          f'multiworker-0, accuracy {100 * numbers["accuracy"]:.2f}% '
          f'({numbers["accuracy_minus_one_process_points"]:+.2f} points)')
  print(f'seconds: {seconds}')
  (root / 'comparison.json').write_text(json.dumps(record, indent=2) + '\n')
  (root / 'timing.json').write_text(json.dumps(
      {'seconds': seconds, 'cpus': len(os.sched_getaffinity(0)),
       'load_average_after': os.getloadavg()}, indent=2) + '\n')


if __name__ == '__main__':
  app.run(main)
