"""Scan each layer's sensitivity to pruning, for --allocation=sensitivity.

Prunes one layer at a time at each level and measures accuracy and loss on a
seeded slice of the training data (never the test set); writes
sensitivity.csv, sensitivity_config.json and sensitivity.png to --out_dir.

  python experiments/sensitivity.py --weights_dir=weights/mlp-mnist --out_dir=img/allocation/mlp-mnist
  python experiments/sensitivity.py --weights_dir=weights/lenet5-mnist --criterion=unit --out_dir=runs/lenet-unit
  python experiments/sensitivity.py --model_file=my.keras --data=my.npz --out_dir=runs/mine
"""

from tfprune import commands  # the flags and main of `tfprune sensitivity`

if __name__ == '__main__':
  commands.run_script('sensitivity', __doc__)
