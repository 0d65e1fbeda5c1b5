"""Gradual fine-tuning on N local worker processes against one process.

Runs the same `tfprune gradual` command twice: once with
`--strategy=multiworker` in `--workers` processes on this machine (TF_CONFIG
names them on 127.0.0.1; in a private network namespace when `unshare -rn`
is allowed, so TensorFlow's gRPC servers are reachable from nowhere else),
and once with `--strategy=default` in one process. Prints both runs'
results.csv rows and the accuracy difference in points.

  python experiments/multi_worker_gradual.py --out_dir=runs/multi-worker
  python experiments/multi_worker_gradual.py --out_dir=/tmp/mw \\
      --args=--procedures=gradual,--targets=90,--epochs=2,--train_limit=10000
"""

import csv
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
_ARGS = flags.DEFINE_list(
    'args', ['--weights_dir=weights/mlp-mnist', '--procedures=gradual',
             '--targets=90', '--export_tflite=false'],
    'The flags of `tfprune gradual` (comma-separated; --strategy and '
    '--out_dir are added).')
_OUT_DIR = flags.DEFINE_string('out_dir', None, 'Folder for both runs.',
                               required=True)


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


def _gradual(strategy: str, out_dir: pathlib.Path) -> list[str]:
  return [sys.executable, '-m', 'tfprune', 'gradual', *_ARGS.value,
          f'--strategy={strategy}', f'--out_dir={out_dir}', '--verbose=0']


def _multi_worker(out_dir: pathlib.Path) -> float:
  cluster = {'worker': [f'127.0.0.1:{p}' for p in _ports(_WORKERS.value)]}
  commands = []
  for i in range(_WORKERS.value):
    tf_config = json.dumps({'cluster': cluster,
                            'task': {'type': 'worker', 'index': i}})
    commands.append(f'TF_CONFIG={shlex.quote(tf_config)} '
                    f'{shlex.join(_gradual("multiworker", out_dir))} '
                    f'> {out_dir}.worker{i}.log 2>&1')
  script = ' & '.join(commands) + ' & wait'
  isolation = _isolation()
  if isolation:
    script = 'ip link set lo up; ' + script
  start = time.perf_counter()
  subprocess.run([*isolation, 'sh', '-c', script], check=True)
  return time.perf_counter() - start


def _results(out_dir: pathlib.Path) -> list[dict]:
  with (out_dir / 'results.csv').open(newline='') as f:
    return list(csv.DictReader(f))


def main(argv):
  del argv
  root = pathlib.Path(_OUT_DIR.value)
  root.mkdir(parents=True, exist_ok=True)
  seconds = {'multiworker': round(_multi_worker(root / 'multiworker'), 1)}
  start = time.perf_counter()
  subprocess.run(_gradual('default', root / 'one_process'), check=True,
                 stdout=subprocess.DEVNULL)
  seconds['one_process'] = round(time.perf_counter() - start, 1)
  record = {'args': _ARGS.value, 'workers': _WORKERS.value,
            'seconds': seconds, 'cpus': len(os.sched_getaffinity(0)),
            'runs': {}}
  for name in ('multiworker', 'one_process'):
    record['runs'][name] = _results(root / name)
    for row in record['runs'][name]:
      print(f'{name:>12}: {row["procedure"]}-{row["granularity"]} target '
            f'{row["target"]}%: sparsity {float(row["sparsity"]):.4%}, '
            f'accuracy {float(row["accuracy"]):.2%}')
  for a, b in zip(*record['runs'].values()):
    print(f'accuracy difference {a["procedure"]} {a["target"]}%: '
          f'{100 * (float(a["accuracy"]) - float(b["accuracy"])):+.2f} points')
  (root / 'comparison.json').write_text(json.dumps(record, indent=2) + '\n')


if __name__ == '__main__':
  app.run(main)
