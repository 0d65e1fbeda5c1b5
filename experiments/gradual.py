"""Prune while fine-tuning (TF-MOT): gradual and iterative, against one-shot.

Writes per-run epoch logs, exported `.npy` weights and `.tflite` files,
results.csv, oneshot.csv and accuracy_vs_sparsity.png to --out_dir (seconds
only to timing.json); the same command resumes an interrupted study and ends
with the same weights as an uninterrupted one. Target sparsities are percentages of
each pruned layer, in [0, 100). A CNN weight folder or your own Keras model
(--model_file) prunes every Dense, Conv2D and DepthwiseConv2D kernel and
hands back model.keras (and, for units, the smaller compact.keras). Examples:

  python experiments/gradual.py
  python experiments/gradual.py --model=lenet5 --weights_dir=weights/lenet5-mnist \
      --targets=90 --procedures=gradual --out_dir=runs/lenet-gradual
  python experiments/gradual.py --model_file=my.keras --data=my.npz \
      --granularity=unit --targets=50 --out_dir=runs/mine
  python experiments/gradual.py --granularity=unit --targets=50,60,70,80,90 \
      --out_dir=img/gradual-unit
  python experiments/gradual.py --strategy=mirrored --logical_cpus=2 \
      --targets=90 --epochs=2 --procedures=gradual --out_dir=/tmp/mirrored
"""

from tfprune import commands  # the flags and main of `tfprune gradual`

if __name__ == '__main__':
  commands.run_script('gradual', __doc__)
