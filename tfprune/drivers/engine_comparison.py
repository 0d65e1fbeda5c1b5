"""The same gradual pruning run through TF-MOT (tf_keras) and `tfprune.keras` (Keras 3, TF and JAX).

`run(config)` trains one MLP weight folder per engine and target with the
same starting weights, schedule (`training.schedules.plan_gradual`: Zhu &
Gupta from step 0 to about 2/3 of training, 40 mask updates), optimizer
(Adam, cosine decay), batches and layers (the hidden Dense kernels):

- `tfmot`: `prune_low_magnitude` wrappers and `UpdatePruningStep`;
- `keras-tf`, `keras-jax`: the `tfprune.keras.Pruning` callback, Keras 3 on
  the TensorFlow or the JAX backend.

The defaults are those of the gradual study's TF-MOT run that the
comparison is measured against (`img/gradual-lr1e-3`, `gradual-weight-99`:
8 epochs, batch 128, learning rate 1e-3, 97.87% at k=99), and the batches
are that run's: each epoch's order is the permutation tf_keras's
`Model.fit(shuffle=True)` draws after `keras.utils.set_random_seed(seed)`
(`training.resumable.epoch_batches`, read once on the examples' indices,
`batch_order`), so the engines differ by their engine only.

Keras's backend is fixed when it is first imported, so every run is a fresh
process (`python -m tfprune.drivers.engine_comparison RUN_JSON`). For each
target the engines' processes start together and train one epoch at a time
in turn (A B C, then B C A, ...: only one trains at any moment), so their
seconds per epoch are measured under the same machine load; the first epoch
of each run (tracing) is left out of the medians.

Writes `results.csv` (per run: test accuracy, zeros and size of every pruned
kernel), `timing.json` (seconds per epoch per run, medians, and the ratio of
each Keras engine's median to TF-MOT's) and `engines_config.json`.
"""

import dataclasses
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import time
from typing import Callable

import numpy as np

from tfprune import atomic
from tfprune import registry
from tfprune.errors import TfpruneError

ENGINES = {'tfmot': ('tf_keras', 'tensorflow'), 'keras-tf': ('keras3', 'tensorflow'),
           'keras-jax': ('keras3', 'jax')}
CONFIG_NAME = 'engines_config.json'
ORDER_NAME = 'batch_order.npy'
RESULTS_NAME = 'results.csv'
TIMING_NAME = 'timing.json'


@dataclasses.dataclass(frozen=True)
class EngineComparison:
  """One comparison; saved as `engines_config.json`.

  Attributes:
    out_dir: output folder.
    weights_dir: a dense-chain `.npy` weight folder (the MNIST MLP).
    data_dir: local data folder (None: `$TFPRUNE_DATA_DIR`).
    engines: keys of `ENGINES`.
    targets: sparsities of each pruned layer, in percent.
    epochs: training epochs per run.
    batch_size: batch size.
    learning_rate: initial Adam learning rate (cosine decay to 0).
    seed: seeds the batch order and Keras's random state.
    train_limit: train on the first N training images only (None: all).
  """
  out_dir: str
  weights_dir: str
  data_dir: str | None = None
  engines: tuple[str, ...] = tuple(ENGINES)
  targets: tuple[float, ...] = (90.0, 99.0)
  epochs: int = 8
  batch_size: int = 128
  learning_rate: float = 1e-3
  seed: int = 0
  train_limit: int | None = None

  def __post_init__(self):
    for engine in self.engines:
      registry.check_choice(engine, ENGINES, 'engine')
    object.__setattr__(self, 'engines', tuple(self.engines))
    object.__setattr__(self, 'targets', tuple(float(t) for t in self.targets))
    for t in self.targets:
      if not 0 < t < 100:
        raise TfpruneError(f'target must be in (0, 100), got {t:g}')
    if self.epochs < 2 or self.batch_size < 1:
      raise TfpruneError('epochs must be at least 2 (the first is not timed) '
                         'and batch_size at least 1')


def batch_order(config: EngineComparison, examples: int) -> np.ndarray:
  """Row e: the order of the training examples in epoch e, as the gradual study's TF-MOT runs see them.

  `training.resumable.epoch_batches` (the batches of tf_keras's
  `Model.fit(shuffle=True)`) after `keras.utils.set_random_seed(seed)`,
  drawn on the examples' indices.
  """
  # pylint: disable=import-outside-toplevel
  from tfprune.data import datasets
  from tfprune.keras_compat import keras as tf_keras
  from tfprune.training import resumable
  tf_keras.utils.set_random_seed(config.seed)
  index = np.arange(examples)
  batches, _ = resumable.epoch_batches(datasets.Split(index, index),
                                       config.batch_size, config.epochs, 0)
  order = np.concatenate([labels.numpy() for _, labels in batches])
  return order.reshape(config.epochs, examples)


def run_name(engine: str, target: float) -> str:
  return f'{engine}-{target:g}'


def train_run(config: EngineComparison, engine: str, target: float,
              order: np.ndarray, turn: Callable[[], None] = lambda: None,
              done: Callable[[float], None] = lambda seconds: None) -> dict:
  """One run in this process (its Keras backend must be the engine's).

  `order[e]` is the order of the training examples in epoch e (`batch_order`).

  `turn()` is called before each epoch (it waits for this engine's turn) and
  `done(seconds)` after it.

  Returns:
    {'accuracy', 'layers': {name: [zeros, size]}, 'epoch_seconds': [...]}.
  """
  # pylint: disable=import-outside-toplevel
  from tfprune import keras_compat
  from tfprune.data import datasets
  from tfprune.graph import weights
  from tfprune.keras_io import build
  from tfprune.training import gradual
  from tfprune.training import graph_gradual
  from tfprune.training import schedules
  framework, backend = ENGINES[engine]
  K = keras_compat.keras_module(framework)
  if framework == 'keras3' and K.backend.backend() != backend:
    raise TfpruneError(f'engine {engine} needs KERAS_BACKEND={backend}, this '
                       f'process runs {K.backend.backend()}')
  K.utils.set_random_seed(config.seed)
  graph = weights.load_graph(config.weights_dir)
  train = datasets.load('mnist', 'train', config.data_dir, config.train_limit)
  test = datasets.load('mnist', 'test', config.data_dir)
  x, y = train.images.reshape(len(train), -1), train.labels
  steps = config.epochs * math.ceil(len(x) / config.batch_size)
  plan = schedules.plan_gradual(steps)
  names = [n.name for n in graph.weighted()][:-1]
  model = build.to_keras(graph, framework)
  if engine == 'tfmot':
    import tensorflow_model_optimization as tfmot
    model = gradual.wrap(model, names, schedules.polynomial(target / 100, plan))
    pruning = tfmot.sparsity.keras.UpdatePruningStep()
  else:
    from tfprune import keras as tfk
    pruning = tfk.Pruning(tfk.PolynomialDecay(
        0.0, target / 100, plan.begin_step, plan.end_step,
        frequency=plan.frequency), layers=names)
  model.compile(
      optimizer=K.optimizers.Adam(K.optimizers.schedules.CosineDecay(
          config.learning_rate, steps)),
      loss=K.losses.SparseCategoricalCrossentropy(
          from_logits=graph_gradual.from_logits(graph)), metrics=['accuracy'])
  seconds = []

  class Timer(K.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
      self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
      seconds.append(time.perf_counter() - self.start)
  for perm in order:
    turn()
    model.fit(x[perm], y[perm], batch_size=config.batch_size, epochs=1,
              shuffle=False, verbose=0, callbacks=[pruning, Timer()])
    done(seconds[-1])
  if engine == 'tfmot':
    model = gradual.strip(model)
  else:
    model = tfk.strip_pruning(model)
  logits = model.predict(test.images.reshape(len(test), -1), batch_size=1000,
                         verbose=0)
  accuracy = float(np.mean(np.argmax(logits, axis=1) == test.labels))
  layers = {}
  for name in names:
    kernel = np.asarray(build.variables(model, graph.node(name))['kernel'])
    layers[name] = [int(np.sum(kernel == 0)), int(kernel.size)]
  return {'accuracy': accuracy, 'layers': layers, 'epoch_seconds': seconds}


_GO, _DONE = 'go', '@epoch-done'


def _spawn(config: EngineComparison, engine: str, target: float,
           path: pathlib.Path) -> subprocess.Popen:
  env = {**os.environ, 'KERAS_BACKEND': ENGINES[engine][1]}
  request = json.dumps({'config': dataclasses.asdict(config), 'engine': engine,
                        'target': target, 'out': str(path),
                        'order': str(path.parent / ORDER_NAME)})
  return subprocess.Popen([sys.executable, '-m', __name__, request], env=env,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _epoch(process: subprocess.Popen, name: str) -> None:
  """Lets `process` train one epoch and waits until it has."""
  process.stdin.write(_GO + '\n')
  process.stdin.flush()
  for line in process.stdout:
    if line.startswith(_DONE):
      print(f'{name}: epoch done in {line.split()[-1]} s', flush=True)
      return
  raise TfpruneError(f'run {name} ended before its epoch (exit status '
                     f'{process.wait()}); its error is printed above')


def _target(config: EngineComparison, target: float, runs: pathlib.Path) -> dict:
  """All engines at `target`, epochs in turn; their records by engine."""
  paths = {e: runs / f'{run_name(e, target)}.json' for e in config.engines}
  processes = {e: _spawn(config, e, target, paths[e]) for e in config.engines}
  try:
    for epoch in range(config.epochs):
      shift = epoch % len(config.engines)
      for engine in config.engines[shift:] + config.engines[:shift]:
        _epoch(processes[engine], run_name(engine, target))
    for engine, process in processes.items():
      process.stdin.close()
      if process.wait():
        raise TfpruneError(f'run {run_name(engine, target)} failed (exit status '
                           f'{process.returncode}); its error is printed above')
  finally:
    for process in processes.values():
      if process.poll() is None:
        process.kill()
  return {e: json.loads(paths[e].read_text()) for e in config.engines}


def results_csv(records: dict) -> str:
  """One row per run: engine, target, accuracy, then zeros/size per layer."""
  lines = ['engine,target,accuracy,layer_zeros']
  for (engine, target), r in records.items():
    zeros = ' '.join(f'{n}={z}/{s}' for n, (z, s) in r['layers'].items())
    lines.append(f'{engine},{target:g},{r["accuracy"]:.4f},{zeros}')
  return '\n'.join(lines) + '\n'


def timing(records: dict, engines) -> dict:
  """Seconds per epoch, medians, and each engine over TF-MOT.

  The first epoch of every run (tracing) is left out. `ratio_to_tfmot` is
  the ratio of medians; `paired_ratio_to_tfmot` the median, over the epochs
  of each target, of an engine's seconds over TF-MOT's in the same round.
  """
  per_engine = {e: [] for e in engines}
  for (engine, _), r in records.items():
    per_engine[engine] += r['epoch_seconds'][1:]
  medians = {e: statistics.median(s) for e, s in per_engine.items() if s}
  out = {'epoch_seconds': {run_name(*k): r['epoch_seconds']
                           for k, r in records.items()},
         'median_epoch_seconds': medians}
  if 'tfmot' in medians:
    out['ratio_to_tfmot'] = {e: medians[e] / medians['tfmot'] for e in medians}
    paired = {e: [] for e in engines}
    for (engine, target), r in records.items():
      base = records[('tfmot', target)]['epoch_seconds']
      paired[engine] += [a / b for a, b in zip(r['epoch_seconds'][1:], base[1:])]
    out['paired_ratio_to_tfmot'] = {e: statistics.median(v)
                                    for e, v in paired.items() if v}
  return out


def summary(records: dict, times: dict) -> str:
  """What a reader checks, as text: accuracies and their spread per target,
  pruned/total weights per layer, seconds per epoch and the ratios to TF-MOT."""
  lines, targets = [], sorted({t for _, t in records})
  for target in targets:
    runs = {e: r for (e, t), r in records.items() if t == target}
    spread = 100 * (max(r['accuracy'] for r in runs.values())
                    - min(r['accuracy'] for r in runs.values()))
    lines.append(f'k={target:g}: accuracy spread {spread:.2f} points')
    for engine, r in runs.items():
      zeros = '  '.join(f'{n} {z}/{s}' for n, (z, s) in r['layers'].items())
      lines.append(f'  {engine:<10} {100 * r["accuracy"]:6.2f}%   zeros: {zeros}')
  lines.append('seconds per epoch (median, first epoch of each run left out): '
               + ', '.join(f'{e} {s:.2f}' for e, s in
                           times['median_epoch_seconds'].items()))
  for key, what in (('ratio_to_tfmot', 'ratio of medians'),
                    ('paired_ratio_to_tfmot', 'median of paired epoch ratios')):
    if key in times:
      lines.append(f'over TF-MOT ({what}): ' + ', '.join(
          f'{e} {r:.3f}' for e, r in times[key].items() if e != 'tfmot'))
  return '\n'.join(lines) + '\n'


def run(config: EngineComparison) -> dict:
  """Every run of `config`, each in a fresh process, epochs in turn; writes the outputs."""
  out = pathlib.Path(config.out_dir)
  (out / 'runs').mkdir(parents=True, exist_ok=True)
  atomic.write_text(out / CONFIG_NAME,
                    json.dumps(dataclasses.asdict(config), indent=2) + '\n')
  # pylint: disable-next=import-outside-toplevel
  from tfprune.data import datasets
  examples = len(datasets.load('mnist', 'train', config.data_dir,
                               config.train_limit))
  np.save(out / 'runs' / ORDER_NAME, batch_order(config, examples))
  records = {}
  for target in config.targets:
    for engine, record in _target(config, target, out / 'runs').items():
      records[(engine, target)] = record
  atomic.write_text(out / RESULTS_NAME, results_csv(records))
  atomic.write_text(out / TIMING_NAME,
                    json.dumps(timing(records, config.engines), indent=2) + '\n')
  return records


def _worker(request: str) -> None:
  spec = json.loads(request)
  config = EngineComparison(**spec['config'])

  def turn():
    if sys.stdin.readline().strip() != _GO:
      raise SystemExit(1)  # the parent stopped the comparison

  def done(seconds):
    print(f'{_DONE} {seconds:.3f}', flush=True)
  record = train_run(config, spec['engine'], spec['target'],
                     np.load(spec['order']), turn, done)
  atomic.write_text(pathlib.Path(spec['out']), json.dumps(record) + '\n')


if __name__ == '__main__':
  _worker(sys.argv[1])
