"""Train a user's MobileNetV2 (alpha 0.35, 32x32) briefly; save it with its data.

Writes model.keras (uncompiled), data.npz (x_train, y_train, x_test, y_test:
Fashion-MNIST zero-padded to 32x32) and manifest.json to --out_dir, for the
graph tools' --model_file and --data (`tfprune.drivers.mobilenet_model`).
TensorFlow's deterministic ops are on, so a rerun on the same machine gives
the same weights (manifest: weights_sha256).

The model of img/benchmark-mobilenetv2 (a few minutes on 2 cores):

  python experiments/make_mobilenet.py --out_dir=runs/mobilenetv2-fashion_mnist

then, for example:

  python experiments/benchmark.py --model_file=runs/mobilenetv2-fashion_mnist/model.keras \
      --data=runs/mobilenetv2-fashion_mnist/data.npz --out_dir=img/benchmark-mobilenetv2
"""

from tfprune import cli  # first: sets TensorFlow's log level

from absl import flags
import tensorflow as tf

from tfprune.data import datasets
from tfprune.drivers import mobilenet_model

_D = mobilenet_model.MobileNetConfig(out_dir='')

_OUT_DIR = flags.DEFINE_string('out_dir', 'runs/mobilenetv2-fashion_mnist',
                               'Folder for model.keras, data.npz, manifest.json.')
_DATASET = flags.DEFINE_enum('dataset', _D.dataset, ['mnist', 'fashion_mnist'],
                             'Dataset (28x28 images, padded to 32x32).')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, f'Local data folder (else ${datasets.DATA_DIR_ENV}, else tfds).')
_ALPHA = flags.DEFINE_float('alpha', _D.alpha, 'MobileNetV2 width multiplier.')
_TRAIN_LIMIT = flags.DEFINE_integer('train_limit', _D.train_limit,
                                    'Train on the first N training examples.')
_EPOCHS = flags.DEFINE_integer('epochs', _D.epochs, 'Training epochs.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', _D.batch_size, 'Examples per step.')
_LEARNING_RATE = flags.DEFINE_float('learning_rate', _D.learning_rate,
                                    'Initial Adam rate, cosine-decayed to 0.')
_SEED = flags.DEFINE_integer('seed', _D.seed, 'Random seed.')


def main(argv):
  del argv
  config = mobilenet_model.MobileNetConfig(
      out_dir=_OUT_DIR.value, dataset=_DATASET.value, data_dir=_DATA_DIR.value,
      alpha=_ALPHA.value, train_limit=_TRAIN_LIMIT.value, epochs=_EPOCHS.value,
      batch_size=_BATCH_SIZE.value, learning_rate=_LEARNING_RATE.value,
      seed=_SEED.value)
  tf.config.experimental.enable_op_determinism()
  manifest, seconds = mobilenet_model.make(config, cli.command_line())
  print(f'{manifest["params"]:,} parameters; test accuracy '
        f'{100 * manifest["keras_test_accuracy"]:.2f}% (Keras), '
        f'{100 * manifest["graph_test_accuracy"]:.2f}% (graph); '
        f'{seconds:.0f} s training; wrote {config.out_dir}')


if __name__ == '__main__':
  cli.run(main)
