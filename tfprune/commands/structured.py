"""tfprune structured: dense vs channel-pruned (compacted) Keras model: parameters, MACs, file size, latency.

Builds ResNet-18 (width 0.25) and MobileNetV2 (alpha 0.35) at 32x32x3 with
random weights, removes k% of every dependency group's channels with `unit`
(`transforms.graph_compaction`) and times the dense and the compacted tf_keras
models in alternating blocks in one process
(`benchmark.paired_model_times`, median of each). Example:

  tfprune structured --k=50 --runs=200
"""


import pathlib
import tempfile

from absl import flags  # pylint: disable=g-import-not-at-top

from tfprune.drivers import benchmark  # pylint: disable=g-import-not-at-top
from tfprune.drivers import graph_sweep  # pylint: disable=g-import-not-at-top
from tfprune.keras_io import build  # pylint: disable=g-import-not-at-top
from tfprune.keras_io import importer  # pylint: disable=g-import-not-at-top
from tfprune.keras_io import models  # pylint: disable=g-import-not-at-top
from tfprune.keras_compat import keras  # pylint: disable=g-import-not-at-top
from tfprune.transforms import graph_compaction  # pylint: disable=g-import-not-at-top

_K = flags.DEFINE_float('k', 50, 'Percentage of each group\'s channels removed.')
_RUNS = flags.DEFINE_integer('runs', 200, 'Timed calls per model and batch size.')
SHAPE = (32, 32, 3)
MODELS = {
    'resnet18-w0.25': lambda: models.build_resnet18(SHAPE, 10, width=0.25),
    'mobilenet_v2-a0.35': lambda: keras.applications.MobileNetV2(
        input_shape=SHAPE, alpha=0.35, weights=None, classes=10),
}


def _size(model) -> int:
  with tempfile.TemporaryDirectory() as folder:
    path = pathlib.Path(folder) / 'm.keras'
    model.save(path)
    return path.stat().st_size


def main(argv):
  del argv
  print('| model | params | MACs | .keras bytes | batch 1 ms | batch 256 ms |')
  print('|---|---|---|---|---|---|')
  for name, make in MODELS.items():
    keras.utils.set_random_seed(0)
    graph = importer.from_keras(make())
    _, small = graph_compaction.prune_and_compact(graph, 'unit', _K.value)
    pair = [build.to_keras(g, 'tf_keras') for g in (graph, small)]
    times = benchmark.paired_model_times(*pair, SHAPE, (1, 256), _RUNS.value)
    for i, (label, g) in enumerate((('dense', graph), (f'unit k={_K.value:g}', small))):
      print(f'| {name} {label} | {g.num_params:,} | '
            f'{graph_sweep.macs(g, False):,} | {_size(pair[i]):,} | '
            f'{1e3 * times[1][i]:.2f} | {1e3 * times[256][i]:.1f} |')
