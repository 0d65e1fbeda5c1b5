"""Train a model and save it as a `.npy` weight folder with a manifest.

The prebuilt weights in weights/mlp-mnist were made with:

  python experiments/train.py --weights_dir=weights/mlp-mnist

Other examples:

  python experiments/train.py --dataset=fashion_mnist --weights_dir=runs/fmnist
  python experiments/train.py --epochs=1 --weights_dir=runs/quick --overwrite
"""

from tfprune import commands  # the flags and main of `tfprune train`

if __name__ == '__main__':
  commands.run_script('train', __doc__)
