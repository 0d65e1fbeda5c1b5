"""Unpruned vs prune-after vs lottery ticket vs dynamic pruning, over seeds.

Fractions are fractions of 1 in [0, 1) (0.3 prunes 30%), prune points are
fractions of training in (0, 1) such as 1/3. Writes curves.csv, rounds.csv,
summary.csv, summary.md, lottery_config.json and the plots to --out_dir.

Penguins, the reference's protocol (4000 epochs, Adam 1e-4, tanh output):

  python experiments/lottery.py --out_dir=img/lottery/penguins-tanh

The corrected model (logits), and Fashion-MNIST's CNN on a reduced budget:

  python experiments/lottery.py --model=penguin_mlp --out_dir=img/lottery/penguins-logits
  python experiments/lottery.py --dataset=fashion_mnist --model=fashion_cnn \
      --epochs=3 --batch_size=64 --learning_rate=1e-3 --train_limit=10000 \
      --out_dir=img/lottery/fashion

Iterative lottery tickets (15 rounds of 20%) on the MNIST MLP, with the
random-reinitialisation control:

  python experiments/lottery.py --dataset=mnist --model=mlp \
      --procedures=lottery,random_reinit --rounds=15 --prune_fraction=0.2 \
      --epochs=2 --batch_size=128 --learning_rate=1.2e-3 --train_limit=10000 \
      --seeds=0,1,2 --out_dir=img/lottery/mnist-ticket
"""

import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a file: the clone, for experiments.studies
  sys.path.insert(0, str(REPO))

from tfprune import cli  # first: sets TensorFlow's log level

from absl import flags

from tfprune.data import datasets
from tfprune.errors import TfpruneError
from tfprune.keras_io import models

from experiments.studies import trial_statistics
from experiments.studies import trials

_D = trials.LotteryConfig(out_dir='')

_OUT_DIR = flags.DEFINE_string(
    'out_dir', None, 'Folder for the results; refused if it exists and is not '
    'empty, unless --overwrite.', required=True)
_DATASET = flags.DEFINE_enum('dataset', _D.dataset, list(datasets.DATASETS),
                             'Dataset.')
_MODEL = flags.DEFINE_enum('model', _D.model, list(models.MODELS), 'Model.')
_PROCEDURES = flags.DEFINE_list('procedures', list(_D.procedures),
                                f'Trials, from {",".join(trials.PROCEDURES)}.')
_PRUNE_FRACTION = flags.DEFINE_float(
    'prune_fraction', _D.prune_fraction, 'Fraction in [0, 1) pruned by '
    'prune_after, and of the surviving weights in each lottery round.')
_ROUNDS = flags.DEFINE_integer('rounds', _D.rounds, 'Lottery rounds, >= 1.')
_REWIND_EPOCH = flags.DEFINE_integer(
    'rewind_epoch', _D.rewind_epoch, 'Lottery tickets rewind to the weights '
    'after this many epochs (0: initialisation; > 0: late rewinding).')
_DYNAMIC_FRACTION = flags.DEFINE_float(
    'dynamic_fraction', _D.dynamic_fraction, 'Fraction in [0, 1) of the '
    'surviving weights pruned at each dynamic prune point.')
_PRUNE_POINTS = flags.DEFINE_list(
    'prune_points', list(_D.prune_points), 'Fractions of training in (0, 1) '
    'where dynamic pruning prunes, e.g. 1/3,2/3 (epoch floor(f * epochs)).')
_EPOCHS = flags.DEFINE_integer('epochs', _D.epochs, 'Epochs of every training run.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', _D.batch_size,
                                   'Examples per step.')
_LEARNING_RATE = flags.DEFINE_float('learning_rate', _D.learning_rate,
                                    'Constant Adam learning rate.')
_SEEDS = flags.DEFINE_list('seeds', [str(s) for s in _D.seeds],
                           'Seeds; every trial runs once per seed.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, f'Local data folder (else ${datasets.DATA_DIR_ENV}, else a '
    'tensorflow-datasets download).')
_TRAIN_LIMIT = flags.DEFINE_integer('train_limit', None,
                                    'Train on the first N training examples only.')
_VALIDATION_SIZE = flags.DEFINE_integer(
    'validation_size', _D.validation_size, 'For datasets without a validation '
    'split, the last N training examples are held out for validation.')
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Replace an existing --out_dir '
                               '(only once the new results are complete).')


def _seeds(texts):
  try:
    return tuple(int(t) for t in texts)
  except ValueError:
    raise TfpruneError(f'seeds must be integers, got {",".join(texts)}: pass '
                       'e.g. --seeds=0,1,2,3,4') from None


def main(argv):
  del argv
  config = trials.LotteryConfig(
      out_dir=_OUT_DIR.value, dataset=_DATASET.value, model=_MODEL.value,
      procedures=tuple(p.strip() for p in _PROCEDURES.value),
      prune_fraction=_PRUNE_FRACTION.value, rounds=_ROUNDS.value,
      rewind_epoch=_REWIND_EPOCH.value,
      dynamic_fraction=_DYNAMIC_FRACTION.value,
      prune_points=tuple(_PRUNE_POINTS.value), epochs=_EPOCHS.value,
      batch_size=_BATCH_SIZE.value, learning_rate=_LEARNING_RATE.value,
      seeds=_seeds(_SEEDS.value), data_dir=_DATA_DIR.value,
      train_limit=_TRAIN_LIMIT.value, validation_size=_VALIDATION_SIZE.value,
      overwrite=_OVERWRITE.value)
  summary = trials.run(config, command=cli.command_line(), progress=print)
  print(trial_statistics.format_table(summary))
  print(f'wrote results and plots to {config.out_dir}')


if __name__ == '__main__':
  cli.run(main)
