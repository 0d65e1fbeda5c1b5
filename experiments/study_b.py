"""Study B: LeNet-5 on MNIST, random vs L1 vs structured L1 with K prune-finetune cycles.

Train LeNet-5, then run the study (results in img/study_b/):

  python experiments/train.py --model=lenet5 --dataset=mnist --epochs=15 \
      --dropout=0.2 --weights_dir=weights/lenet5-mnist
  python experiments/study_b.py --levels=10,20,30,40,50,60,70,80,90,95 \
      --train_limit=10000
  python experiments/study_b.py --timing_only --timing_repeats=10 \
      --levels=10,20,30,40,50,60,70,80,90,95

Each prune-finetune cycle runs on TF-MOT wrappers (see experiments/studies/lenet_cycles.py).
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

from experiments.studies import lenet_config
from experiments.studies import study_lenet

_D = lenet_config.StudyBConfig(weights_dir='', out_dir='')

_WEIGHTS_DIR = flags.DEFINE_string(
    'weights_dir', os.path.relpath(REPO / 'weights' / 'lenet5-mnist'),
    'Trained lenet5 weight folder.')
_OUT_DIR = flags.DEFINE_string('out_dir', os.path.relpath(REPO / 'img' / 'study_b'),
                               'Folder for study_b.csv, its config and plot.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, f'Local data folder (else ${datasets.DATA_DIR_ENV}, else tfds).')
_METHODS = flags.DEFINE_multi_enum(
    'methods', list(_D.methods), list(lenet_config.ARMS),
    'Per-layer pruning methods (repeat the flag).')
_LEVELS = flags.DEFINE_list('levels', [f'{k:g}' for k in _D.levels],
                            'Per-layer levels k in percent.')
_CYCLES = flags.DEFINE_integer('cycles', _D.cycles, 'K prune-finetune cycles.')
_EPOCHS = flags.DEFINE_integer('finetune_epochs', _D.finetune_epochs,
                               'Finetuning epochs per cycle.')
_LR = flags.DEFINE_float('finetune_lr', _D.finetune_lr, 'Finetuning Adam rate.')
_TRAIN_LIMIT = flags.DEFINE_integer('train_limit', None,
                                    'Finetune on the first N training examples.')
_REPEATS = flags.DEFINE_integer('timing_repeats', _D.timing_repeats,
                                'Timed passes over the test set (the fastest counts).')
_TIMING_ONLY = flags.DEFINE_bool(
    'timing_only', False, 'Only time dense, masked and compacted structured '
    'networks in turn (study_b_timing.json); no finetuning.')
_SEED = flags.DEFINE_integer('seed', _D.seed, 'Seed of finetuning and masks.')


def main(argv):
  del argv
  config = lenet_config.StudyBConfig(
      weights_dir=_WEIGHTS_DIR.value, out_dir=_OUT_DIR.value,
      data_dir=_DATA_DIR.value, methods=tuple(_METHODS.value),
      levels=sweep.parse_levels(_LEVELS.value), cycles=_CYCLES.value,
      finetune_epochs=_EPOCHS.value, finetune_lr=_LR.value,
      train_limit=_TRAIN_LIMIT.value, timing_repeats=_REPEATS.value,
      seed=_SEED.value)
  if _TIMING_ONLY.value:
    study_lenet.timing_table(config)
    print(f'results in {config.out_dir}/study_b_timing.json')
    return
  study_lenet.run(config)
  print(f'results in {config.out_dir}/study_b.csv, timing.json and study_b.png')


if __name__ == '__main__':
  cli.run(main)
