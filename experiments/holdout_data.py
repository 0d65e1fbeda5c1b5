"""Write a validation .npz: training images held out from calibration as `x_test`.

For choosing settings of the data-aware methods without the test set: the
sweep run with `--data=` this file scores on training images that its
calibration draw (any `--calibration_size` up to --max_calibration_size, same
`--calibration_seed`) never uses. Examples:

  python experiments/holdout_data.py --out=runs/holdout-mnist.npz
  python experiments/holdout_data.py --dataset=fashion_mnist --out=runs/holdout-fashion.npz
  python experiments/sweep.py --weights_dir=weights/lenet5-mnist --data=runs/holdout-mnist.npz --methods=obs --levels=90 --calibration_size=8192 --out_dir=runs/lenet5-holdout
"""

from tfprune import commands  # the flags and main of `tfprune holdout`

if __name__ == '__main__':
  commands.run_script('holdout', __doc__)
