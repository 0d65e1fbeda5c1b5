"""The ViT with whole heads and MLP units removed, fine-tuned, timed, saved.

`run` takes a Keras 3 ViT (`drivers.vit_model`) and removes k% of every
prunable dependency group with `unit` (in a ViT: k% of each block's attention
heads and of each MLP's hidden units; the residual stream is kept, the layer
norms reading all its channels), by one of the recipes of
`drivers.vit_finetune` (`one_shot`: pruned at once, then fine-tuned;
`gradual`: pruned step by step while fine-tuning, then compacted), each
distilled from the dense model for `epochs` epochs in all. The result is a
plain Keras 3 model with fewer heads and units. Each learning rate of
`learning_rates` is tried on the training split minus a held-out validation
slice (`data.holdout`: the last `validation_size` of the sweep's seeded
permutation, never its calibration draw); the rate with the best validation
accuracy is kept and only its model is scored on the test split. The dense
and the kept model are then timed in one process, alternating
(`benchmark.paired_model_times`, median of each).

Writes to `out_dir` at once (`atomic.staging`):

    pruned.keras   the fine-tuned pruned model (plain Keras 3 layers; its
                   zip comment records the data, `data.provenance`)
    results.json   the config, accuracies (dense, pruned one-shot before any
                   fine-tuning, each rate's validation accuracy, the chosen
                   one's test accuracy), heads and units per block,
                   parameters, file bytes
    timing.json    the paired forward-pass medians and their ratio, and the
                   fine-tuning seconds (apart: results stay reproducible)
"""

import dataclasses
import json
import pathlib
import shutil
import tempfile
import time

import numpy as np

from tfprune import atomic
from tfprune import keras_compat
from tfprune import registry
from tfprune import ziptags
from tfprune.data import datasets
from tfprune.data import holdout
from tfprune.data import provenance
from tfprune.drivers import benchmark
from tfprune.drivers import vit_finetune
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
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
    recipe: a key of `vit_finetune.RECIPES`: 'one_shot' (prune, then
      fine-tune) or 'gradual' (prune while fine-tuning, then compact).
    epochs: fine-tuning epochs per rate (the gradual phase included).
    learning_rates: Adam rates tried (cosine-decayed to 0); the best on
      the validation slice is kept.
    teacher_weight: share of the distillation term in the loss (the rest:
      cross-entropy with the labels); 0: labels only.
    temperature: distillation temperature T (the term is scaled by T²).
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
  recipe: str = 'one_shot'
  epochs: int = 2
  learning_rates: tuple[float, ...] = (2e-3, 3e-3)
  teacher_weight: float = 1.0
  temperature: float = 6.0
  batch_size: int = 64
  validation_size: int = 5000
  calibration_size: int = 2048
  seed: int = 0
  timing_batch: int = 256
  timing_runs: int = 30

  def __post_init__(self):
    datasets.get(self.dataset)
    registry.check_choice(self.recipe, vit_finetune.RECIPES, 'recipe')
    if not 0 < self.k < 100:
      raise TfpruneError(f'k must be in (0, 100), got {self.k}')
    for name in ('epochs', 'batch_size', 'validation_size', 'timing_batch',
                 'timing_runs'):
      if getattr(self, name) < 1:
        raise TfpruneError(f'{name} must be at least 1, got {getattr(self, name)}')
    if not 0 <= self.teacher_weight <= 1:
      raise TfpruneError(f'teacher_weight must be in [0, 1], got '
                         f'{self.teacher_weight}')
    if not self.temperature > 0:
      raise TfpruneError(f'temperature must be positive, got {self.temperature}')
    if not self.learning_rates or min(self.learning_rates) <= 0:
      raise TfpruneError(f'learning_rates must be positive, got '
                         f'{self.learning_rates}')


def _accuracy(model, split: datasets.Split) -> float:
  outputs = model.predict(split.images, batch_size=500, verbose=0)
  return float(np.mean(outputs.argmax(-1) == split.labels))


def _shape(model) -> list[dict]:
  """The heads of each MultiHeadAttention layer of a Keras model."""
  return [{'layer': l.name, 'heads': l.get_config()['num_heads']}
          for l in model.layers if type(l).__name__ == 'MultiHeadAttention']


def _mlp_units(model) -> list[int]:
  return [l.units for l in model.layers if l.name.endswith('_mlp1')]


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
  one_shot = graph_compaction.prune_and_compact(graph, 'unit', config.k)[1]
  results = {
      'config': dataclasses.asdict(config),
      'dense_test_accuracy': evaluator.Evaluator(graph).accuracy(
          test.images, test.labels),
      'pruned_test_accuracy_before_finetuning': evaluator.Evaluator(
          one_shot).accuracy(test.images, test.labels),
  }
  targets = vit_finetune.teacher_targets(dense, train)
  validation, seconds, best = {}, {}, None
  for rate in config.learning_rates:
    start = time.perf_counter()
    model = vit_finetune.fine_tuned(config.recipe, config.model_file, graph,
                                    rate, train, targets, config)
    seconds[str(rate)] = round(time.perf_counter() - start, 1)
    validation[str(rate)] = _accuracy(model, held_out)
    if best is None or validation[str(rate)] > validation[str(best[0])]:
      best = (rate, model)
  rate, model = best
  with tempfile.TemporaryDirectory() as scratch:
    # Saved first, so results.json records the bytes of the file written.
    saved = ziptags.save_keras(model, pathlib.Path(scratch) / MODEL_NAME,
                               provenance.record(config.dataset, None, None,
                                                 graph.input_shape, test.images))
    results.update({
        'validation_accuracy': validation, 'chosen_learning_rate': rate,
        'pruned_test_accuracy': _accuracy(model, test),
        'dense_params': int(dense.count_params()),
        'pruned_params': int(model.count_params()),
        'heads': {'dense': _shape(dense), 'pruned': _shape(model)},
        'mlp_units': {'dense': _mlp_units(dense), 'pruned': _mlp_units(model)},
        'dense_bytes': pathlib.Path(config.model_file).stat().st_size,
        'pruned_bytes': saved.stat().st_size,
    })
    times = benchmark.paired_model_times(
        dense, model, graph.input_shape, [config.timing_batch],
        config.timing_runs)[config.timing_batch]
    timing = {'batch_size': config.timing_batch,
              'dense_median_seconds': times[0],
              'pruned_median_seconds': times[1],
              'throughput_ratio': times[0] / times[1],
              'finetune_seconds': seconds,
              'method': 'paired, alternating blocks in one process, median '
                        'of each (benchmark.paired_model_times)'}
    with atomic.staging(config.out_dir) as out_dir:
      shutil.copyfile(saved, out_dir / MODEL_NAME)
      atomic.write_text(out_dir / RESULTS_NAME,
                        json.dumps(results, indent=2) + '\n')
      atomic.write_text(out_dir / TIMING_NAME,
                        json.dumps(timing, indent=2) + '\n')
  return results, timing
