"""Study A: global magnitude pruning of the Fashion-MNIST CNN, one-shot and gradual.

For each level k (percent of all conv and dense kernel weights, one threshold
for the whole network) the trained CNN is pruned:
  - `oneshot`: the bottom k% by |w| are zeroed, no retraining;
  - `gradual`: starting again from the trained weights, the global mask grows
    to k% along a cubic schedule while the network finetunes
    (`finetune.GlobalGradual`), then finetunes at k%.
The network is pruned and scored as a graph (`from_keras` of the Keras
model, verified against it): the global mask is `allocators.global_masks`
over the kernels of every weighted node, applied by
`graph_pruning.apply_masks`, and the graph evaluator scores it. Every row
records the measured number of zero kernel weights, so a schedule that pruned
nothing cannot pass unnoticed. Writes study_a.csv (exact: an identical run
writes identical bytes), timing.json (the seconds of every row, and the
machine), study_a_config.json and study_a.png, together
(`atomic.staging`).
"""

import csv
import dataclasses
import json
import pathlib
import time

import numpy as np

from tfprune import atomic
from tfprune.allocation import allocators
from tfprune.criteria import graph_pruning
from tfprune.criteria import pruning
from tfprune.data import datasets
from tfprune.errors import TfpruneError
from tfprune.graph import weights
from tfprune.graph.evaluator import Evaluator
from tfprune.graph.ir import Graph
from tfprune.keras_compat import keras
from tfprune.keras_io import models
from tfprune.keras_io.importer import from_keras
from experiments.studies import timing
from tfprune.training import finetune

DEFAULT_LEVELS = (0.01, 0.1, 1, 10, 25, 50, 75, 90, 95, 98, 99)
COLUMNS = ('schedule', 'k', 'accuracy', 'drop_points', 'pruned_weights',
           'measured_sparsity', 'max_pruned_abs')


@dataclasses.dataclass(frozen=True)
class StudyAConfig:
  """Study A settings; saved as study_a_config.json.

  Attributes:
    weights_dir: trained `fashion_cnn` weight folder.
    out_dir: folder for the CSV, config and plot.
    dataset: dataset of the test (and finetuning) data.
    data_dir: local data folder (None: `$TFPRUNE_DATA_DIR`, then tfds).
    levels: global levels k in percent.
    gradual: also run the gradual finetuning at each level.
    finetune_epochs: epochs of gradual finetuning per level.
    finetune_lr: initial Adam learning rate of the finetuning.
    prune_steps: mask updates of the gradual schedule.
    train_limit: finetune on the first N training examples (None: all).
    test_limit: evaluate on the first N test examples (None: all).
    seed: seeds the finetuning.
  """
  weights_dir: str
  out_dir: str
  dataset: str = 'fashion_mnist'
  data_dir: str | None = None
  levels: tuple[float, ...] = DEFAULT_LEVELS
  gradual: bool = True
  finetune_epochs: int = 2
  finetune_lr: float = 1e-4
  prune_steps: int = 4
  train_limit: int | None = None
  test_limit: int | None = None
  seed: int = 0

  def __post_init__(self):
    datasets.get(self.dataset)
    if not self.levels:
      raise TfpruneError('give at least one level with --levels')
    for k in self.levels:
      pruning.check_level(k)
    finetune.FitConfig(self.finetune_epochs, learning_rate=self.finetune_lr)
    if self.finetune_epochs < 1:  # its rows compare fine-tuned networks
      raise TfpruneError(
          f'finetune_epochs must be at least 1 (Study A measures fine-tuned '
          f'networks), got {self.finetune_epochs}: pass e.g. --finetune_epochs=2')
    for name in ('train_limit', 'test_limit'):
      value = getattr(self, name)
      if value is not None and value < 1:
        raise TfpruneError(f'{name} must be at least 1, got {value}')


def _load(config: StudyAConfig):
  folder = weights.load(config.weights_dir)
  # Study A is about the Fashion-MNIST CNN: other weights would give numbers
  # that look like results (an MNIST MLP scored 4.4%) but answer nothing.
  weights.check_made_for(folder, config.weights_dir, config.dataset,
                         'fashion_cnn')
  spec = datasets.get(config.dataset)
  if not _fits(folder, spec):
    raise TfpruneError(
        f'the weights in {config.weights_dir} do not fit a fashion_cnn for '
        f'{config.dataset} (input {folder.graph.input_shape}, '
        f'{folder.graph.output_shape[-1]} outputs): pass fashion_cnn weights '
        f'trained on {config.dataset}')
  model = models.get('fashion_cnn')(spec.image_shape, spec.num_classes)
  models.with_weights(model, folder.graph)
  return model, from_keras(model)


def _fits(folder: weights.WeightFolder, spec: datasets.DatasetSpec) -> bool:
  return (not folder.dense_chain
          and tuple(folder.graph.input_shape) == tuple(spec.image_shape)
          and folder.graph.output_shape[-1] == spec.num_classes)


def global_oneshot(graph: Graph, k: float) -> tuple[Graph, float]:
  """`graph` with the global mask at level k over all its weighted kernels.

  Returns:
    The pruned graph, and the largest |w| pruned (0 if none).
  """
  names = [n.name for n in graph.weighted()]
  kernels = [graph.node(n).params['kernel'] for n in names]
  masks = allocators.global_masks(kernels, k)
  max_pruned = max((float(np.abs(w[~m]).max()) for w, m in zip(kernels, masks)
                    if (~m).any()), default=0.0)
  return graph_pruning.apply_masks(graph, dict(zip(names, masks))), max_pruned


def _row(schedule, k, graph, evaluator, dense_accuracy, test, max_pruned):
  accuracy = evaluator.accuracy(test.images, test.labels, graph)
  kernels = [n.params['kernel'] for n in graph.weighted()]
  zeros = sum(int(np.count_nonzero(k_ == 0)) for k_ in kernels)
  total = sum(k_.size for k_ in kernels)
  return {'schedule': schedule, 'k': k, 'accuracy': round(accuracy, 6),
          'drop_points': round(100 * (dense_accuracy - accuracy), 4),
          'pruned_weights': zeros, 'measured_sparsity': round(zeros / total, 6),
          'max_pruned_abs': f'{max_pruned:.3g}'}


def run(config: StudyAConfig, verbose: int = 0) -> list[dict]:
  """Runs Study A and writes its results; returns the CSV rows."""
  atomic.check_writable(config.out_dir)
  model, graph = _load(config)
  # Dense kernels only: the study's accuracies are the Keras model's (its
  # committed numbers predate the CSR plan of large Dense nodes).
  evaluator = Evaluator(graph, allow_sparse=False)
  test = datasets.load(config.dataset, 'test', config.data_dir, config.test_limit)
  train = (datasets.load(config.dataset, 'train', config.data_dir, config.train_limit)
           if config.gradual else None)
  dense_accuracy = evaluator.accuracy(test.images, test.labels)
  rows = [_row('dense', 0, graph, evaluator, dense_accuracy, test, 0.0)]
  seconds = [{'schedule': 'dense', 'k': 0, 'seconds': 0.0}]
  dense_weights = model.get_weights()
  for k in config.levels:
    first = len(rows)
    start = time.perf_counter()
    pruned, max_pruned = global_oneshot(graph, k)
    rows.append(_row('oneshot', k, pruned, evaluator, dense_accuracy, test,
                     max_pruned))
    seconds.append({'schedule': 'oneshot', 'k': k,
                    'seconds': round(time.perf_counter() - start, 1)})
    if config.gradual:
      start = time.perf_counter()
      keras.utils.set_random_seed(config.seed)
      model.set_weights(dense_weights)
      fit = finetune.FitConfig(config.finetune_epochs,
                               learning_rate=config.finetune_lr)
      batches = config.finetune_epochs * -(-len(train) // fit.batch_size)
      gradual = finetune.GlobalGradual(model, k, batches, config.prune_steps)
      finetune.fit(model, train.images, train.labels, fit, [gradual], verbose)
      rows.append(_row('gradual', k, from_keras(model), evaluator,
                       dense_accuracy, test, float('nan')))
      seconds.append({'schedule': 'gradual', 'k': k,
                      'seconds': round(time.perf_counter() - start, 1)})
    print(*(f'{r["schedule"]} k={r["k"]:g}%: {100 * r["accuracy"]:.2f}% '
            f'({r["pruned_weights"]} zeros)' for r in rows[first:]), sep='\n',
          flush=True)
  with atomic.staging(config.out_dir) as stage:
    _write(stage, config, rows)
    timing.write(stage / 'timing.json', {
        'method': 'wall seconds of each row (pruning, finetuning, scoring)',
        'rows': seconds})
  return rows


def _write(out: pathlib.Path, config: StudyAConfig, rows: list[dict]) -> None:
  atomic.write_csv(out / 'study_a.csv', COLUMNS, rows)
  atomic.write_text(out / 'study_a_config.json',
                    json.dumps(dataclasses.asdict(config), indent=2) + '\n')
  plot(out / 'study_a.csv', out / 'study_a.png')


def plot(csv_path: pathlib.Path, png_path: pathlib.Path) -> None:
  """Draws accuracy against global level, one line per schedule, from the CSV."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  with open(csv_path, newline='') as f:
    rows = list(csv.DictReader(f))
  dense = next(float(r['accuracy']) for r in rows if r['schedule'] == 'dense')
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for schedule in ('oneshot', 'gradual'):
    points = [(float(r['k']), 100 * float(r['accuracy']))
              for r in rows if r['schedule'] == schedule]
    if points:
      ax.plot(*zip(*points), marker='o', label=schedule)
  ax.axhline(100 * dense, color='gray', linestyle='--', label='dense')
  ax.set_xscale('log')
  ax.set_xlabel('global level k (% of all kernel weights pruned)')
  ax.set_ylabel('test accuracy (%)')
  ax.set_title('Fashion-MNIST CNN, global magnitude pruning')
  ax.grid(True, alpha=0.3)
  ax.legend()
  with atomic.replacing(png_path) as tmp:
    fig.savefig(tmp, format='png', dpi=110, bbox_inches='tight')
  plt.close(fig)
