"""Gradual pruning of a saved Keras 3 model with the `Pruning` callback: fine-tune, fold or compact, save, reload.

`run(config)` loads a `.keras` model (for instance the committed ViT,
`weights/vit-fashion_mnist/model.keras`), and for each criterion fine-tunes
it with `Pruning` on a polynomial schedule (Zhu & Gupta from step 0 to about
2/3 of training, `training.schedules.plan_gradual`) to the criterion's
target: `weight` prunes every prunable kernel (attention projections,
convolutions, depthwise and MLP kernels; not the output layer) to k% zeros,
`unit` removes k% of every channel group (attention heads and MLP units in a
ViT). Then `weight` folds the masks in (`strip_pruning`) and `unit`
compacts (`compact`: the smaller model). Each result is saved as
`<criterion>.keras`, loaded back by plain `keras.models.load_model` (no
tfprune class needed) and scored again on the test split: the two
accuracies must agree, and `results.json` records both with the zeros of
every kernel and the parameters.

Writes to `out_dir` at once (`atomic.staging`): `<criterion>.keras`,
`results.json` (config, accuracies, sparsity; no timings).
"""

import dataclasses
import json
import math
import pathlib

import keras
import numpy as np

from tfprune import atomic
from tfprune import registry
from tfprune.criteria import pruning
from tfprune.data import datasets
from tfprune.errors import TfpruneError
from tfprune.keras import callback as callback_lib
from tfprune.keras import finish
from tfprune.keras import schedules
from tfprune.keras import targets
from tfprune.training import schedules as step_plans

RESULTS_NAME = 'results.json'
CRITERIA = ('weight', 'unit')


@dataclasses.dataclass(frozen=True)
class ModelFileRun:
  """One run; saved in `results.json`.

  Attributes:
    model_file: the Keras 3 `.keras` model to prune.
    out_dir: output folder.
    dataset: the registry dataset it was trained on.
    data_dir: local data folder (None: `$TFPRUNE_DATA_DIR`).
    criteria: some of `CRITERIA`, each a separate run from the model file.
    weight_target: percent of zeros in every pruned kernel (`weight`).
    unit_target: percent of every channel group removed (`unit`).
    epochs: fine-tuning epochs.
    batch_size: batch size.
    learning_rate: initial Adam learning rate (cosine decay to 0).
    train_limit: fine-tune on the first N training examples (None: all).
    seed: seeds Keras and each epoch's shuffle.
  """
  model_file: str
  out_dir: str
  dataset: str = 'fashion_mnist'
  data_dir: str | None = None
  criteria: tuple[str, ...] = CRITERIA
  weight_target: float = 80.0
  unit_target: float = 50.0
  epochs: int = 2
  batch_size: int = 128
  learning_rate: float = 1e-3
  train_limit: int | None = None
  seed: int = 0

  def __post_init__(self):
    object.__setattr__(self, 'criteria', tuple(self.criteria))
    for criterion in self.criteria:
      registry.check_choice(criterion, CRITERIA, 'criterion')
    for name in ('weight_target', 'unit_target'):
      pruning.check_level(getattr(self, name), name, high=100,
                          include_high=False)
    for name in ('epochs', 'batch_size'):
      if getattr(self, name) < 1:
        raise TfpruneError(f'{name} must be at least 1, got {getattr(self, name)}')
    if not self.learning_rate > 0:
      raise TfpruneError(f'learning_rate must be positive, got {self.learning_rate}')


def _accuracy(model, split: datasets.Split) -> float:
  outputs = model.predict(split.images, batch_size=500, verbose=0)
  return float(np.mean(np.argmax(outputs, axis=1) == split.labels))


def _from_logits(model) -> bool:
  return getattr(model.layers[-1], 'activation', None) is not keras.activations.softmax


def prune_one(config: ModelFileRun, criterion: str, train: datasets.Split,
              test: datasets.Split) -> tuple[keras.Model, dict]:
  """Fine-tunes the model file under `Pruning` with `criterion`; the final model and its record."""
  keras.utils.set_random_seed(config.seed)
  model = keras.models.load_model(config.model_file, compile=False)
  target = config.weight_target if criterion == 'weight' else config.unit_target
  steps = config.epochs * math.ceil(len(train) / config.batch_size)
  plan = step_plans.plan_gradual(steps)
  callback = callback_lib.Pruning(
      schedules.PolynomialDecay(0.0, target / 100, plan.begin_step,
                                plan.end_step, frequency=plan.frequency),
      criterion, data=test.images[:16])
  model.compile(optimizer=keras.optimizers.Adam(
      keras.optimizers.schedules.CosineDecay(config.learning_rate, steps)),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=_from_logits(model)))
  dense_params = int(model.count_params())
  model.fit(train.images, train.labels, batch_size=config.batch_size,
            epochs=config.epochs, shuffle=True, verbose=2, callbacks=[callback])
  masked = {t.name: list(zs) for t, zs in
            zip(callback.pruner.targets, callback.pruner.sparsity().values())}
  if criterion == 'weight':
    final = finish.strip_pruning(model)
  else:
    final = finish.compact(model, data=test.images[:16])
  return final, {
      'criterion': criterion, 'target': target,
      'masked_zeros': masked,  # entries each mask removed: [zeros, size]
      'kernel_zeros': {n: list(z) for n, z in targets.kernel_sparsity(final).items()},
      'dense_params': dense_params, 'params': int(final.count_params()),
      'accuracy': _accuracy(final, test)}


def run(config: ModelFileRun) -> dict:
  """Every criterion of `config`; writes the models and results.json at once.

  Raises:
    TfpruneError: a reloaded model scores otherwise than the model saved.
  """
  atomic.check_writable(config.out_dir)
  train = datasets.load(config.dataset, 'train', config.data_dir,
                        limit=config.train_limit)
  test = datasets.load(config.dataset, 'test', config.data_dir)
  dense = keras.models.load_model(config.model_file, compile=False)
  results = {'config': dataclasses.asdict(config),
             'dense_accuracy': _accuracy(dense, test), 'runs': []}
  with atomic.staging(config.out_dir) as out_dir:
    for criterion in config.criteria:
      final, record = prune_one(config, criterion, train, test)
      path = pathlib.Path(out_dir) / f'{criterion}.keras'
      final.save(path)
      record['reloaded_accuracy'] = _accuracy(
          keras.models.load_model(path, compile=False), test)
      if record['reloaded_accuracy'] != record['accuracy']:
        raise TfpruneError(f'{path.name} reloaded scores '
                           f'{record["reloaded_accuracy"]}, saved '
                           f'{record["accuracy"]}')
      results['runs'].append(record)
    atomic.write_text(pathlib.Path(out_dir) / RESULTS_NAME,
                      json.dumps(results, indent=2) + '\n')
  return results
