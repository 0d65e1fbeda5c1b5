"""tfprune holdout: write a validation .npz: training images held out from calibration as `x_test`.

For choosing settings of the data-aware methods without the test set: the
sweep run with `--data=` this file scores on training images that its
calibration draw (any `--calibration_size` up to --max_calibration_size, same
`--calibration_seed`) never uses. Examples:

  tfprune holdout --out=runs/holdout-mnist.npz
  tfprune holdout --dataset=fashion_mnist --out=runs/holdout-fashion.npz
  tfprune sweep --weights_dir=weights/lenet5-mnist --data=runs/holdout-mnist.npz --dataset=mnist --methods=obs --levels=90 --calibration_size=8192 --out_dir=runs/lenet5-holdout
"""


import pathlib

from absl import flags  # pylint: disable=g-import-not-at-top

from tfprune import atomic  # pylint: disable=g-import-not-at-top
from tfprune.data import datasets  # pylint: disable=g-import-not-at-top
from tfprune.data import holdout  # pylint: disable=g-import-not-at-top

_OUT = flags.DEFINE_string('out', None, 'The .npz to write.', required=True)
_DATASET = flags.DEFINE_enum('dataset', 'mnist', list(datasets.DATASETS),
                             'Dataset whose training split is cut.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, f'Local data folder (else ${datasets.DATA_DIR_ENV}, else tfds).')
_SIZE = flags.DEFINE_integer('size', 5000, 'Training examples to hold out.')
_MAX_CALIBRATION_SIZE = flags.DEFINE_integer(
    'max_calibration_size', 16384,
    'The largest calibration draw the held-out examples must not overlap.')
_SEED = flags.DEFINE_integer('calibration_seed', 0,
                             "The sweep's --calibration_seed.")


def main(argv):
  del argv
  out = pathlib.Path(_OUT.value)
  atomic.check_writable(out.parent, flag='--out')  # before reading any data
  train = datasets.load(_DATASET.value, 'train', _DATA_DIR.value)
  held_out = holdout.holdout(train, _SIZE.value, _MAX_CALIBRATION_SIZE.value,
                             _SEED.value)
  holdout.save_npz(out, train, held_out)
  print(f'{_OUT.value}: {len(held_out)} held-out of {len(train)} '
        f'{_DATASET.value} training examples as x_test')
