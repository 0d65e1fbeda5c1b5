"""Wall time of a command under --executor=serial and --executor=ray, paired.

Runs the same `tfprune` command in fresh processes, alternating serial and
Ray (S R S R ...), so both pay their imports and Ray its start-up, and a
change of load on a shared machine hits both sides. Prints each run's wall
seconds, the ratio of the medians (Ray / serial) and whether every run's CSV
is the same bytes as the first serial one; writes the same as JSON.

It also prints the CPU seconds of each serial run (user + system, all its
threads) per wall second: the cores the serial run keeps busy. On an
otherwise idle machine, no executor doing the same work on N cores can take
less than that number / N of the serial time, whatever its overheads.

  python experiments/scale_out_benchmark.py --pairs=3 --out=runs/scale-out.json
  python experiments/scale_out_benchmark.py --command=sweep --csv=sweep.csv \\
      --args=--weights_dir=weights/fashion_cnn-fashion_mnist,--dataset=fashion_mnist,--methods=weight,unit,wanda
"""

import json
import os
import pathlib
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

_COMMAND = flags.DEFINE_string('command', 'sensitivity', 'The tfprune command.')
_ARGS = flags.DEFINE_list(
    'args', ['--weights_dir=weights/fashion_cnn-fashion_mnist',
             '--dataset=fashion_mnist'],
    'Its flags (comma-separated; --out_dir and --executor are added).')
_CSV = flags.DEFINE_string('csv', 'sensitivity.csv',
                           'The result file compared byte for byte.')
_PAIRS = flags.DEFINE_integer('pairs', 3, 'Serial/Ray pairs to run.')
_OUT = flags.DEFINE_string('out', None, 'Write the times as JSON here too.')


def _cpu_seconds() -> float:
  """User + system seconds of this process's finished children."""
  usage = resource.getrusage(resource.RUSAGE_CHILDREN)
  return usage.ru_utime + usage.ru_stime


def _run(executor: str, out_dir: pathlib.Path) -> tuple[float, float]:
  """Wall seconds of one run, and the CPU seconds of its own process (a Ray
  run's workers are not its children: not counted)."""
  command = [sys.executable, '-m', 'tfprune', _COMMAND.value, *_ARGS.value,
             f'--executor={executor}', f'--out_dir={out_dir}']
  cpu, start = _cpu_seconds(), time.perf_counter()
  done = subprocess.run(command, stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE, text=True, check=False)
  seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
  if done.returncode:
    log = pathlib.Path(f'{out_dir}.stderr.txt')
    log.write_text(done.stderr)
    shutil.copy(log, pathlib.Path.cwd() / f'scale_out_failed_{out_dir.name}.txt')
    raise SystemExit(f'{" ".join(command)} exited {done.returncode}: see '
                     f'scale_out_failed_{out_dir.name}.txt')
  return seconds, cpu


def main(argv):
  del argv
  seconds = {'serial': [], 'ray': []}
  serial_cores = []
  same = True
  with tempfile.TemporaryDirectory() as tmp:
    reference = None
    for pair in range(_PAIRS.value):
      for executor in ('serial', 'ray'):
        out_dir = pathlib.Path(tmp) / f'{executor}-{pair}'
        wall, cpu = _run(executor, out_dir)
        seconds[executor].append(round(wall, 2))
        cores = ''
        if executor == 'serial':
          serial_cores.append(round(cpu / wall, 3))
          cores = f' ({cpu:.1f} CPU s: {serial_cores[-1]:.2f} cores busy)'
        data = (out_dir / _CSV.value).read_bytes()
        reference = reference or data
        same = same and data == reference
        print(f'{executor:>6} run {pair + 1}: {wall:.1f} s{cores}', flush=True)
  ratio = statistics.median(seconds['ray']) / statistics.median(seconds['serial'])
  cpus = len(os.sched_getaffinity(0))
  bound = statistics.median(serial_cores) / cpus
  record = {'command': ['tfprune', _COMMAND.value, *_ARGS.value],
            'seconds': seconds, 'ratio_of_medians': round(ratio, 3),
            'serial_cores_busy': serial_cores,
            'lowest_possible_ratio': round(bound, 3),
            'csv_identical': same, 'cpus': cpus,
            'load_average_after': os.getloadavg()}
  print(f'ray / serial (ratio of medians): {ratio:.3f}; CSVs identical: {same}')
  print(f'the serial runs kept {statistics.median(serial_cores):.2f} of {cpus} '
        f'cores busy (median): on an otherwise idle machine, no executor on '
        f'{cpus} cores can go below {bound:.2f} of their time')
  if _OUT.value:
    pathlib.Path(_OUT.value).write_text(json.dumps(record, indent=2) + '\n')


if __name__ == '__main__':
  app.run(main)
