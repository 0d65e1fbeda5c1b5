"""Score a pruned network: accuracy, size, shape.

--export takes what `sweep.py --save_pruned` writes (a dense-chain export, or
a graph file for CNN folders and --model_file), a gradual run's graph.npz, or
a Keras model file (imported and verified). Graphs score through the graph
evaluator, exactly as the sweep scored them.

  python experiments/sweep.py --methods=unit --levels=90 --save_pruned --out_dir=runs/u90
  python experiments/evaluate.py --export=runs/u90/pruned/unit-k90.npz
  python experiments/evaluate.py --export=runs/mine/pruned/weight-k90.npz --data=my.npz
"""

from tfprune import commands  # the flags and main of `tfprune evaluate`

if __name__ == '__main__':
  commands.run_script('evaluate', __doc__)
