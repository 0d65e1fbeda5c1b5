"""Study C: ResNet-18, one-shot vs iterative global magnitude pruning.

The two procedures of the ResNet-18/CIFAR-10 reference, on every conv and
dense kernel with one global threshold (batch norm and biases are not pruned):
  - one-shot: from the trained network, prune to the target sparsity at once,
    then retrain `oneshot_retrain_epochs`;
  - iterative: prune `step_fraction` of the remaining weights and retrain
    `step_retrain_epochs`, until the next step would reach the target; that
    step prunes to exactly the target, then `final_retrain_epochs` follow.
Iterative runs towards several targets share their common prefix of steps
(the schedules coincide until one reaches its target), which gives the same
result as separate runs at a fraction of the cost. Masks are held at zero
through retraining (`masking.KeepMasked`), so the reported sparsity is
measured on the final weights. Training is SGD with momentum and weight decay
(coupled L2, as PyTorch), cosine-decayed per phase, with optional random-crop
and flip augmentation. Writes study_c.csv (exact columns only),
timing.json (the wall seconds of every row, and the machine) and
study_c_config.json, together (`atomic.staging`), and, with
`save_networks`, every row's final network as a graph file
networks/<procedure>-<target>.npz (`from_keras` of the model, verified
against it; sparse arrays where smaller; its metadata holds the row), which
`tfprune.load` reads and `tfprune.evaluate` scores like the Keras model.
"""

import dataclasses
import json
import math
import pathlib
import time

import numpy as np
import tensorflow as tf

from tfprune import atomic
from tfprune import registry
from tfprune.allocation import allocators
from tfprune.data import datasets
from tfprune.errors import TfpruneError
from tfprune.graph import io as graph_io
from tfprune.errors import shorten
from tfprune.keras_compat import keras
from tfprune.keras_io import models
from tfprune.keras_io.importer import from_keras
from experiments.studies import timing
from tfprune.training import finetune
from tfprune.training import masking

CIFAR10 = datasets.DatasetSpec('cifar10', 'cifar10', (32, 32, 3), 10)
DATASETS = {'cifar10': CIFAR10, **datasets.DATASETS}
COLUMNS = ('procedure', 'target', 'accuracy', 'drop_points', 'measured_sparsity',
           'prune_steps', 'retrain_epochs')


@dataclasses.dataclass(frozen=True)
class StudyCConfig:
  """Study C settings; saved as study_c_config.json.

  Attributes:
    out_dir: folder for the CSV and config.
    dataset: 'cifar10' (tfds) or a key of `datasets.DATASETS`.
    data_dir: local IDX data folder for MNIST-like datasets.
    tfds_data_dir: tensorflow-datasets folder for CIFAR-10 (None: default).
    download: let tensorflow-datasets download CIFAR-10 when it is missing.
    width: ResNet-18 width multiplier.
    targets: global sparsities in percent.
    epochs: training epochs of the dense network.
    learning_rate: initial SGD rate of the dense training.
    retrain_learning_rate: initial SGD rate of every retraining phase.
    momentum: SGD momentum.
    weight_decay: PyTorch-style weight decay (L2 on conv/dense kernels).
    batch_size: examples per step.
    augment: random crop (4-pixel padding) and horizontal flip.
    oneshot_retrain_epochs: retraining after one-shot pruning.
    step_fraction: fraction of the remaining weights pruned per iterative step.
    step_retrain_epochs: retraining after each iterative step.
    final_retrain_epochs: retraining once the iterative target is reached.
    train_limit: first N training examples (None: all).
    test_limit: first N test examples (None: all).
    seed: seeds initialisation, shuffling and augmentation.
    save_networks: save each row's final network as a graph file under
      networks/ in out_dir.
  """
  out_dir: str
  dataset: str = 'cifar10'
  data_dir: str | None = None
  tfds_data_dir: str | None = None
  download: bool = False
  width: float = 1.0
  targets: tuple[float, ...] = (50, 75, 90)
  epochs: int = 200
  learning_rate: float = 0.1
  retrain_learning_rate: float = 0.01
  momentum: float = 0.9
  weight_decay: float = 5e-4
  batch_size: int = 128
  augment: bool = True
  oneshot_retrain_epochs: int = 20
  step_fraction: float = 0.11
  step_retrain_epochs: int = 5
  final_retrain_epochs: int = 100
  train_limit: int | None = None
  test_limit: int | None = None
  seed: int = 0
  save_networks: bool = True

  def __post_init__(self):
    models.check_fits('resnet18', get_dataset(self.dataset).image_shape,
                      self.dataset)
    if not self.targets or not all(0 < t < 100 for t in self.targets):
      raise TfpruneError(f'targets must be in (0, 100), got {self.targets}')
    if not 0 < self.step_fraction < 1:
      raise TfpruneError(f'step_fraction must be in (0, 1), got {self.step_fraction}')
    if not self.width > 0:
      raise TfpruneError(f'width must be positive, got {self.width}')
    for name in ('epochs', 'oneshot_retrain_epochs', 'step_retrain_epochs',
                 'final_retrain_epochs'):
      if getattr(self, name) < 0:
        raise TfpruneError(f'{name} must be >= 0, got {getattr(self, name)}')
    if self.batch_size < 1 or not (self.learning_rate > 0
                                   and self.retrain_learning_rate > 0):
      raise TfpruneError('batch_size and learning rates must be positive')


def get_dataset(name: str) -> datasets.DatasetSpec:
  """The dataset called `name` ('cifar10' or one of `datasets.DATASETS`)."""
  return registry.lookup(DATASETS, name, 'dataset')


def load_cifar10(split: str, tfds_data_dir: str | None,
                 download: bool = False) -> datasets.Split:
  """CIFAR-10 from tensorflow-datasets, as float32 images in [0, 1].

  Without `download`, a missing copy fails at once instead of retrying the
  network for minutes.

  Raises:
    TfpruneError: tfds cannot provide it (no copy and no network), saying
      what to download and where to put it.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    # Fixed batches: batch_size=-1 crashes on tfds mock data.
    batches = list(tfds.as_numpy(tfds.load(
        'cifar10', split=split, as_supervised=True, data_dir=tfds_data_dir,
        download=download).batch(10_000)))
  except Exception as e:  # pylint: disable=broad-except
    where = tfds_data_dir or '~/tensorflow_datasets'
    reason = shorten(str(e).strip().splitlines()[0], 120) if str(e).strip() else ''
    raise TfpruneError(
        f'CIFAR-10 is not in {where} ({type(e).__name__}: {reason}): with '
        'network pass --download, or on a machine with network run `tfds build '
        f'cifar10 --data_dir=DIR` and copy DIR/cifar10 to {where}/cifar10 '
        '(or pass --tfds_data_dir=DIR)') from None
  images = np.concatenate([b[0] for b in batches]).astype(np.float32) / 255.0
  labels = np.concatenate([b[1] for b in batches]).astype(np.int64)
  return datasets.Split(images, labels)


def _load(config: StudyCConfig, split: str, limit: int | None) -> datasets.Split:
  if config.dataset == 'cifar10':
    s = load_cifar10(split, config.tfds_data_dir, config.download)
    return s if limit is None else datasets.Split(s.images[:limit], s.labels[:limit])
  return datasets.load(config.dataset, split, config.data_dir, limit)


def _dataset(split: datasets.Split, config: StudyCConfig, seed: int) -> tf.data.Dataset:
  ds = tf.data.Dataset.from_tensor_slices((split.images, split.labels))
  ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
  if config.augment:
    h, w, c = split.images.shape[1:]

    def augment(image, label):
      image = tf.image.pad_to_bounding_box(image, 4, 4, h + 8, w + 8)
      image = tf.image.random_crop(image, (h, w, c), seed=seed)
      return tf.image.random_flip_left_right(image, seed=seed), label

    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
  return ds.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)


def _train(model, train, config, epochs, learning_rate, callbacks=()):
  if epochs == 0:
    return
  steps = epochs * math.ceil(len(train) / config.batch_size)
  model.compile(
      optimizer=keras.optimizers.SGD(
          keras.optimizers.schedules.CosineDecay(learning_rate, steps),
          momentum=config.momentum),
      loss='sparse_categorical_crossentropy', metrics=['accuracy'])
  model.fit(_dataset(train, config, config.seed), epochs=epochs,
            callbacks=list(callbacks), verbose=0)


def _accuracy(model, test) -> float:
  predictions = model.predict(test.images, batch_size=500, verbose=0)
  return float(np.mean(predictions.argmax(axis=1) == test.labels))


def _sparsity(model) -> float:
  kernels = finetune.kernels(model)
  return sum(int(np.count_nonzero(k == 0)) for k in kernels) / sum(
      k.size for k in kernels)


def _prune_and_retrain(model, level, masks, train, config, epochs):
  masks = allocators.global_masks(finetune.kernels(model), level, masks)
  keep = masking.KeepMasked(finetune.kernel_pairs(model, masks))
  _train(model, train, config, epochs, config.retrain_learning_rate, [keep])
  return masks


def iterative_levels(target: float, step_fraction: float) -> list[float]:
  """Global levels of the iterative schedule: 1-(1-s)^n, then the target."""
  levels, n = [], 1
  while 100 * (1 - (1 - step_fraction) ** n) < target - 1e-9:
    levels.append(100 * (1 - (1 - step_fraction) ** n))
    n += 1
  return levels + [target]


def run(config: StudyCConfig, verbose: bool = True) -> list[dict]:
  """Trains ResNet-18, runs both procedures, writes and returns the rows."""
  spec = get_dataset(config.dataset)
  train = _load(config, 'train', config.train_limit)
  test = _load(config, 'test', config.test_limit)
  atomic.check_writable(config.out_dir)  # made when the first network is saved
  out = pathlib.Path(config.out_dir)
  keras.utils.set_random_seed(config.seed)
  model = models.get('resnet18')(spec.image_shape, spec.num_classes,
                                 width=config.width,
                                 weight_decay=config.weight_decay)
  start = time.perf_counter()
  _train(model, train, config, config.epochs, config.learning_rate)
  dense_accuracy = _accuracy(model, test)
  dense = model.get_weights()
  rows, seconds = [], []

  def record(procedure, target, steps, epochs, started):
    accuracy = _accuracy(model, test)
    rows.append({'procedure': procedure, 'target': target,
                 'accuracy': round(accuracy, 6),
                 'drop_points': round(100 * (dense_accuracy - accuracy), 4),
                 'measured_sparsity': round(_sparsity(model), 6),
                 'prune_steps': steps, 'retrain_epochs': epochs})
    seconds.append({'procedure': procedure, 'target': target,
                    'seconds': round(time.perf_counter() - started, 1)})
    if config.save_networks:
      _save_network(out, model, config, rows[-1])
    if verbose:
      print(f'{procedure} {target:g}%: {100 * accuracy:.2f}% '
            f'(sparsity {rows[-1]["measured_sparsity"]:.4f})', flush=True)

  record('dense', 0, 0, config.epochs, start)
  for target in config.targets:
    start = time.perf_counter()
    model.set_weights(dense)
    _prune_and_retrain(model, target, None, train, config,
                       config.oneshot_retrain_epochs)
    record('oneshot', target, 1, config.oneshot_retrain_epochs, start)
  _iterative(model, dense, train, config, record)
  _write(out, config, rows, seconds)
  return rows


def _iterative(model, dense, train, config, record) -> None:
  start = time.perf_counter()
  model.set_weights(dense)
  masks, epochs = None, 0
  remaining = sorted(config.targets)
  path = iterative_levels(max(remaining), config.step_fraction)[:-1]
  for step, level in enumerate(path + [math.inf], start=1):
    while remaining and level >= remaining[0] - 1e-9:
      target = remaining.pop(0)
      branch = model.get_weights()
      final = _prune_and_retrain(model, target, masks, train, config,
                                 config.step_retrain_epochs)
      keep = masking.KeepMasked(finetune.kernel_pairs(model, final))
      _train(model, train, config, config.final_retrain_epochs,
             config.retrain_learning_rate, [keep])
      record('iterative', target, step,
             epochs + config.step_retrain_epochs + config.final_retrain_epochs,
             start)
      model.set_weights(branch)
    if not remaining:
      return
    masks = _prune_and_retrain(model, level, masks, train, config,
                               config.step_retrain_epochs)
    epochs += config.step_retrain_epochs


def network_path(out_dir: str | pathlib.Path, procedure: str,
                 target: float) -> pathlib.Path:
  """Where `run` saves the final network of one row (a graph file)."""
  return pathlib.Path(out_dir) / 'networks' / f'{procedure}-{target:g}.npz'


def _save_network(out: pathlib.Path, model, config: StudyCConfig,
                  row: dict) -> None:
  graph = from_keras(model)
  metadata = {**graph.metadata, 'model': 'resnet18', 'dataset': config.dataset,
              'width': config.width, **{k: row[k] for k in (
                  'procedure', 'target', 'accuracy', 'measured_sparsity')}}
  path = network_path(out, row['procedure'], row['target'])
  atomic.ensure_dir(path.parent)
  graph_io.save(dataclasses.replace(graph, metadata=metadata), path)


def _write(out: pathlib.Path, config: StudyCConfig, rows: list[dict],
           seconds: list[dict]) -> None:
  with atomic.staging(out) as stage:
    atomic.write_csv(stage / 'study_c.csv', COLUMNS, rows)
    timing.write(stage / 'timing.json', {
        'method': ('wall seconds of each row: training, pruning and '
                   'retraining; iterative rows from the start of the shared '
                   'iterative path'),
        'rows': seconds})
    atomic.write_text(stage / 'study_c_config.json',
                      json.dumps(dataclasses.asdict(config), indent=2) + '\n')
