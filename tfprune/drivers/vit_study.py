"""The ViT with whole heads and MLP units removed, fine-tuned, timed, saved.

`run` takes a Keras 3 ViT (`drivers.vit_model`), imports it, removes k% of
every prunable dependency group with `unit` (in a ViT: k% of each block's
attention heads and of each MLP's hidden units; the residual stream is kept,
the layer norms reading all its channels), compacts it and writes it back as
a plain Keras 3 model with fewer heads and units. That model is fine-tuned
for `epochs` epochs at each learning rate of `learning_rates`, distilled from
the dense model (its targets mix the labels with the dense model's
probabilities, `teacher_weight` of the latter: knowledge distillation at
temperature 1, Hinton et al. 2015), on the training split minus a held-out
validation slice (`data.holdout`: the last
`validation_size` of the sweep's seeded permutation, never its calibration
draw); the rate with the best validation accuracy is kept and only its model
is scored on the test split. The dense and the kept model are then timed in
one process, alternating (`benchmark.paired_model_times`, median of each).

Writes to `out_dir` at once (`atomic.staging`):

    pruned.keras   the fine-tuned pruned model (plain Keras 3 layers)
    results.json   the config, accuracies (dense, pruned, each rate's
                   validation accuracy, the chosen one's test accuracy),
                   heads and units per block, parameters, file bytes
    timing.json    the paired forward-pass medians and their ratio, and the
                   fine-tuning seconds (apart: results stay reproducible)
"""

import dataclasses
import json
import math
import pathlib
import tempfile
import time

import numpy as np

from tfprune import atomic
from tfprune import keras_compat
from tfprune.data import datasets
from tfprune.data import holdout
from tfprune.drivers import benchmark
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.keras_io import build
from tfprune.keras_io import importer
from tfprune.transforms import graph_compaction

MODEL_NAME = 'pruned.keras'
RESULTS_NAME = 'results.json'
TIMING_NAME = 'timing.json'


@dataclasses.dataclass(frozen=True)
class ViTStudyConfig:
  """One pruned-ViT study; saved in its results.

  Attributes:
    model_file: the dense ViT (.keras, Keras 3).
    out_dir: folder for pruned.keras, results.json, timing.json.
    dataset: the registry dataset it was trained on.
    data_dir: local data folder (None: `$TFPRUNE_DATA_DIR`, then tfds).
    k: percent of each group's channels (heads, MLP units) removed.
    epochs: fine-tuning epochs per rate.
    learning_rates: Adam rates tried (cosine-decayed to 0); the best on
      the validation slice is kept.
    teacher_weight: share of the dense model's output probabilities in the
      fine-tuning targets (the rest: the one-hot labels); 0: labels only.
    batch_size: fine-tuning examples per step.
    validation_size: training examples held out to choose the rate.
    calibration_size: the sweep's calibration draw the slice avoids.
    seed: seeds the hold-out permutation and the fine-tuning.
    timing_batch: batch size of the paired throughput measurement.
    timing_runs: timed forward passes per model, at least.
  """
  model_file: str
  out_dir: str
  dataset: str = 'fashion_mnist'
  data_dir: str | None = None
  k: float = 50.0
  epochs: int = 2
  learning_rates: tuple[float, ...] = (2e-3, 3e-3)
  teacher_weight: float = 1.0
  batch_size: int = 64
  validation_size: int = 5000
  calibration_size: int = 2048
  seed: int = 0
  timing_batch: int = 256
  timing_runs: int = 30

  def __post_init__(self):
    datasets.get(self.dataset)
    if not 0 < self.k < 100:
      raise TfpruneError(f'k must be in (0, 100), got {self.k}')
    for name in ('epochs', 'batch_size', 'validation_size', 'timing_batch',
                 'timing_runs'):
      if getattr(self, name) < 1:
        raise TfpruneError(f'{name} must be at least 1, got {getattr(self, name)}')
    if not 0 <= self.teacher_weight <= 1:
      raise TfpruneError(f'teacher_weight must be in [0, 1], got '
                         f'{self.teacher_weight}')
    if not self.learning_rates or min(self.learning_rates) <= 0:
      raise TfpruneError(f'learning_rates must be positive, got '
                         f'{self.learning_rates}')


def _accuracy(model, split: datasets.Split) -> float:
  outputs = model.predict(split.images, batch_size=500, verbose=0)
  return float(np.mean(outputs.argmax(-1) == split.labels))


def _targets(dense, train: datasets.Split, weight: float) -> np.ndarray:
  """The fine-tuning targets: one-hot labels mixed with the dense model's
  probabilities (`weight` of them).

  Raises:
    TfpruneError: the dense model's outputs are not probabilities.
  """
  probabilities = dense.predict(train.images, batch_size=500, verbose=0)
  if weight and not np.allclose(probabilities.sum(-1), 1, atol=1e-3):
    raise TfpruneError('the dense model does not output probabilities (end it '
                       'with a softmax): use teacher_weight=0')
  onehot = np.eye(probabilities.shape[-1], dtype=np.float32)[train.labels]
  return (weight * probabilities + (1 - weight) * onehot).astype(np.float32)


def _fine_tuned(K, pruned: pathlib.Path, rate: float, train: datasets.Split,
                targets: np.ndarray, config: ViTStudyConfig):
  model = K.models.load_model(pruned, compile=False)
  steps = config.epochs * math.ceil(len(train) / config.batch_size)
  model.compile(optimizer=K.optimizers.Adam(
      K.optimizers.schedules.CosineDecay(rate, steps)),
                loss='categorical_crossentropy')
  K.utils.set_random_seed(config.seed)
  model.fit(train.images, targets, batch_size=config.batch_size,
            epochs=config.epochs, shuffle=True, verbose=2)
  return model


def _shape(model) -> list[dict]:
  """The heads of each MultiHeadAttention layer of a Keras model."""
  return [{'layer': l.name, 'heads': l.get_config()['num_heads']}
          for l in model.layers if type(l).__name__ == 'MultiHeadAttention']


def _bytes(model, folder: pathlib.Path, name: str) -> int:
  path = folder / name
  model.save(path)
  return path.stat().st_size


def run(config: ViTStudyConfig) -> tuple[dict, dict]:
  """Runs the study and writes its files; returns (results, timing)."""
  K = keras_compat.keras_module('keras3')
  atomic.check_writable(config.out_dir)
  train_all = datasets.load(config.dataset, 'train', config.data_dir)
  test = datasets.load(config.dataset, 'test', config.data_dir)
  held_out = holdout.holdout(train_all, config.validation_size,
                             config.calibration_size, config.seed)
  # Fine-tuned on the rest: the slice `holdout.holdout` draws, left out.
  chosen = np.random.default_rng(config.seed).permutation(
      len(train_all))[len(train_all) - config.validation_size:]
  rest = np.setdiff1d(np.arange(len(train_all)), chosen)
  train = datasets.Split(train_all.images[rest], train_all.labels[rest])
  dense = K.models.load_model(config.model_file, compile=False)
  graph = importer.from_keras(dense, data=test.images[:16])
  compacted = graph_compaction.prune_and_compact(graph, 'unit', config.k)[1]
  results = {
      'config': dataclasses.asdict(config),
      'dense_test_accuracy': evaluator.Evaluator(graph).accuracy(
          test.images, test.labels),
      'pruned_test_accuracy_before_finetuning': evaluator.Evaluator(
          compacted).accuracy(test.images, test.labels),
      'dense_params': graph.num_params, 'pruned_params': compacted.num_params,
  }
  validation, seconds, best = {}, {}, None
  with tempfile.TemporaryDirectory() as scratch:
    scratch = pathlib.Path(scratch)
    unit = build.to_keras(compacted, 'keras3')
    unit.save(scratch / 'unit.keras')
    targets = _targets(dense, train, config.teacher_weight)
    for rate in config.learning_rates:
      start = time.perf_counter()
      model = _fine_tuned(K, scratch / 'unit.keras', rate, train, targets,
                          config)
      seconds[str(rate)] = round(time.perf_counter() - start, 1)
      validation[str(rate)] = _accuracy(model, held_out)
      if best is None or validation[str(rate)] > validation[str(best[0])]:
        best = (rate, model)
    rate, model = best
    # A fresh twin holds the weights without the optimizer's state.
    uncompiled = build.to_keras(compacted, 'keras3')
    uncompiled.set_weights(model.get_weights())
    results.update({
        'validation_accuracy': validation, 'chosen_learning_rate': rate,
        'pruned_test_accuracy': _accuracy(uncompiled, test),
        'heads': {'dense': _shape(dense), 'pruned': _shape(uncompiled)},
        'mlp_units': {'dense': [l.units for l in dense.layers if l.name.endswith('_mlp1')],
                      'pruned': [l.units for l in uncompiled.layers
                                 if l.name.endswith('_mlp1')]},
        'dense_bytes': _bytes(dense, scratch, 'dense.keras'),
        'pruned_bytes': _bytes(uncompiled, scratch, 'pruned.keras'),
    })
    times = benchmark.paired_model_times(
        dense, uncompiled, graph.input_shape, [config.timing_batch],
        config.timing_runs)[config.timing_batch]
    timing = {'batch_size': config.timing_batch,
              'dense_median_seconds': times[0],
              'pruned_median_seconds': times[1],
              'throughput_ratio': times[0] / times[1],
              'finetune_seconds': seconds,
              'method': 'paired, alternating blocks in one process, median '
                        'of each (benchmark.paired_model_times)'}
    with atomic.staging(config.out_dir) as out_dir:
      uncompiled.save(out_dir / MODEL_NAME)
      atomic.write_text(out_dir / RESULTS_NAME,
                        json.dumps(results, indent=2) + '\n')
      atomic.write_text(out_dir / TIMING_NAME,
                        json.dumps(timing, indent=2) + '\n')
  return results, timing
