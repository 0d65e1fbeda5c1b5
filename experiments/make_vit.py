"""Train a small Vision Transformer on Fashion-MNIST (Keras 3, built-in layers).

Writes model.keras (uncompiled), manifest.json (config, test accuracy, weights'
SHA-256, this command) and timing.json to --out_dir (`tfprune.drivers.vit_model`:
patch embedding, depthwise-conv position encoding, pre-norm encoder blocks).
TensorFlow's deterministic ops are on, so a rerun on the same machine gives
the same weights (manifest: weights_sha256).

The committed model (a few minutes on 2 cores):

  TFPRUNE_DATA_DIR=../shared/datasets python experiments/make_vit.py \
      --out_dir=weights/vit-fashion_mnist

then, for example:

  python experiments/sweep.py --model_file=weights/vit-fashion_mnist/model.keras \
      --dataset=fashion_mnist --methods=weight,unit --levels=0,50
"""

import shlex
import sys

from tfprune import cli  # first: sets TensorFlow's log level

from absl import flags
import tensorflow as tf

from tfprune.data import datasets
from tfprune.drivers import vit_model

_D = vit_model.ViTConfig(out_dir='')

_OUT_DIR = flags.DEFINE_string('out_dir', 'runs/vit-fashion_mnist',
                               'Folder for model.keras, manifest.json, timing.json.')
_DATASET = flags.DEFINE_enum('dataset', _D.dataset, ['mnist', 'fashion_mnist'],
                             'Image dataset.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, f'Local data folder (else ${datasets.DATA_DIR_ENV}, else tfds).')
_PATCH = flags.DEFINE_integer('patch', _D.patch, 'Patch side in pixels.')
_DIM = flags.DEFINE_integer('dim', _D.dim, 'Token width (residual stream).')
_HEADS = flags.DEFINE_integer('heads', _D.heads, 'Attention heads per block.')
_MLP_DIM = flags.DEFINE_integer('mlp_dim', _D.mlp_dim, 'Hidden units of each MLP.')
_BLOCKS = flags.DEFINE_integer('blocks', _D.blocks, 'Encoder blocks.')
_TRAIN_LIMIT = flags.DEFINE_integer('train_limit', _D.train_limit,
                                    'Train on the first N training examples.')
_EPOCHS = flags.DEFINE_integer('epochs', _D.epochs, 'Training epochs.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', _D.batch_size, 'Examples per step.')
_LEARNING_RATE = flags.DEFINE_float('learning_rate', _D.learning_rate,
                                    'Initial AdamW rate, cosine-decayed to 0.')
_WEIGHT_DECAY = flags.DEFINE_float('weight_decay', _D.weight_decay,
                                   'AdamW weight decay.')
_SEED = flags.DEFINE_integer('seed', _D.seed, 'Random seed.')


def main(argv):
  del argv
  config = vit_model.ViTConfig(
      out_dir=_OUT_DIR.value, dataset=_DATASET.value, data_dir=_DATA_DIR.value,
      patch=_PATCH.value, dim=_DIM.value, heads=_HEADS.value,
      mlp_dim=_MLP_DIM.value, blocks=_BLOCKS.value,
      train_limit=_TRAIN_LIMIT.value, epochs=_EPOCHS.value,
      batch_size=_BATCH_SIZE.value, learning_rate=_LEARNING_RATE.value,
      weight_decay=_WEIGHT_DECAY.value, seed=_SEED.value)
  tf.config.experimental.enable_op_determinism()
  command = shlex.join(['python', 'experiments/make_vit.py', *sys.argv[1:]])
  manifest, seconds = vit_model.make(config, command)
  print(f'{manifest["params"]:,} parameters; test accuracy '
        f'{100 * manifest["keras_test_accuracy"]:.2f}% (Keras); '
        f'{seconds:.0f} s training; wrote {config.out_dir}')


if __name__ == '__main__':
  cli.run(main)
