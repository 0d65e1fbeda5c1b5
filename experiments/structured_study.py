"""ResNet-18 with half of every channel group removed: accuracy, size, speed.

Holds out the last --validation_size training images of Fashion-MNIST,
trains ResNet-18 (width 0.25) on the rest, removes k% of every coupled
channel group (`unit`), compacts it into a smaller plain Keras model,
fine-tunes it from each of --finetune_learning_rates, keeps the one of best
validation accuracy and times it against the dense one
(`experiments.studies.structured_resnet`).

The committed img/structured_resnet, from the committed dense model (trained
earlier on all 60,000 training images), without training:

  TFPRUNE_DATA_DIR=../shared/datasets python experiments/structured_study.py \
      --dense_model=weights/resnet18-w0.25-fashion_mnist/model.keras

Everything, the dense training too (on the 55,000 images before the
validation split):

  TFPRUNE_DATA_DIR=../shared/datasets python experiments/structured_study.py \
      --out_dir=runs/structured

A quick look (2,000 images, 2 epochs, fewer timed calls):

  python experiments/structured_study.py --train_limit=2000 --epochs=2 \
      --validation_size=500 --finetune_learning_rates=2e-3 \
      --timing_runs=20 --timing_rounds=2 --out_dir=runs/quick
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
from tfprune.data import provenance

from experiments.studies import structured_config
from experiments.studies import structured_resnet

_D = structured_config.StructuredConfig(out_dir='')

_OUT_DIR = flags.DEFINE_string(
    'out_dir', os.path.relpath(REPO / 'img' / 'structured_resnet'),
    'Folder for results.csv, timing.json, config.json and models/.')
_DATASET = flags.DEFINE_enum('dataset', _D.dataset, list(datasets.DATASETS),
                             'Image dataset.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, f'Local IDX data folder (else ${datasets.DATA_DIR_ENV}).')
_WIDTH = flags.DEFINE_float('width', _D.width, 'ResNet-18 width multiplier.')
_K = flags.DEFINE_float('k', _D.k, 'Percentage of every channel group removed.')
_IMPORTANCE = flags.DEFINE_enum('importance', _D.importance,
                                structured_config.importance_choices(),
                                'Channel score: a channel criterion of the '
                                'registry (former names l2, l1, bn_gamma are '
                                'read as unit, unit_l1, unit_bn).')
_TRAIN_LIMIT = flags.DEFINE_integer(
    'train_limit', _D.train_limit,
    'First N training examples (default: all), validation split included.')
_VALIDATION_SIZE = flags.DEFINE_integer(
    'validation_size', _D.validation_size,
    'The last N training examples, never trained on: the fine-tuning rate is '
    'chosen on them.')
_TEST_LIMIT = flags.DEFINE_integer('test_limit', None, 'First N test examples.')
_EPOCHS = flags.DEFINE_integer('epochs', _D.epochs, 'Dense training epochs.')
_LR = flags.DEFINE_float('learning_rate', _D.learning_rate,
                         'Initial Adam rate of the dense training (cosine).')
_FT_EPOCHS = flags.DEFINE_integer('finetune_epochs', _D.finetune_epochs,
                                  'Fine-tuning epochs of the compacted model.')
_FT_LRS = flags.DEFINE_list(
    'finetune_learning_rates', [f'{r:g}' for r in _D.finetune_learning_rates],
    'Candidate initial Adam rates of fine-tuning (cosine); the one of best '
    'validation accuracy is kept.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', _D.batch_size,
                                   'Training batch size.')
_SEED = flags.DEFINE_integer('seed', _D.seed, 'Random seed.')
_DENSE_MODEL = flags.DEFINE_string(
    'dense_model', None, 'A trained .keras to start from instead of training.')
_BATCH_SIZES = flags.DEFINE_list('batch_sizes', [str(b) for b in _D.batch_sizes],
                                 'Batch sizes to time.')
_RUNS = flags.DEFINE_integer('timing_runs', _D.timing_runs,
                             'Timed calls per model and batch size, at least.')
_ROUNDS = flags.DEFINE_integer('timing_rounds', _D.timing_rounds,
                               'Alternating blocks per model and batch size.')
_ALLOW_OTHER_DATA = flags.DEFINE_bool('allow_other_data', False,
                                      provenance.OVERRIDE_HELP)


def main(argv):
  del argv
  config = structured_config.StructuredConfig(
      out_dir=_OUT_DIR.value, dataset=_DATASET.value, data_dir=_DATA_DIR.value,
      width=_WIDTH.value, k=_K.value, importance=_IMPORTANCE.value,
      train_limit=_TRAIN_LIMIT.value or None, test_limit=_TEST_LIMIT.value,
      validation_size=_VALIDATION_SIZE.value,
      epochs=_EPOCHS.value, learning_rate=_LR.value,
      finetune_epochs=_FT_EPOCHS.value,
      finetune_learning_rates=tuple(
          structured_config.parse_rates(_FT_LRS.value)),
      batch_size=_BATCH_SIZE.value, seed=_SEED.value,
      dense_model=_DENSE_MODEL.value,
      batch_sizes=tuple(structured_config.parse_batch_sizes(_BATCH_SIZES.value)),
      timing_runs=_RUNS.value, timing_rounds=_ROUNDS.value,
      allow_other_data=_ALLOW_OTHER_DATA.value)
  result = structured_resnet.run(config)
  for b, t in result.timing['latency_median'].items():
    print(f'batch {b}: dense {t["dense_ms"]:.2f} ms, compacted '
          f'{t["compacted_ms"]:.2f} ms, {t["speedup"]:.2f}x')
  print(f'timed: {result.chosen} (chosen on validation); results in '
        f'{config.out_dir}/results.csv')


if __name__ == '__main__':
  cli.run(main)
