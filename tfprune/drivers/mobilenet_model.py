"""A user's MobileNetV2 (alpha 0.35) for the graph tools, made reproducibly.

What a new user brings: `keras.applications.MobileNetV2(alpha=0.35,
weights=None)` at its smallest input, 32x32, trained briefly. Fashion-MNIST
images are zero-padded from 28x28 to 32x32 (one grey channel), the model is
trained from a seeded random init for a few epochs on a training subset (BN
momentum 0.9 instead of the application's 0.999, so the moving statistics
settle within so few steps), and `make` writes, all at once
(`atomic.staging`):

    model.keras     the trained model, uncompiled (no optimizer state)
    data.npz        x_train, y_train (the examples trained on), x_test, y_test
    manifest.json   the config, test accuracy (Keras and the verified graph),
                    parameters, a SHA-256 of the weights, the command
    timing.json     the training seconds (apart, so the manifest of a
                    rebuild is the same bytes)

The benchmark and the sweep take these as `--model_file`, `--data`.
`experiments/make_mobilenet.py` turns on TensorFlow's deterministic ops
before training, so the same command on the same machine gives the same
weights (compare `weights_sha256`).
"""

import dataclasses
import hashlib
import json
import math
import time

import numpy as np

from tfprune import __version__
from tfprune import atomic
from tfprune import ziptags
from tfprune.data import datasets
from tfprune.errors import TfpruneError
from tfprune.graph import evaluator
from tfprune.keras_compat import keras
from tfprune.keras_io import importer
from tfprune.training import classifier

MODEL_NAME = 'model.keras'
DATA_NAME = 'data.npz'
MANIFEST_NAME = 'manifest.json'
TIMING_NAME = 'timing.json'
SIZE = 32  # the smallest input keras.applications.MobileNetV2 accepts


@dataclasses.dataclass(frozen=True)
class MobileNetConfig:
  """How the MobileNetV2 was made; saved in its manifest.

  Attributes:
    out_dir: folder for model.keras, data.npz and manifest.json.
    dataset: a registry image dataset of 28x28x1 images.
    data_dir: local data folder (None: `$TFPRUNE_DATA_DIR`, then tfds).
    alpha: MobileNetV2's width multiplier.
    train_limit: train on the first N training examples.
    epochs: passes over them.
    batch_size: examples per step.
    learning_rate: initial Adam rate, cosine-decayed to 0.
    bn_momentum: momentum of every BatchNormalization's moving statistics.
    seed: seeds the initialisation and the shuffling.
  """
  out_dir: str
  dataset: str = 'fashion_mnist'
  data_dir: str | None = None
  alpha: float = 0.35
  train_limit: int = 20_000
  epochs: int = 3
  batch_size: int = 64
  learning_rate: float = 2e-3
  bn_momentum: float = 0.9
  seed: int = 0

  def __post_init__(self):
    spec = datasets.get(self.dataset)
    if len(spec.image_shape) != 3 or max(spec.image_shape[:2]) > SIZE:
      raise TfpruneError(f'{self.dataset} examples have shape '
                         f'{spec.image_shape}: choose an image dataset of at '
                         f'most {SIZE}x{SIZE} pixels')
    for name in ('train_limit', 'epochs', 'batch_size'):
      if getattr(self, name) < 1:
        raise TfpruneError(f'{name} must be at least 1, got {getattr(self, name)}')
    for name in ('alpha', 'learning_rate'):
      if not getattr(self, name) > 0:
        raise TfpruneError(f'{name} must be positive, got {getattr(self, name)}')
    if not 0 <= self.bn_momentum < 1:
      raise TfpruneError(f'bn_momentum must be in [0, 1), got {self.bn_momentum}')


def padded(split: datasets.Split) -> datasets.Split:
  """The split's images zero-padded (centred) to SIZE x SIZE."""
  height, width = split.images.shape[1:3]
  top, left = (SIZE - height) // 2, (SIZE - width) // 2
  images = np.pad(split.images, ((0, 0), (top, SIZE - height - top),
                                 (left, SIZE - width - left), (0, 0)))
  return datasets.Split(images.astype(np.float32), split.labels)


def build(config: MobileNetConfig, channels: int, classes: int) -> keras.Model:
  """MobileNetV2(alpha) from a seeded random init, BN momentum set."""
  # Fresh layer-name counters: the same config gives the same saved file,
  # however many models this process built before.
  keras.backend.clear_session()
  keras.utils.set_random_seed(config.seed)
  model = keras.applications.MobileNetV2(
      input_shape=(SIZE, SIZE, channels), alpha=config.alpha, weights=None,
      classes=classes)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      layer.momentum = config.bn_momentum
  return model


def weights_sha256(model: keras.Model) -> str:
  """SHA-256 of the model's weights in order (the file itself has a date)."""
  digest = hashlib.sha256()
  for array in model.get_weights():
    digest.update(np.ascontiguousarray(array, np.float32).tobytes())
  return digest.hexdigest()


def make(config: MobileNetConfig, command: str | None = None) -> tuple[dict, float]:
  """Trains and writes the model, its data, manifest and timing.

  Returns:
    The manifest and the training seconds (written apart, to `TIMING_NAME`).
  """
  atomic.check_writable(config.out_dir)
  train = padded(datasets.load(config.dataset, 'train', config.data_dir,
                               limit=config.train_limit))
  test = padded(datasets.load(config.dataset, 'test', config.data_dir))
  model = build(config, train.images.shape[-1], datasets.get(config.dataset)
                .num_classes)
  steps = config.epochs * math.ceil(len(train) / config.batch_size)
  model.compile(optimizer=keras.optimizers.Adam(
      keras.optimizers.schedules.CosineDecay(config.learning_rate, steps)),
                loss=classifier.loss_for(model), metrics=['accuracy'])
  start = time.perf_counter()
  model.fit(train.images, train.labels, batch_size=config.batch_size,
            epochs=config.epochs, shuffle=True, verbose=0)
  seconds = time.perf_counter() - start
  outputs = model.predict(test.images, batch_size=500, verbose=0)
  graph = importer.from_keras(model, data=test.images[:64])
  manifest = {
      'model': f'keras.applications.MobileNetV2(alpha={config.alpha:g}, '
               f'weights=None, input_shape=({SIZE}, {SIZE}, '
               f'{train.images.shape[-1]}))',
      'config': dataclasses.asdict(config),
      'train_examples': len(train), 'test_examples': len(test),
      'params': int(model.count_params()),
      'keras_test_accuracy': float(np.mean(outputs.argmax(1) == test.labels)),
      'graph_test_accuracy': evaluator.Evaluator(graph).accuracy(
          test.images, test.labels),
      'weights_sha256': weights_sha256(model),
      'keras': 'tf_keras ' + keras.__version__,
      'tfprune_version': __version__, 'command': command,
  }
  # A fresh twin holds the trained weights without the optimizer's state.
  uncompiled = build(config, train.images.shape[-1], model.output_shape[-1])
  uncompiled.set_weights(model.get_weights())
  with atomic.staging(config.out_dir) as out_dir:
    ziptags.save_keras(uncompiled, out_dir / MODEL_NAME)
    np.savez_compressed(out_dir / DATA_NAME, x_train=train.images,
                        y_train=train.labels, x_test=test.images,
                        y_test=test.labels)
    atomic.write_text(out_dir / MANIFEST_NAME,
                      json.dumps(manifest, indent=2) + '\n')
    atomic.write_text(out_dir / TIMING_NAME, json.dumps(
        {'train_seconds': round(seconds, 1)}, indent=2) + '\n')
  return manifest, seconds
