"""Time `obs` (or `wanda`) sweep points per model: this tree against a git revision, alternated.

Each timed point is one point of the sweep (`drivers.sweep.sweep`, what
`tfprune sweep --methods=obs --levels=<k>` runs per level: prune, score on
the test split, count, with the evaluator's trace), in a fresh process
whose TensorFlow import, data load and calibration draw are not timed. Two
times are read from that one point: the whole point, and the pruning step
inside it (the criterion's `prune_obs`/`prune_wanda` call). The processes
run in the order baseline, this tree, baseline, ... so a change of load on
a shared machine hits both sides; the ratio of medians is the result, for
both times, with the CPU seconds (summed over threads) beside the wall
clock. Each side's process imports only its own tree (`python -P`, run in
that tree). Both sides' test accuracies are printed, to check the speed-up
keeps the results. Timings go to the terminal (and `--out`), never into a
result file of the project.

  python experiments/obs_benchmark.py --baseline=main --rounds=2
  python experiments/obs_benchmark.py --baseline=main --models=fashion_cnn --k=80 --rounds=5
"""

import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

from absl import app
from absl import flags

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA_DIR_ENV = 'TFPRUNE_DATA_DIR'

_BASELINE = flags.DEFINE_string('baseline', None, 'Git revision to compare '
                                'against (its tfprune/ tree).', required=True)
# The committed CNNs: weight folder and dataset.
MODELS = {'lenet5': ('weights/lenet5-mnist', 'mnist'),
          'fashion_cnn': ('weights/fashion_cnn-fashion_mnist', 'fashion_mnist')}
_MODELS = flags.DEFINE_multi_enum('models', list(MODELS), list(MODELS),
                                  'Models to time, one after the other.')
_METHOD = flags.DEFINE_enum('method', 'obs', ['obs', 'wanda'], 'Data-aware method.')
_K = flags.DEFINE_float('k', 90, 'Level in percent.')
_CALIBRATION = flags.DEFINE_integer('calibration_size', 2048,
                                    'Calibration examples (seed 0).')
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'Timed points per side.')
_OUT = flags.DEFINE_string('out', None, 'Also write the record as JSON here.')

# Run inside each side's tree: one sweep point, as the sweep runs it; prints
# the point's and its pruning step's seconds (wall clock and CPU) and the
# accuracy.
_WORKER = '''
import json, sys, time
from tfprune.criteria import graph_reconstruction
from tfprune.data import source
from tfprune.drivers import folder_graph, sweep
from tfprune.graph import weights
weights_dir, dataset, method, k, size = sys.argv[1:6]
graph = folder_graph.to_graph(weights.load(weights_dir))
given = source.load(dataset, None, None)
test, train = (folder_graph.shaped(s, graph.input_shape)
               for s in (given.test, given.train))
config = sweep.SweepConfig(
    weights_dir=weights_dir, dataset=dataset, methods=(method,),
    levels=(float(k),), calibration_size=int(size),
    out_dir='not-written')  # sweep.sweep writes nothing
calibration = sweep.calibration(config, train)
step = {}
prune = getattr(graph_reconstruction, 'prune_' + method)
def timed(*args, **kwargs):
  start, cpu = time.perf_counter(), time.process_time()
  pruned = prune(*args, **kwargs)
  step.update(seconds=time.perf_counter() - start,
              cpu=time.process_time() - cpu)
  return pruned
setattr(graph_reconstruction, 'prune_' + method, timed)
start, cpu = time.perf_counter(), time.process_time()
rows = sweep.sweep(config, graph, test, calibration)
print(json.dumps({'point_seconds': time.perf_counter() - start,
                  'point_cpu_seconds': time.process_time() - cpu,
                  'step_seconds': step['seconds'],
                  'step_cpu_seconds': step['cpu'],
                  'accuracy': rows[0].accuracy}))
'''
# (record key, label) of the two times read from each point.
TIMES = (('point', 'whole point'), ('step', 'pruning step'))


def _point(tree: pathlib.Path, model: str) -> dict:
  weights_dir, dataset = MODELS[model]
  env = {**os.environ, 'PYTHONPATH': str(tree), 'TF_CPP_MIN_LOG_LEVEL': '3'}
  if env.get(DATA_DIR_ENV):  # the worker runs in `tree`
    env[DATA_DIR_ENV] = str(pathlib.Path(env[DATA_DIR_ENV]).resolve())
  out = subprocess.run(
      [sys.executable, '-P', '-c', _WORKER, str(REPO / weights_dir), dataset,
       _METHOD.value, str(_K.value), str(_CALIBRATION.value)],
      env=env, cwd=tree, capture_output=True, text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def _compare(model: str, sides: dict) -> dict:
  """Alternated points of `model` on both sides; the record of the comparison."""
  points = {side: [] for side in sides}
  for _ in range(_ROUNDS.value):
    for side, tree in sides.items():
      points[side].append(_point(tree, model))
      p = points[side][-1]
      print(f'{model} {side}: point {p["point_seconds"]:.2f} s '
            f'({p["point_cpu_seconds"]:.2f} s CPU), pruning step '
            f'{p["step_seconds"]:.2f} s ({p["step_cpu_seconds"]:.2f} s CPU), '
            f'accuracy {p["accuracy"]:.4f}', flush=True)
  record = {'model': model, 'weights_dir': MODELS[model][0], 'points': points}
  for key, _ in TIMES:
    for clock in ('seconds', 'cpu_seconds'):
      medians = {side: statistics.median(p[f'{key}_{clock}'] for p in ps)
                 for side, ps in points.items()}
      record[f'median_{key}_{clock}'] = medians
      record[f'{key}_{clock}_ratio'] = medians['baseline'] / medians['current']
  return record


def _summary(r: dict) -> str:
  lines = [f'  {r["model"]}:']
  for key, label in TIMES:
    for side, name in (('baseline', _BASELINE.value), ('current', 'this tree')):
      seconds = ', '.join(f'{p[f"{key}_seconds"]:.2f}' for p in r['points'][side])
      lines.append(
          f'    {label}, {name}: [{seconds}] s, median '
          f'{r[f"median_{key}_seconds"][side]:.2f} s '
          f'({r[f"median_{key}_cpu_seconds"][side]:.2f} s CPU)')
    lines.append(f'    {label}: ratio of medians {r[f"{key}_seconds_ratio"]:.2f}x '
                 f'(CPU {r[f"{key}_cpu_seconds_ratio"]:.2f}x)')
  accuracy = {side: ps[0]['accuracy'] for side, ps in r['points'].items()}
  lines.append(f'    accuracy: {accuracy["baseline"]:.4f} ({_BASELINE.value}), '
               f'{accuracy["current"]:.4f} (this tree)')
  return '\n'.join(lines)


def main(argv):
  del argv
  records = []
  with tempfile.TemporaryDirectory() as folder:
    baseline = pathlib.Path(folder)
    archive = subprocess.run(['git', '-C', str(REPO), 'archive', _BASELINE.value,
                              'tfprune'], capture_output=True, check=True).stdout
    subprocess.run(['tar', '-x', '-C', str(baseline)], input=archive, check=True)
    sides = {'baseline': baseline, 'current': REPO}
    for model in _MODELS.value:
      records.append(_compare(model, sides))
  print(f'{_METHOD.value} at k={_K.value:g}, {_CALIBRATION.value} calibration '
        f'examples, {_ROUNDS.value} alternated points per side '
        f'(load average {os.getloadavg()[0]:.1f}):')
  for r in records:
    print(_summary(r))
  if _OUT.value:
    record = {'baseline': _BASELINE.value, 'method': _METHOD.value,
              'k': _K.value, 'calibration_size': _CALIBRATION.value,
              'rounds': _ROUNDS.value, 'models': records,
              'load_average': os.getloadavg()}
    pathlib.Path(_OUT.value).write_text(json.dumps(record, indent=2) + '\n')


if __name__ == '__main__':
  app.run(main)
