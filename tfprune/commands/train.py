"""tfprune train: train a registry model and save it as a `.npy` weight folder with a manifest.

  tfprune train --dataset=fashion_mnist --weights_dir=runs/fmnist
  tfprune train --model=lenet5 --epochs=15 --dropout=0.2 --weights_dir=runs/lenet5
  tfprune train --epochs=1 --weights_dir=runs/quick --overwrite
"""


import pathlib

from absl import flags

from tfprune import cli

from tfprune.data import datasets
from tfprune.keras_io import models
from tfprune.training import training

_DEFAULTS = training.TrainConfig(weights_dir='')

_WEIGHTS_DIR = flags.DEFINE_string(
    'weights_dir', None, 'Folder to write weight-i.npy, bias-i.npy and '
    'manifest.json to; refused if it exists, unless --overwrite.', required=True)
_DATASET = flags.DEFINE_enum('dataset', _DEFAULTS.dataset, list(datasets.DATASETS),
                             'Dataset to train on.')
_MODEL = flags.DEFINE_enum('model', _DEFAULTS.model, list(models.MODELS),
                           'Model to train.')
_EPOCHS = flags.DEFINE_integer('epochs', _DEFAULTS.epochs, 'Training epochs.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', _DEFAULTS.batch_size,
                                   'Examples per training step.')
_LEARNING_RATE = flags.DEFINE_float(
    'learning_rate', _DEFAULTS.learning_rate,
    'Initial Adam learning rate, cosine-decayed to 0 over training.')
_DROPOUT = flags.DEFINE_float('dropout', _DEFAULTS.dropout,
                              'Dropout after each hidden layer while training.')
_SEED = flags.DEFINE_integer('seed', _DEFAULTS.seed, 'Random seed.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, f'Local data folder (else ${datasets.DATA_DIR_ENV}, else a '
    'tensorflow-datasets download).')
_TRAIN_LIMIT = flags.DEFINE_integer(
    'train_limit', None, 'Train on the first N training examples only.')
_OVERWRITE = flags.DEFINE_bool(
    'overwrite', False, 'Replace an existing --weights_dir (only once the new '
    'weights are saved).')


def main(argv):
  del argv
  config = training.TrainConfig(
      weights_dir=_WEIGHTS_DIR.value, dataset=_DATASET.value, model=_MODEL.value,
      epochs=_EPOCHS.value, batch_size=_BATCH_SIZE.value,
      learning_rate=_LEARNING_RATE.value, dropout=_DROPOUT.value,
      seed=_SEED.value, data_dir=_DATA_DIR.value,
      train_limit=_TRAIN_LIMIT.value, overwrite=_OVERWRITE.value)
  result = training.train(config, command=cli.command_line())
  print(f'test accuracy {100 * result.evaluator_accuracy:.2f}% (pure-tensor '
        f'evaluator), {100 * result.keras_accuracy:.2f}% (Keras); '
        f'{result.seconds:.0f} s training; weights in '
        f'{pathlib.Path(config.weights_dir)}')
