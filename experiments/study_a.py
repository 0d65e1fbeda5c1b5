"""Study A: global magnitude pruning of the Fashion-MNIST CNN (one-shot, gradual).

Train the CNN, then run the study (results in img/study_a/):

  python experiments/train.py --model=fashion_cnn --dataset=fashion_mnist \
      --epochs=15 --dropout=0.3 --weights_dir=weights/fashion_cnn-fashion_mnist
  python experiments/study_a.py
  python experiments/study_a.py --levels=0.01 --nogradual --out_dir=runs/a-quick
"""

import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a file: the clone, for experiments.studies
  sys.path.insert(0, str(REPO))

from tfprune import cli  # first: sets TensorFlow's log level

from absl import flags

from tfprune.data import datasets
from tfprune.drivers import sweep

from experiments.studies import study_fashion

_D = study_fashion.StudyAConfig(weights_dir='', out_dir='')

_WEIGHTS_DIR = flags.DEFINE_string(
    'weights_dir', os.path.relpath(REPO / 'weights' / 'fashion_cnn-fashion_mnist'),
    'Trained fashion_cnn weight folder.')
_OUT_DIR = flags.DEFINE_string('out_dir', os.path.relpath(REPO / 'img' / 'study_a'),
                               'Folder for study_a.csv, its config and plot.')
_DATASET = flags.DEFINE_enum('dataset', _D.dataset, list(datasets.DATASETS),
                             'Dataset of the test and finetuning data.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, f'Local data folder (else ${datasets.DATA_DIR_ENV}, else tfds).')
_LEVELS = flags.DEFINE_list('levels', [f'{k:g}' for k in _D.levels],
                            'Global levels k, percent of all kernel weights.')
_GRADUAL = flags.DEFINE_bool('gradual', _D.gradual,
                             'Also prune gradually while finetuning.')
_EPOCHS = flags.DEFINE_integer('finetune_epochs', _D.finetune_epochs,
                               'Finetuning epochs per level (gradual).')
_LR = flags.DEFINE_float('finetune_lr', _D.finetune_lr, 'Finetuning Adam rate.')
_STEPS = flags.DEFINE_integer('prune_steps', _D.prune_steps,
                              'Mask updates of the gradual schedule.')
_TRAIN_LIMIT = flags.DEFINE_integer('train_limit', None,
                                    'Finetune on the first N training examples.')
_TEST_LIMIT = flags.DEFINE_integer('test_limit', None,
                                   'Evaluate on the first N test examples.')
_SEED = flags.DEFINE_integer('seed', _D.seed, 'Seed of the finetuning.')


def main(argv):
  del argv
  config = study_fashion.StudyAConfig(
      weights_dir=_WEIGHTS_DIR.value, out_dir=_OUT_DIR.value,
      dataset=_DATASET.value, data_dir=_DATA_DIR.value,
      levels=sweep.parse_levels(_LEVELS.value), gradual=_GRADUAL.value,
      finetune_epochs=_EPOCHS.value, finetune_lr=_LR.value,
      prune_steps=_STEPS.value, train_limit=_TRAIN_LIMIT.value,
      test_limit=_TEST_LIMIT.value, seed=_SEED.value)
  study_fashion.run(config)
  print(f'results in {config.out_dir}/study_a.csv, timing.json and study_a.png')


if __name__ == '__main__':
  cli.run(main)
