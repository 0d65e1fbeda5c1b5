"""A small Vision Transformer (ViT) in Keras 3, built from built-in layers only.

What a user training a Transformer today writes, small enough for a CPU:

    image (28, 28, 1)
    Conv2D(dim, patch, strides=patch)         patch embedding, (7, 7, dim)
    Add([x, DepthwiseConv2D(3, 'same')(x)])   position information (below)
    Reshape((tokens, dim))                    one token per patch
    blocks x [pre-norm encoder block]:
      x = x + MultiHeadAttention(heads, dim / heads)(LN(x), LN(x))
      x = x + Dense(dim)(Dense(mlp, gelu)(LN(x)))
    LayerNormalization, GlobalAveragePooling1D, Dense(classes, softmax)

Position information: a learned position embedding (a weight added to the
tokens) would need a custom layer, which tfprune refuses. Instead a 3x3
depthwise convolution of the patch grid is added to it (the "conditional
position encoding" of CPVT, Chu et al. 2021): its zero padding tells a patch
where the image border is, and its weights mix each patch with its
neighbours, so the tokens carry their position, with built-in layers only.

`make` trains from a seeded init on the training split and writes, all at
once (`atomic.staging`):

    model.keras     the trained model, uncompiled (no optimizer state)
    manifest.json   the config, architecture, parameters, test accuracy,
                    a SHA-256 of the weights, the command
    timing.json     the training seconds (apart, so a rebuild's manifest is
                    the same bytes)

The data is read by name (`tfprune.data.datasets`), not copied.
"""

import dataclasses
import json
import math
import time

import numpy as np

from tfprune import __version__
from tfprune import atomic
from tfprune import keras_compat
from tfprune import ziptags
from tfprune.data import datasets
from tfprune.drivers.mobilenet_model import weights_sha256
from tfprune.errors import TfpruneError

MODEL_NAME = 'model.keras'
MANIFEST_NAME = 'manifest.json'
TIMING_NAME = 'timing.json'


@dataclasses.dataclass(frozen=True)
class ViTConfig:
  """How the ViT was made; saved in its manifest.

  Attributes:
    out_dir: folder for model.keras, manifest.json and timing.json.
    dataset: a registry image dataset.
    data_dir: local data folder (None: `$TFPRUNE_DATA_DIR`, then tfds).
    patch: patch side in pixels; must divide the image's height and width.
    dim: token width (the residual stream).
    heads: attention heads per block; must divide `dim`.
    mlp_dim: hidden units of each block's MLP.
    blocks: encoder blocks.
    train_limit: train on the first N training examples (None: all).
    epochs: passes over them.
    batch_size: examples per step.
    learning_rate: initial AdamW rate, cosine-decayed to 0.
    weight_decay: AdamW's decoupled weight decay.
    seed: seeds the initialisation and the shuffling.
  """
  out_dir: str
  dataset: str = 'fashion_mnist'
  data_dir: str | None = None
  patch: int = 4
  dim: int = 64
  heads: int = 4
  mlp_dim: int = 128
  blocks: int = 3
  train_limit: int | None = None
  epochs: int = 5
  batch_size: int = 128
  learning_rate: float = 2e-3
  weight_decay: float = 0.05
  seed: int = 0

  def __post_init__(self):
    spec = datasets.get(self.dataset)
    if len(spec.image_shape) != 3:
      raise TfpruneError(f'{self.dataset} examples have shape '
                         f'{spec.image_shape}: choose an image dataset')
    for name in ('patch', 'dim', 'heads', 'mlp_dim', 'blocks', 'epochs',
                 'batch_size'):
      if getattr(self, name) < 1:
        raise TfpruneError(f'{name} must be at least 1, got {getattr(self, name)}')
    if self.train_limit is not None and self.train_limit < 1:
      raise TfpruneError(f'train_limit must be at least 1, got {self.train_limit}')
    height, width = spec.image_shape[:2]
    if height % self.patch or width % self.patch:
      raise TfpruneError(f'patch {self.patch} does not divide the {height}x'
                         f'{width} images: choose a divisor, e.g. 4 or 7')
    if self.dim % self.heads:
      raise TfpruneError(f'heads {self.heads} does not divide dim {self.dim}: '
                         'choose heads dividing dim')
    if not self.learning_rate > 0:
      raise TfpruneError(f'learning_rate must be positive, got {self.learning_rate}')
    if not self.weight_decay >= 0:
      raise TfpruneError(f'weight_decay must be >= 0, got {self.weight_decay}')


def build(config: ViTConfig):
  """The ViT of `config` from a seeded random init (a Keras 3 model)."""
  keras = keras_compat.keras_module('keras3')
  layers = keras.layers
  # Fresh layer-name counters: the same config gives the same saved file,
  # however many models this process built before.
  keras.backend.clear_session()
  keras.utils.set_random_seed(config.seed)
  spec = datasets.get(config.dataset)
  height, width = spec.image_shape[:2]
  tokens = (height // config.patch) * (width // config.patch)
  inputs = keras.Input(spec.image_shape, name='image')
  x = layers.Conv2D(config.dim, config.patch, strides=config.patch,
                    name='patch_embedding')(inputs)
  position = layers.DepthwiseConv2D(3, padding='same',
                                    name='position_encoding')(x)
  x = layers.Add(name='add_position')([x, position])
  x = layers.Reshape((tokens, config.dim), name='tokens')(x)
  for b in range(1, config.blocks + 1):
    y = layers.LayerNormalization(epsilon=1e-6, name=f'block{b}_norm1')(x)
    y = layers.MultiHeadAttention(config.heads, config.dim // config.heads,
                                  name=f'block{b}_attention')(y, y)
    x = layers.Add(name=f'block{b}_add1')([x, y])
    y = layers.LayerNormalization(epsilon=1e-6, name=f'block{b}_norm2')(x)
    y = layers.Dense(config.mlp_dim, activation='gelu', name=f'block{b}_mlp1')(y)
    y = layers.Dense(config.dim, name=f'block{b}_mlp2')(y)
    x = layers.Add(name=f'block{b}_add2')([x, y])
  x = layers.LayerNormalization(epsilon=1e-6, name='final_norm')(x)
  x = layers.GlobalAveragePooling1D(name='pool')(x)
  outputs = layers.Dense(spec.num_classes, activation='softmax',
                         name='head')(x)
  return keras.Model(inputs, outputs, name='vit')


def architecture(config: ViTConfig) -> str:
  """One line describing the network, for the manifest."""
  return (f'ViT: {config.patch}x{config.patch} patches (Conv2D), 3x3 '
          f'depthwise-conv position encoding, {config.blocks} pre-norm blocks '
          f'of dim {config.dim}, {config.heads}-head self-attention, MLP '
          f'{config.mlp_dim} (gelu), global average pooling, Dense softmax')


def make(config: ViTConfig, command: str | None = None) -> tuple[dict, float]:
  """Trains and writes the ViT, its manifest and timing.

  Returns:
    The manifest and the training seconds (written apart, to `TIMING_NAME`).
  """
  keras = keras_compat.keras_module('keras3')
  atomic.check_writable(config.out_dir)
  train = datasets.load(config.dataset, 'train', config.data_dir,
                        limit=config.train_limit)
  test = datasets.load(config.dataset, 'test', config.data_dir)
  model = build(config)
  steps = config.epochs * math.ceil(len(train) / config.batch_size)
  model.compile(optimizer=keras.optimizers.AdamW(
      keras.optimizers.schedules.CosineDecay(config.learning_rate, steps),
      weight_decay=config.weight_decay),
                loss='sparse_categorical_crossentropy', metrics=['accuracy'])
  start = time.perf_counter()
  model.fit(train.images, train.labels, batch_size=config.batch_size,
            epochs=config.epochs, shuffle=True, verbose=2)
  seconds = time.perf_counter() - start
  outputs = model.predict(test.images, batch_size=500, verbose=0)
  manifest = {
      'model': architecture(config),
      'config': dataclasses.asdict(config),
      'train_examples': len(train), 'test_examples': len(test),
      'params': int(model.count_params()),
      'keras_test_accuracy': float(np.mean(outputs.argmax(1) == test.labels)),
      'weights_sha256': weights_sha256(model),
      'format': f'keras (Keras {keras.__version__}, uncompiled: no optimizer '
                'state)',
      'tfprune_version': __version__, 'command': command,
  }
  # A fresh twin holds the trained weights without the optimizer's state.
  uncompiled = build(config)
  uncompiled.set_weights(model.get_weights())
  with atomic.staging(config.out_dir) as out_dir:
    ziptags.save_keras(uncompiled, out_dir / MODEL_NAME)
    atomic.write_text(out_dir / MANIFEST_NAME,
                      json.dumps(manifest, indent=2) + '\n')
    atomic.write_text(out_dir / TIMING_NAME, json.dumps(
        {'train_seconds': round(seconds, 1)}, indent=2) + '\n')
  return manifest, seconds
