"""Study C: ResNet-18, one-shot vs iterative global magnitude pruning.

The reference protocol on CIFAR-10 (GPU; see the README for the expected time):

  python experiments/study_c.py --dataset=cifar10 --download \
      --out_dir=runs/study_c_cifar10

The reduced CPU study committed in img/study_c (Fashion-MNIST, 28x28x1):

  python experiments/study_c.py --dataset=fashion_mnist --width=0.125 \
      --train_limit=10000 --epochs=8 --learning_rate=0.05 \
      --oneshot_retrain_epochs=2 --step_fraction=0.11 --step_retrain_epochs=1 \
      --final_retrain_epochs=2 --noaugment --out_dir=img/study_c

Each row's final network is also saved as a graph file
<out_dir>/networks/<procedure>-<target>.npz (--nosave_networks: not saved),
which tfprune.load reads and tfprune.evaluate scores like the Keras model.
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

from experiments.studies import study_resnet

_D = study_resnet.StudyCConfig(out_dir='')

_OUT_DIR = flags.DEFINE_string('out_dir', os.path.relpath(REPO / 'img' / 'study_c'),
                               'Folder for study_c.csv and its config.')
_DATASET = flags.DEFINE_enum('dataset', _D.dataset, list(study_resnet.DATASETS),
                             'cifar10 (tensorflow-datasets) or an IDX dataset.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, f'Local IDX data folder (else ${datasets.DATA_DIR_ENV}).')
_TFDS_DATA_DIR = flags.DEFINE_string(
    'tfds_data_dir', None, 'tensorflow-datasets folder holding cifar10/.')
_DOWNLOAD = flags.DEFINE_bool('download', False,
                              'Download CIFAR-10 with tensorflow-datasets if missing.')
_WIDTH = flags.DEFINE_float('width', _D.width, 'ResNet-18 width multiplier.')
_TARGETS = flags.DEFINE_list('targets', [f'{t:g}' for t in _D.targets],
                             'Global sparsities in percent.')
_EPOCHS = flags.DEFINE_integer('epochs', _D.epochs, 'Dense training epochs.')
_LR = flags.DEFINE_float('learning_rate', _D.learning_rate,
                         'Initial SGD rate of the dense training (cosine).')
_RETRAIN_LR = flags.DEFINE_float('retrain_learning_rate',
                                 _D.retrain_learning_rate,
                                 'Initial SGD rate of each retraining phase.')
_MOMENTUM = flags.DEFINE_float('momentum', _D.momentum, 'SGD momentum.')
_WEIGHT_DECAY = flags.DEFINE_float('weight_decay', _D.weight_decay,
                                   'Weight decay (L2 on kernels, as PyTorch).')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', _D.batch_size, 'Batch size.')
_AUGMENT = flags.DEFINE_bool('augment', _D.augment,
                             'Random crop (pad 4) and horizontal flip.')
_ONESHOT = flags.DEFINE_integer('oneshot_retrain_epochs',
                                _D.oneshot_retrain_epochs,
                                'Retraining after one-shot pruning.')
_STEP_FRACTION = flags.DEFINE_float(
    'step_fraction', _D.step_fraction,
    'Fraction of the remaining weights pruned per iterative step.')
_STEP_EPOCHS = flags.DEFINE_integer('step_retrain_epochs',
                                    _D.step_retrain_epochs,
                                    'Retraining after each iterative step.')
_FINAL_EPOCHS = flags.DEFINE_integer('final_retrain_epochs',
                                     _D.final_retrain_epochs,
                                     'Retraining once the target is reached.')
_TRAIN_LIMIT = flags.DEFINE_integer('train_limit', None,
                                    'First N training examples only.')
_TEST_LIMIT = flags.DEFINE_integer('test_limit', None, 'First N test examples.')
_SEED = flags.DEFINE_integer('seed', _D.seed, 'Random seed.')
_SAVE_NETWORKS = flags.DEFINE_bool(
    'save_networks', _D.save_networks,
    'Save every final network as a graph .npz file under networks/.')


def main(argv):
  del argv
  config = study_resnet.StudyCConfig(
      out_dir=_OUT_DIR.value, dataset=_DATASET.value, data_dir=_DATA_DIR.value,
      tfds_data_dir=_TFDS_DATA_DIR.value, download=_DOWNLOAD.value, width=_WIDTH.value,
      targets=sweep.parse_levels(_TARGETS.value), epochs=_EPOCHS.value,
      learning_rate=_LR.value, retrain_learning_rate=_RETRAIN_LR.value,
      momentum=_MOMENTUM.value, weight_decay=_WEIGHT_DECAY.value,
      batch_size=_BATCH_SIZE.value, augment=_AUGMENT.value,
      oneshot_retrain_epochs=_ONESHOT.value,
      step_fraction=_STEP_FRACTION.value,
      step_retrain_epochs=_STEP_EPOCHS.value,
      final_retrain_epochs=_FINAL_EPOCHS.value,
      train_limit=_TRAIN_LIMIT.value, test_limit=_TEST_LIMIT.value,
      seed=_SEED.value, save_networks=_SAVE_NETWORKS.value)
  study_resnet.run(config)
  print(f'results in {config.out_dir}/study_c.csv and timing.json')


if __name__ == '__main__':
  cli.run(main)
