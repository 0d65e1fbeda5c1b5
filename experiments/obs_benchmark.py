"""Time one `obs` (or `wanda`) point per model: this tree against a git revision, alternated.

Each timed point runs in a fresh process (TensorFlow's import and the data
load are not timed: only the pruning call is), in the order
baseline, current, baseline, current, ... so a change of load on a shared
machine hits both sides; the medians' ratio is the result. Every point's
seconds and both sides' test accuracies are printed, to check the speed-up
keeps the results. Timings go to the terminal (and `--out`), never into a
result file of the project.

  python experiments/obs_benchmark.py --baseline=13f6c37
  python experiments/obs_benchmark.py --baseline=13f6c37 --models=fashion_cnn --k=80 --rounds=5
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

# Run inside each side's tree: prune once, print the seconds (wall clock, and
# CPU summed over threads: on a loaded machine the wall clock of a
# multi-threaded side suffers most) and the accuracy.
_WORKER = '''
import json, sys, time
from tfprune import api
from tfprune.criteria import graph_pruning, graph_reconstruction, reconstruction
from tfprune.data import datasets
from tfprune.graph import evaluator
weights_dir, dataset, method, k, size = sys.argv[1:6]
graph = api.load(weights_dir)
names = graph_pruning.prunable(graph)
x = reconstruction.calibration_inputs(
    datasets.load(dataset, 'train', None).images, int(size), 0)
prune = getattr(graph_reconstruction, 'prune_' + method)
start, cpu = time.perf_counter(), time.process_time()
pruned = prune(graph, float(k), names, x)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
test = datasets.load(dataset, 'test', None)
print(json.dumps({'seconds': seconds, 'cpu_seconds': cpu,
                  'accuracy': evaluator.Evaluator(graph).accuracy(
                      test.images, test.labels, pruned)}))
'''


def _point(tree: pathlib.Path, model: str) -> dict:
  weights_dir, dataset = MODELS[model]
  env = {**os.environ, 'PYTHONPATH': str(tree), 'TF_CPP_MIN_LOG_LEVEL': '3'}
  out = subprocess.run(
      [sys.executable, '-c', _WORKER, str(REPO / weights_dir), dataset,
       _METHOD.value, str(_K.value), str(_CALIBRATION.value)],
      env=env, capture_output=True, text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def _compare(model: str, sides: dict) -> dict:
  """Alternated points of `model` on both sides; the record of the comparison."""
  points = {side: [] for side in sides}
  for _ in range(_ROUNDS.value):
    for side, tree in sides.items():
      points[side].append(_point(tree, model))
      point = points[side][-1]
      print(f'{model} {side}: {point["seconds"]:.2f} s ({point["cpu_seconds"]:.2f}'
            f' s CPU), accuracy {point["accuracy"]:.4f}', flush=True)
  medians = {side: statistics.median(p['seconds'] for p in ps)
             for side, ps in points.items()}
  cpu = {side: statistics.median(p['cpu_seconds'] for p in ps)
         for side, ps in points.items()}
  return {'model': model, 'weights_dir': MODELS[model][0], 'points': points,
          'median_seconds': medians, 'median_cpu_seconds': cpu,
          'speedup': medians['baseline'] / medians['current'],
          'cpu_speedup': cpu['baseline'] / cpu['current']}


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
    seconds = {side: ', '.join(f'{p["seconds"]:.2f}' for p in ps)
               for side, ps in r['points'].items()}
    accuracy = {side: ps[0]['accuracy'] for side, ps in r['points'].items()}
    print(f'  {r["model"]}: baseline {_BASELINE.value} [{seconds["baseline"]}] '
          f's, median {r["median_seconds"]["baseline"]:.2f} s, accuracy '
          f'{accuracy["baseline"]:.4f}\n'
          f'  {" " * len(r["model"])}  this tree [{seconds["current"]}] s, '
          f'median {r["median_seconds"]["current"]:.2f} s, accuracy '
          f'{accuracy["current"]:.4f}\n'
          f'  {" " * len(r["model"])}  ratio of medians {r["speedup"]:.2f}x '
          f'(CPU seconds: {r["median_cpu_seconds"]["baseline"]:.2f} -> '
          f'{r["median_cpu_seconds"]["current"]:.2f}, {r["cpu_speedup"]:.2f}x)')
  if _OUT.value:
    record = {'baseline': _BASELINE.value, 'method': _METHOD.value,
              'k': _K.value, 'calibration_size': _CALIBRATION.value,
              'rounds': _ROUNDS.value, 'models': records,
              'load_average': os.getloadavg()}
    pathlib.Path(_OUT.value).write_text(json.dumps(record, indent=2) + '\n')


if __name__ == '__main__':
  app.run(main)
