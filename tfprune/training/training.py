"""Train a registry model on a registry dataset and save its `.npy` weight folder."""

import dataclasses
import pathlib
import time

from tfprune import __version__
from tfprune import atomic
from tfprune.data import checks
from tfprune.data import datasets
from tfprune.errors import TfpruneError
from tfprune.graph import network_graph
from tfprune.graph import weights
from tfprune.keras_compat import keras
from tfprune.keras_io import models
from tfprune.runtime import accuracy


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How a weight folder was trained; saved in its manifest.

  Attributes:
    weights_dir: the folder to write (refused if it exists, unless overwrite).
    dataset: a key of `datasets.DATASETS`.
    model: a key of `models.MODELS`.
    epochs: passes over the training split.
    batch_size: examples per step.
    learning_rate: initial Adam learning rate, cosine-decayed to 0.
    dropout: dropout rate after hidden layers (no effect on the weights' layout).
    seed: seeds Python, NumPy and TensorFlow.
    data_dir: local data folder (None: `$TFPRUNE_DATA_DIR`, then tfds).
    train_limit: train on the first `train_limit` examples only (None: all).
    overwrite: replace an existing weights folder once the new one is saved.
  """
  weights_dir: str
  dataset: str = 'mnist'
  model: str = 'mlp'
  epochs: int = 15
  batch_size: int = 128
  learning_rate: float = 1e-3
  dropout: float = 0.2
  seed: int = 0
  data_dir: str | None = None
  train_limit: int | None = None
  overwrite: bool = False

  def __post_init__(self):
    datasets.get(self.dataset)
    models.get(self.model)
    models.check_fits(self.model, datasets.get(self.dataset).image_shape, self.dataset)
    for name in ('epochs', 'batch_size'):
      if getattr(self, name) < 1:
        raise TfpruneError(f'{name} must be at least 1, got {getattr(self, name)}')
    if not self.learning_rate > 0:
      raise TfpruneError(f'learning_rate must be positive, got {self.learning_rate}')
    if not 0 <= self.dropout < 1:
      raise TfpruneError(f'dropout must be in [0, 1), got {self.dropout}')
    if self.train_limit is not None and self.train_limit < 1:
      raise TfpruneError(f'train_limit must be at least 1, got {self.train_limit}')


@dataclasses.dataclass(frozen=True)
class TrainResult:
  """What training produced.

  Attributes:
    folder: the saved weight folder.
    keras_accuracy: test accuracy from `Model.evaluate`.
    evaluator_accuracy: test accuracy from the pure-tensor evaluator (biases on).
    seconds: wall time of `Model.fit`.
  """
  folder: weights.WeightFolder
  keras_accuracy: float
  evaluator_accuracy: float
  seconds: float


def train(config: TrainConfig, command: str | None = None,
          verbose: int = 2) -> TrainResult:
  """Trains `config.model` on `config.dataset` and saves the weight folder.

  Args:
    config: the training configuration.
    command: the command line that asked for this, recorded in the manifest.
    verbose: Keras progress output (0 silent, 2 one line per epoch).

  Returns:
    The saved folder and its test accuracies.
  """
  # Fail before training, not after it, if the folder would be refused.
  atomic.check_replaceable(config.weights_dir, config.overwrite)
  # Before the long training, not when saving after it.
  atomic.check_writable(pathlib.Path(config.weights_dir).parent, '--weights_dir')
  spec = datasets.get(config.dataset)
  train_split = datasets.load(config.dataset, 'train', config.data_dir,
                          limit=config.train_limit)
  test_split = datasets.load(config.dataset, 'test', config.data_dir)
  keras.utils.set_random_seed(config.seed)
  model = models.get(config.model)(spec.image_shape, spec.num_classes,
                                   dropout=config.dropout)
  steps = config.epochs * -(-len(train_split) // config.batch_size)
  schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps)
  model.compile(optimizer=keras.optimizers.Adam(schedule),
                loss='sparse_categorical_crossentropy', metrics=['accuracy'])
  start = time.perf_counter()
  model.fit(train_split.images, train_split.labels, batch_size=config.batch_size,
            epochs=config.epochs, verbose=verbose)
  seconds = time.perf_counter() - start
  _, keras_accuracy = model.evaluate(test_split.images, test_split.labels,
                                     batch_size=1000, verbose=0)
  network = models.to_network(model)
  check_converged(network, config.learning_rate)
  evaluator_accuracy = accuracy.accuracy(network_graph.to_graph(network),
                                         test_split.images, test_split.labels)
  metadata = {
      'model': config.model,
      'dataset': config.dataset,
      'training': dataclasses.asdict(config),
      'train_examples': len(train_split),
      'test_accuracy': round(float(evaluator_accuracy), 6),
      'keras_test_accuracy': round(float(keras_accuracy), 6),
      'tfprune_version': __version__,
      'command': command,
  }
  folder = weights.save(config.weights_dir, network, metadata,
                        overwrite=config.overwrite,
                        timing={'train_seconds': round(seconds, 1)})
  return TrainResult(folder, float(keras_accuracy), float(evaluator_accuracy),
                     seconds)


def check_converged(network, learning_rate: float) -> None:
  """Refuses weights that training drove to NaN/Inf, before anything is saved.

  Raises:
    TfpruneError: a kernel or bias is not finite; the message names it and
      the learning rate.
  """
  checks.finite_params(
      [(f'weight-{i}', k) for i, k in enumerate(network.kernels, start=1)]
      + [(f'bias-{i}', b) for i, b in enumerate(network.biases, start=1)],
      'the trained network',
      f'training diverged and nothing was saved; lower --learning_rate (was '
      f'{learning_rate:g})')
