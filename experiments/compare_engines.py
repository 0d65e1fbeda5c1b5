"""Gradual pruning of the MNIST MLP through TF-MOT and through tfprune.keras (TF and JAX backends).

The same schedule, optimizer, batches and layers in three engines: TF-MOT
wrappers on tf_keras, and the `tfprune.keras.Pruning` callback on Keras 3
with the TensorFlow and the JAX backend. Runs alternate between engines, so
the seconds per epoch are compared under the same load. Writes results.csv
(accuracy, zeros per pruned layer), timing.json (seconds per epoch, medians,
ratio to TF-MOT) and engines_config.json to --out_dir. Examples:

  python experiments/compare_engines.py --out_dir=runs/engines
  python experiments/compare_engines.py --targets=90 --epochs=2 \
      --train_limit=4096 --out_dir=/tmp/engines-smoke
"""

from tfprune import commands  # the flags and main of `tfprune engines`

if __name__ == '__main__':
  commands.run_script('engines', __doc__)
