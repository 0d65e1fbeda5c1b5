"""Prune a weight folder at many levels, print and save accuracy per method and k.

Writes sweep.csv, sweep_config.json and the plots to --out_dir. Examples:

  python experiments/sweep.py
  python experiments/sweep.py --use_biases=false --out_dir=runs/no-biases
  python experiments/sweep.py --methods=weight --levels=0,90,99,99.9 --prune_output_layer
  python experiments/sweep.py --methods=weight,wanda,obs --bias_correction --out_dir=runs/oneshot
  python experiments/sweep.py --model_file=my.keras --data=my.npz --levels=0,50,90 --out_dir=runs/mine
  python experiments/sweep.py --methods=weight --levels=90,95 --allocation=global --out_dir=runs/global
  python experiments/sweep.py --methods=weight --levels=0 --pattern=2:4 --out_dir=runs/nm
  python experiments/sweep.py --model_file=my.keras --data=my.npz --methods=unit --levels=50 --save_keras
  python experiments/sweep.py --weights_dir=weights/lenet5-mnist --methods=weight,wanda,obs --levels=0,90 --out_dir=runs/lenet
"""

from tfprune import commands  # the flags and main of `tfprune sweep`

if __name__ == '__main__':
  commands.run_script('sweep', __doc__)
