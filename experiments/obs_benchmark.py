"""Time one `obs` (or `wanda`) point on a graph: this tree against a git revision, alternated.

Each timed point runs in a fresh process (TensorFlow's import and the data
load are not timed: only the pruning call is), in the order
baseline, current, baseline, current, ... so a change of load on a shared
machine hits both sides; the medians' ratio is the result. Both sides'
test accuracies are printed, to check the speed-up keeps the results.

  python experiments/obs_benchmark.py --baseline=fc76411 --weights_dir=weights/lenet5-mnist
  python experiments/obs_benchmark.py --baseline=fc76411 --weights_dir=weights/fashion_cnn-fashion_mnist --dataset=fashion_mnist --k=80
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
_WEIGHTS_DIR = flags.DEFINE_string('weights_dir', 'weights/lenet5-mnist',
                                   'CNN weight folder.')
_DATASET = flags.DEFINE_string('dataset', 'mnist', 'Dataset of the folder.')
_METHOD = flags.DEFINE_enum('method', 'obs', ['obs', 'wanda'], 'Data-aware method.')
_K = flags.DEFINE_float('k', 90, 'Level in percent.')
_CALIBRATION = flags.DEFINE_integer('calibration_size', 2048,
                                    'Calibration examples (seed 0).')
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'Timed points per side.')
_OUT = flags.DEFINE_string('out', None, 'Also write the record as JSON here.')

# Run inside each side's tree: prune once, print seconds and accuracy.
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
start = time.perf_counter()
pruned = prune(graph, float(k), names, x)
seconds = time.perf_counter() - start
test = datasets.load(dataset, 'test', None)
print(json.dumps({'seconds': seconds, 'accuracy': evaluator.Evaluator(
    graph).accuracy(test.images, test.labels, pruned)}))
'''


def _point(tree: pathlib.Path) -> dict:
  env = {**os.environ, 'PYTHONPATH': str(tree), 'TF_CPP_MIN_LOG_LEVEL': '3'}
  out = subprocess.run(
      [sys.executable, '-c', _WORKER, str(REPO / _WEIGHTS_DIR.value),
       _DATASET.value, _METHOD.value, str(_K.value), str(_CALIBRATION.value)],
      env=env, capture_output=True, text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as folder:
    baseline = pathlib.Path(folder)
    archive = subprocess.run(['git', '-C', str(REPO), 'archive', _BASELINE.value,
                              'tfprune'], capture_output=True, check=True).stdout
    subprocess.run(['tar', '-x', '-C', str(baseline)], input=archive, check=True)
    sides = {'baseline': baseline, 'current': REPO}
    points = {side: [] for side in sides}
    for _ in range(_ROUNDS.value):
      for side, tree in sides.items():
        points[side].append(_point(tree))
        print(side, points[side][-1], flush=True)
  medians = {side: statistics.median(p['seconds'] for p in ps)
             for side, ps in points.items()}
  record = {'baseline': _BASELINE.value, 'weights_dir': _WEIGHTS_DIR.value,
            'method': _METHOD.value, 'k': _K.value,
            'calibration_size': _CALIBRATION.value, 'points': points,
            'median_seconds': medians,
            'speedup': medians['baseline'] / medians['current'],
            'load_average': os.getloadavg()}
  print(f'{_METHOD.value} on {_WEIGHTS_DIR.value} at k={_K.value:g}: median '
        f'{medians["baseline"]:.1f} s (baseline {_BASELINE.value}) -> '
        f'{medians["current"]:.1f} s (this tree), {record["speedup"]:.2f}x; '
        f'accuracies {points["baseline"][0]["accuracy"]:.4f} -> '
        f'{points["current"][0]["accuracy"]:.4f}')
  if _OUT.value:
    pathlib.Path(_OUT.value).write_text(json.dumps(record, indent=2) + '\n')


if __name__ == '__main__':
  app.run(main)
